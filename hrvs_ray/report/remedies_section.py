"""The Remedies section: what each combination of batching, precision, memory format and
checkpointing bought against the paper's setup, measured on the same cluster and scope.

Pure pandas. ``grid`` is the one place the comparison is computed: one row per cluster ×
scope × input set × combination, including the combinations that were not measured there
(failed, skipped, not run), so the tables and the answers say so instead of dropping them.
Ratios are against the paper's setup (pad + float32 + contiguous, no checkpointing) of the
same cluster, scope and input set; time is seconds per informative megapixel, memory the
largest per-step peak RSS (what the node must hold). Time is the one statistic (ratio of
sums, hrvs_ray.metrics); every "× faster" carries a 95 % interval
(hrvs_ray.metrics.interval); "× memory" is the measured ratio of peaks (a maximum, not
bootstrapped).
"""
from __future__ import annotations

import math
import re

import pandas as pd

from ..metrics import GROUP_KEYS, figures, timed
from ..metrics.data_parallel import ONE_RANK_SPLIT, scope_ranks
from ..metrics.interval import LEVEL, Interval, ratio_interval, value_interval, verdict
from ..metrics.noise import PEAK, run_spread
from ..metrics.stats import Choice, choose
from ..remedy_axes import AXES, OPT_IN_AXES, PAPER
from .answers import chosen_interval, versus
from .fmt import Cell, Table, interval_bases, sig
from .load import REMEDY_COLS, Merged, remedy_order, scope_key, scope_label

GB = 1e9
ABSENT = "—"
LEGEND = ("Combination labels: batching (pad = the paper's zero-padded random batches, bucket = shape-sorted "
          "within windows, accum = gradient accumulation over micro-batches), fp32/bf16 = float32/bfloat16 "
          "autocast, nchw/nhwc = contiguous/channels_last memory format, ckpt = activation checkpointing of the "
          "four ResNet stages, (r32) = every pass padded up to a multiple of 32 px (shape_round), kc-off = "
          "PyTorch's CPU kernel caches off (kernel_cache: off), compile-static/auto/dynamic = torch.compile of the "
          "forward (its timed steps here include compiling; steady state and compile cost apart: section "
          "Compiling).")


def describe(r: pd.Series | dict) -> str:
    """'bucket + bfloat16 + channels_last' from a row's axis values: the batching policy
    always, the other axes where they differ from the paper's setup."""
    parts = [str(r["batching"])]
    parts += [str(r[a]) for a in ("precision", "memory_format") if r[a] != getattr(PAPER, a)]
    if r["checkpointing"] != PAPER.checkpointing:
        parts.append(f"checkpointing {r['checkpointing']}")
    if r.get("shape_round") and not pd.isna(r.get("shape_round")):
        parts.append(f"shapes rounded to {int(r['shape_round'])} px")
    if r.get("kernel_cache") not in (None, PAPER.kernel_cache) and not pd.isna(r.get("kernel_cache")):
        parts.append(f"kernel caches {r['kernel_cache']}")
    if r.get("compile") not in (None, PAPER.compile) and not pd.isna(r.get("compile")):
        parts.append(f"compile {r['compile']}")
    return " + ".join(parts)


def _stats(m: Merged) -> pd.DataFrame:
    """Per cluster × scope × input set × remedy: the figures of its timed steps (ratio of sums),
    and the 95 % interval of its s/informative-MP (the trade-off figures' error bars)."""
    rows = []
    t = timed(m.steps)
    run_sd = run_spread(t, GROUP_KEYS, "s_per_informative_mp")
    for key, g in t.groupby(GROUP_KEYS, sort=False):
        f = figures(g)
        _, low, high = value_interval(g, "s_per_informative_mp", run_sd)
        rows.append(dict(zip(GROUP_KEYS, key, strict=False), runs=f["runs"], steps=f["steps"],
                         s_imp=f["s_per_informative_mp"],
                         s_imp_low=low, s_imp_high=high, peak_gb=f["peak_rss_bytes"] / GB,
                         pad_pct=100 * f["padding_fraction"]))
    return pd.DataFrame(rows, columns=GROUP_KEYS + STAT_COLS)


STAT_COLS = ["runs", "steps", "s_imp", "s_imp_low", "s_imp_high", "peak_gb", "pad_pct"]


def _absent(cells: pd.DataFrame) -> str:
    """Why a combination has no timed steps here: its cells' statuses and reasons, or 'not run'."""
    bad = cells[cells["status"] != "ok"]
    if cells.empty:
        return "not run"
    if bad.empty:
        return "ran, but no timed steps recorded"
    return "; ".join(f"{s} (run {', '.join(str(r) for r in sorted(g['run']))}): {e}" if e else f"{s}"
                     for (s, e), g in bad.assign(error=bad["error"].fillna("")).groupby(["status", "error"]))


def grid(m: Merged) -> pd.DataFrame:
    """Every cluster × scope × input set seen, × every combination seen on that cluster,
    with status ('ok' or why absent), the figures and the ratios against the paper's setup."""
    stats = _stats(m).set_index(GROUP_KEYS)
    axes = pd.concat([m.steps[list(REMEDY_COLS)], m.cells[list(REMEDY_COLS)]]).drop_duplicates("remedy")
    axes = axes.set_index("remedy")
    order = {n: i for i, n in enumerate(m.input_sets)}
    out = []
    for cluster in m.clusters:
        cs, cc = m.steps[m.steps["cluster"] == cluster], m.cells[m.cells["cluster"] == cluster]
        labels = remedy_order(pd.concat([cs[list(REMEDY_COLS)], cc[list(REMEDY_COLS)]]))
        places = sorted(set(zip(cs["scope"], cs["input_set"], strict=False))
                        | set(zip(cc["scope"], cc["input_set"], strict=False)),
                        key=lambda k: (scope_key(k[0]), order.get(k[1], len(order))))
        for scope, name in places:
            # a 1-rank cell runs once, as shard: other splits are no combination it lacks
            one = scope_ranks(scope) == 1
            for label in (x for x in labels if not (one and _splits(axes, x))):
                key = (cluster, scope, name, label)
                row = {**dict(zip(GROUP_KEYS, key, strict=False)),
                       **axes.loc[label, list(AXES + OPT_IN_AXES)].to_dict()}
                mine = cc[(cc["scope"] == scope) & (cc["input_set"] == name) & (cc["remedy"] == label)]
                if key in stats.index:
                    # measured, but some of its runs may be missing: say which, never hide them
                    bad = mine[mine["status"] != "ok"]
                    row.update(stats.loc[key].to_dict(), status="ok" if bad.empty else f"ok; also {_absent(bad)}")
                else:
                    row["status"] = _absent(mine)
                out.append(row)
    g = pd.DataFrame(out, columns=GROUP_KEYS + list(AXES + OPT_IN_AXES) + ["status"] + STAT_COLS)
    paper = g[g["remedy"] == PAPER.label].set_index(GROUP_KEYS[:3])
    idx = pd.MultiIndex.from_frame(g[GROUP_KEYS[:3]])
    g["mem_ratio"] = g["peak_gb"].to_numpy() / paper["peak_gb"].reindex(idx).to_numpy()
    g["speedup"] = _speedups(m, g)
    return g


def _splits(axes: pd.DataFrame, label: str) -> bool:
    """Whether combination ``label`` splits a global batch other than by shard (data-parallel only)."""
    return "split" in axes.columns and axes.loc[label, "split"] not in (None, ONE_RANK_SPLIT)


def _speedups(m: Merged, g: pd.DataFrame) -> list[Interval | None]:
    """Per row: the paper's s/informative-MP ÷ the row's, with its interval (None where either
    was not measured). One-run groups borrow the run-to-run spread of groups with several.

    The rows of one cluster × scope × input set are a family of k - 1 comparisons with the
    paper's setup, read together: their intervals are simultaneous at 95 % (Bonferroni,
    each at 1 - 0.05 / (k - 1)), so a table with many combinations does not grey in a few
    by chance (issue 26: the same rule as ``compare`` and the answers)."""
    t = timed(m.steps)
    parts = {k: d for k, d in t.groupby(GROUP_KEYS, sort=False)}
    run_sd = run_spread(t, GROUP_KEYS, "s_per_informative_mp")
    family = {k3: sum(1 for (*x, label) in parts if tuple(x) == k3 and label != PAPER.label)
              for k3 in {k[:3] for k in parts}}
    out: list[Interval | None] = []
    for _, r in g.iterrows():
        key = tuple(r[k] for k in GROUP_KEYS)
        base = parts.get((*key[:3], PAPER.label))
        level = 1 - (1 - LEVEL) / max(1, family.get(key[:3], 1))
        out.append(None if base is None or key not in parts else
                   ratio_interval(base, parts[key], "s_per_informative_mp", run_sd, level=level))
    return out


def choices(m: Merged, g: pd.DataFrame) -> dict[tuple, tuple[Choice | None, Choice | None]]:
    """Per cluster × scope × input set: the fastest combination (s / informative MP) and the
    leanest (each run's peak RSS, with its own spread), each chosen from the data and so
    claimed only with intervals corrected over the k - 1 comparisons with it."""
    t = timed(m.steps)
    parts = {k: d for k, d in t.groupby(GROUP_KEYS, sort=False)}
    time_noise = run_spread(t, GROUP_KEYS, "s_per_informative_mp")
    peak_noise = run_spread(t, GROUP_KEYS, PEAK)
    out = {}
    for key3, e in g.groupby(GROUP_KEYS[:3], sort=False):
        ok = e[e["s_imp"].notna()]
        if ok.empty:
            out[key3] = (None, None)
            continue
        def key(x: str, k: tuple = key3) -> tuple:
            return (*k, x)
        fast = choose(dict(zip(ok["remedy"], ok["s_imp"], strict=True)),
                      versus(parts, "s_per_informative_mp", time_noise, key))  # type: ignore[arg-type]
        mem = ok[ok["peak_gb"].notna()]
        lean = choose(dict(zip(mem["remedy"], mem["peak_gb"], strict=True)),
                      versus(parts, PEAK, peak_noise, key)) if len(mem) else None  # type: ignore[arg-type]
        out[key3] = (fast, lean)
    return out


def speed(iv: Interval | None) -> float:
    """The measured speed-up of a grid row (NaN where there is none)."""
    return float("nan") if iv is None else iv.value


def only_one_setup(m: Merged) -> str | None:
    """The one line the section shows instead of tables when there is nothing to compare."""
    labels = m.remedies
    if len(labels) > 1:
        return None
    if not labels or labels[0] == PAPER.label:
        return ("Only the paper's setup (pad + float32 + contiguous, no checkpointing) was run: no remedies to "
                "compare. A sweep's remedies: section (batching, precision, memory_format, checkpointing) adds them.")
    return f"Only one setup ({labels[0]}) was run and not the paper's: nothing to compare it with."


def _ratio(x: float) -> str | Cell:
    return Cell(ABSENT, "na") if math.isnan(x) else f"{sig(x)}×"


def _speed_cell(iv: Interval | None, paper_row: bool) -> str | Cell:
    if iv is None or math.isnan(iv.value):
        return Cell(ABSENT, "na")
    if paper_row:
        return "1×"
    return Cell(iv.text(), "na" if iv.includes_one else "", title=iv.basis)


def tables(m: Merged, g: pd.DataFrame) -> list[Table]:
    """One table per cluster × scope: every combination per input set, best time in green."""
    out = []
    for (cluster, scope), d in g.groupby(["cluster", "scope"], sort=False):
        rows = []
        for name, e in d.groupby("input_set", sort=False):
            best = e["s_imp"].idxmin() if e["s_imp"].notna().any() else None
            for i, r in e.iterrows():
                status = r["status"] if r["status"] == "ok" else Cell(r["status"], "na" if r["status"] == "not run"
                                                                      else "flag")
                if math.isnan(r["s_imp"]):
                    rows.append([name, r["remedy"], status] + [Cell(ABSENT, "na")] * 7)
                    continue
                t = sig(r["s_imp"])
                rows.append([name, r["remedy"], status, str(int(r["runs"])), str(int(r["steps"])),
                             Cell(str(t), "best") if i == best else t,
                             _speed_cell(r["speedup"], r["remedy"] == PAPER.label), sig(r["peak_gb"]),
                             _ratio(r["mem_ratio"]), sig(r["pad_pct"])])
        out.append(Table(f"Remedies — {cluster}, {scope_label(scope)}",
                         ["input set", "combination", "status", "runs", "timed steps",
                          "s / informative MP (Σ s ÷ Σ MP)",
                          "× faster than the paper's setup [simultaneous 95 % interval]",
                          "peak RSS GB (max)", "× the paper's peak (ratio of peaks)", "padding % (Σ ÷ Σ)"], rows,
                         note=INTERVAL_NOTE + interval_bases(rows)))
    return out


INTERVAL_NOTE = ("Intervals: simultaneous 95 % over the combinations of one input set (each at 1 − 0.05 ÷ "
                 "their number of comparisons with the paper's setup), on the ratio of sums: from the run-to-run "
                 "spread of the groups of these results "
                 "that have several runs (t of its degrees of freedom); where none has, a seeded bootstrap of the "
                 "timed steps within the run, which covers step-to-step noise only. "
                 "Greyed: the interval includes 1, no measurable difference. Memory ratios are ratios of the "
                 "largest per-step peaks, measured once, without an interval (a maximum is not bootstrapped).")


def _sentence(name: str, cluster: str, scope: str, best: pd.Series, paper: pd.Series | None,
              ch: Choice | None = None, steps: int = 0) -> str:
    head = f"best for {name} on cluster {cluster} at scope {scope_label(scope)}: "
    if ch is not None and not ch.claimed and len(ch.tied) > 1:
        # picked from the data and not shown faster than every other: name the set
        return (f"{name} on cluster {cluster} at scope {scope_label(scope)}: fastest measured "
                f"{ch.sentence(steps)} (no combination is faster than all others at family-wise 95 %, "
                f"{ch.comparisons} comparisons)")
    if ch is not None and paper is not None and best["remedy"] != PAPER.label and PAPER.label in ch.intervals:
        # paper ÷ best, corrected over the k - 1 comparisons with the chosen one
        corrected = chosen_interval(ch, PAPER.label, steps, best["speedup"].basis if best["speedup"] else "")
        best = best.copy()
        best["speedup"] = corrected
    if paper is None or math.isnan(paper["s_imp"]):
        why = "not run" if paper is None else paper["status"]
        return (head + f"{describe(best)}, {sig(best['s_imp'])} s per informative MP; the paper's setup has no "
                       f"measurement here ({why}), so no ratio")
    if best["remedy"] == PAPER.label:
        return head + "the paper's setup (pad + float32 + contiguous); no other combination measured here was faster"
    iv: Interval = best["speedup"]
    if iv.includes_one:
        return (f"{name} on cluster {cluster} at scope {scope_label(scope)}: {verdict(iv)} from the paper's setup "
                f"(fastest measured: {describe(best)}, {iv.text()} faster per informative MP; {iv.basis})")
    return (head + f"{describe(best)}, {iv.text()} faster per informative MP than the paper's setup "
                   f"({iv.basis}), {sig(best['mem_ratio'])}× its peak memory")


def answers(g: pd.DataFrame, notes: dict[tuple[str, str], str] | None = None,
            chosen: dict[tuple, tuple[Choice | None, Choice | None]] | None = None) -> Table:
    """Per cluster × scope × input set: the fastest combination, by how much (with its interval)
    and at what memory, and the leanest one; every sentence is computed from ``grid``. ``notes``
    ((input set, batching) -> sentence, e.g. ``report.epoch.diversity_notes``) are added
    where an answer names that input set's policy. ``chosen`` (``choices``): the winners'
    claims, corrected for having been picked from the data."""
    def noted(text: str | Cell, name: str, r: pd.Series | None) -> str | Cell:
        # the answer's own pick, and every policy a set answer names ("X, Y and Z cannot be told apart")
        if r is None or isinstance(text, Cell):
            return text
        found = [n for (iset, batching), n in (notes or {}).items()
                 if iset == name and (batching == r["batching"] or re.search(rf"\b{re.escape(batching)}\b", text))]
        return f"{text}. Note: {' '.join(dict.fromkeys(found))}" if found else text

    rows = []
    for (cluster, scope, name), e in g.groupby(GROUP_KEYS[:3], sort=False):
        ok = e[e["s_imp"].notna()]
        paper = e[e["remedy"] == PAPER.label]
        paper_row = paper.iloc[0] if len(paper) else None
        absent, partial = e[e["s_imp"].isna()], ok[ok["status"] != "ok"]
        measured = f"{len(ok)} of {len(e)}" + "".join(f"; {what}: {', '.join(d['remedy'])}" for what, d in
                                                      (("absent", absent), ("some runs missing", partial)) if len(d))
        if ok.empty:
            rows.append([cluster, scope_label(scope), name, Cell("no combination measured here", "na"),
                         Cell(ABSENT, "na"), measured])
            continue
        best = ok.loc[ok["s_imp"].idxmin()]
        lean = ok.loc[ok["peak_gb"].idxmin()] if ok["peak_gb"].notna().any() else None
        fast_ch, lean_ch = (chosen or {}).get((cluster, scope, name), (None, None))
        steps = int(ok["steps"].sum())
        lean_text: str | Cell = Cell(ABSENT, "na") if lean is None else (
            f"least memory: {lean_ch.sentence(steps)} (peaks per run; no combination uses less than all others "
            f"at family-wise 95 %)" if lean_ch is not None and not lean_ch.claimed and len(lean_ch.tied) > 1 else
            "the paper's setup: no combination measured here used less" if lean["remedy"] == PAPER.label else
            f"{describe(lean)}: {sig(lean['mem_ratio'])}× the paper's peak memory, "
            f"{_speed_words(lean['speedup'])}" if not math.isnan(lean["mem_ratio"])
            else f"{describe(lean)}: {sig(lean['peak_gb'])} GB")
        rows.append([cluster, scope_label(scope), name,
                     noted(_sentence(name, cluster, scope, best, paper_row, fast_ch, steps), name, best),
                     noted(lean_text, name, lean), measured])
    return Table("Answers: which combination to use", ["cluster", "scope", "input set", "fastest per informative MP",
                                                       "least memory", "combinations measured"], rows,
                 note="Computed from the tables below: fastest = lowest seconds per informative megapixel, Σ seconds "
                      "÷ Σ informative megapixels over the timed steps of all runs, with its interval against "
                      "the paper's setup measured on the same cluster, scope and input set. The fastest and the "
                      "leanest are picked from the data, so each is claimed only when every other combination is "
                      "slower (uses more: each run's peak, with its own spread) with intervals corrected over all "
                      "comparisons with it (family-wise 95 %); otherwise the combinations that cannot be told "
                      "from it are named together, and where the interval includes 1 no winner is named. "
                      "Memory = ratio of the largest per-step peak RSS. Absent "
                      "combinations (failed, skipped, not run) are named, never counted.")


def _speed_words(iv: Interval | None) -> str:
    if iv is None or math.isnan(iv.value):
        return "its speed not measured"
    if iv.includes_one:
        return f"speed: {verdict(iv)} ({iv.text()})"
    return f"{iv.text()} its speed"

"""The report's tables as plain data (``Table``): the paper's Tables 1-3 and the summary.

Pure pandas. Derived figures come from hrvs_ray.metrics (``derive`` ran in load.py;
``timed``, ``figure`` and ``variability`` here), so the CLI summary and the report state
the same statistic: ratios of sums over the timed steps (metrics.STATISTIC). The paper's
tables show the results' reference setup
(``Merged.reference``, the paper's own wherever it was run); the Remedies section compares
the rest.
"""
from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from ..metrics import STATISTIC, VARIABILITY_LIMIT, figure, gflops, ratio_of_sums, timed, variability
from ..metrics.flags import ABOVE_CEILING, CEILING_LIMIT, step_ceilings
from ..metrics.interval import ratio_interval, verdict
from ..metrics.noise import Noise, run_spread
from ..metrics.stats import choose
from .answers import versus
from .fmt import NA, Cell, Table, core_kinds_text, counters_text, interval_bases, missing, num, sig, uniq
from .load import Merged, order_input_sets, scope_key, scope_label

GB = 1e9


def _mma(s: pd.Series, scale: float = 1.0) -> list[Any]:
    s = pd.to_numeric(s, errors="coerce").dropna() / scale
    if s.empty:
        return [Cell(NA, "na")] * 3
    return [sig(s.min()), sig(s.mean()), sig(s.max())]


def scope_text(m: Merged, cluster: str, scope: str) -> str:
    """'socket' or, where the placement recorded them, 'socket (6 performance + 8 efficiency
    cores)': a scope on a hybrid CPU may mix core kinds, and the reader must see it."""
    c = m.cells[(m.cells["cluster"] == cluster) & (m.cells["scope"] == scope)]
    kinds = uniq((core_kinds_text(v) for v in c.get("core_kinds", pd.Series(dtype=object))), "; ", "")
    return f"{scope_label(scope)} ({kinds})" if kinds else scope_label(scope)


def table1(m: Merged) -> Table:
    """Informative / padding / total MP per batch, min/avg/max over distinct timed batches
    (a batch seen on several clusters or scopes counts once)."""
    t = timed(m.ref_steps)
    key = ["input_set", "batch_size", "seed", "run", "step", "batch_fingerprint"]
    t = t.drop_duplicates(subset=key)
    rows = []
    for name in order_input_sets(set(t["input_set"].dropna())):
        g = t[t["input_set"] == name]
        rows.append([name, uniq(g["batch_size"]), str(len(g)),
                     *_mma(g["informative_px"], 1e6), *_mma(g["padding_px"], 1e6), *_mma(g["total_px"], 1e6),
                     sig(100 * figure(g, "padding_fraction"))])
    cols = ["input set", "batch size", "batches"] + [f"{k} MP {s}" for k in ("informative", "padding", "total")
                                                     for s in ("min", "avg", "max")] + ["padding % (Σ ÷ Σ)"]
    return Table("Table 1. Megapixels per batch", cols, rows,
                 note="Over the distinct timed batches in the results (warm-up batches excluded; a batch "
                      "seen on several clusters or scopes counts once), three significant digits. Padding is "
                      "the zeros added to bring every image of a batch to the batch's largest height and width.")


TABLE2_NOTE = (
    "Peak RSS is the paper's measure: the training process's whole resident set at its highest during each "
    "timed step (VmHWM reset before the step), as a fresh process reads it: the node's libraries (file-backed "
    "pages of a fresh process that imported and ran the training code, measured once per node) plus the step's "
    "peak anonymous memory (VmHWM less file-backed pages: heap, tensors, the interpreter's data). A cell forked "
    "from a zygote shares the libraries' pages without mapping them, so its own RSS reads ~0.3 GB lower; this "
    "sum reads the same forked or fresh. Rows recorded before the split (schema < 4) show the process's own "
    "peak and 'not split' for libraries. It includes the cell's baseline (Python, PyTorch, the model and "
    "optimizer state: resident before the first batch, measured once per cell) and any heap the allocator kept "
    "from earlier, larger steps. Growth is what the step itself added (peak − resident set at the step's start), "
    "so it leaves out both, and it is smaller than the step's working memory when the step reused heap kept from "
    "an earlier step. Roughly: peak ≈ resident at start (baseline + kept heap) + growth. Measured on a 2-vCPU "
    "VM (benchmarks/memory_carryover.py): a small step right after a large one peaks 1.4× higher than the same "
    "step alone, with zero growth; a sweep with execution.release_heap: true hands the free heap back before "
    "each step (then 1.00×, at 1.09× the step time). Adam's moments and the gradients are allocated by the "
    "first step, so they count in its growth, not in the baseline. All scopes and runs pooled; 1 GB = 10^9 bytes.")


def table2(m: Merged) -> Table:
    """Peak main memory (resident set) per training step, its own growth, and the cell
    baseline, GB, per input set and cluster."""
    t = timed(m.ref_steps)
    cells = m.ref_cells
    rows = []
    for name in order_input_sets(set(t["input_set"].dropna())):
        for cluster in sorted(set(t.loc[t["input_set"] == name, "cluster"].dropna())):
            g = t[(t["input_set"] == name) & (t["cluster"] == cluster)]
            rss = pd.to_numeric(g["peak_rss_bytes"], errors="coerce")
            base = pd.to_numeric(cells.loc[(cells["input_set"] == name) & (cells["cluster"] == cluster),
                                           "baseline_rss_bytes"], errors="coerce").dropna() / GB
            base_text = (Cell("not recorded", "na") if base.empty else sig(base.mean()) if base.nunique() == 1
                         else f"{sig(base.min())}–{sig(base.max())}")
            per_mp = ratio_of_sums(rss, g["total_px"], 1e6) / GB
            rows.append([name, cluster, str(int(rss.notna().sum())), *_mma(rss, GB), *_split(g),
                         *_mma(g["growth_bytes"], GB), base_text,
                         sig(g["total_px"].astype("float64").mean() / 1e6), sig(per_mp)])
    return Table("Table 2. Main memory per batch",
                 ["input set", "cluster", "steps", "peak RSS GB min", "peak RSS GB avg", "peak RSS GB max",
                  "of which libraries GB", "of which anonymous GB avg", "step growth GB min", "step growth GB avg",
                  "step growth GB max", "cell baseline GB", "avg total MP", "peak GB per total MP"], rows,
                 note=TABLE2_NOTE)


def _split(g: pd.DataFrame) -> list[Any]:
    """The peak's two parts: the node's libraries and the step's anonymous memory (training)."""
    lib = pd.to_numeric(g.get("library_bytes", pd.Series(dtype="float64")), errors="coerce").dropna() / GB
    anon = pd.to_numeric(g.get("peak_anon_bytes", pd.Series(dtype="float64")), errors="coerce").dropna() / GB
    if lib.empty or anon.empty:
        return [Cell("not split", "na"), Cell("not split", "na")]
    lib_text = sig(lib.mean()) if lib.nunique() == 1 else f"{sig(lib.min())}–{sig(lib.max())}"
    return [lib_text, sig(anon.mean())]


def _gib(x: Any) -> str | Cell:
    return num(None if missing(x) else float(x) / 2**30, ".0f")


def _isa(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return " ".join(str(i) for i in list(v)) or "—"


TABLE3_ROWS = ("hostname", "CPU model", "vendor", "sockets×cores×threads", "logical CPUs",
               "NUMA nodes", "L1d / L2 / L3 KiB", "memory GiB", "base MHz", "ISA", "kernel", "perf_event_paranoid",
               "counters", "theoretical peak GFLOP/s fp32 (max clock /sys states)",
               "measured ceiling GFLOP/s (fp32 / bf16, per scope)", "core kinds", "unusable because")


def _ceilings_text(v: Any) -> str:
    """A node's measured ceilings, per CPU set (scopes on the same CPUs share one):
    'node: 203 / 806; 2 cores, socket: 130 (conv3x3 …, spread 1.9 %) / 17 (…)'."""
    got = json.loads(v) if isinstance(v, str) else None
    if not isinstance(got, dict) or not got:
        return "not measured"
    groups: dict[Any, list[str]] = {}
    for s, c in sorted(got.items(), key=lambda kv: scope_key(kv[0])):
        groups.setdefault(tuple(c.get("cpus") or (s,)), []).append(s)

    def one(c: dict) -> str:
        if "error" in c:
            return f"not measured ({c['error']})"
        return " / ".join(f"{c[f'{p}_gflops']:.0f}" + (f" ({c[f'{p}_kernel']}, spread {100 * c[f'{p}_spread']:.1f} %)"
                                                       if f"{p}_spread" in c else "") for p in ("fp32", "bf16"))
    return "; ".join(", ".join(scope_label(s) for s in scopes) + ": " + one(got[scopes[0]])
                     for scopes in groups.values())


def _kinds(v: Any) -> str:
    """A node's core kinds: counts per kind, or the kinds' names; '—' when not recorded."""
    text = core_kinds_text(v)
    if text or missing(v):
        return text or "—"
    try:
        names = json.loads(v) if isinstance(v, str) else v
    except ValueError:
        return str(v)
    return ", ".join(str(k) for k in names) if isinstance(names, (list, tuple)) else str(names)


def table3(m: Merged) -> Table:
    """Hardware of every node seen (the node-info description), one column per node as in
    the paper's Table 3: sixteen attributes side by side would wrap every cell."""
    heads, cols = [], []
    for _, n in m.nodes.sort_values(["cluster", "node"]).iterrows():
        heads.append(f"{n['cluster']} / {n['node']}")
        topo = "×".join(NA if pd.isna(n[k]) else str(int(n[k]))
                        for k in ("sockets", "cores_per_socket", "threads_per_core"))
        caches = " / ".join(NA if pd.isna(n[k]) else f"{int(n[k])}" for k in ("l1d_kib", "l2_kib", "l3_kib"))
        cols.append([n["hostname"] or "—", n["cpu_model"] or "—", n["vendor"] or "—",
                     topo, num(n["logical_cpus"], ".0f"), num(n["numa_nodes"], ".0f"), caches,
                     _gib(n["memory_bytes"]), num(n["base_mhz"], ".0f"), _isa(n["isa"]), n["kernel"] or "—",
                     num(n["perf_event_paranoid"], ".0f"), counters_text(n["counters"]),
                     num(n["peak_gflops_fp32"], ".0f") if not missing(n["peak_gflops_fp32"]) else "unknown",
                     _ceilings_text(n.get("ceilings")), _kinds(n.get("core_kinds")),
                     "—" if missing(n.get("unusable")) else str(n.get("unusable"))])
    rows = [[name, *(c[i] for c in cols)] for i, name in enumerate(TABLE3_ROWS)] if cols else []
    return Table("Table 3. Node hardware", ["cluster / node"] + heads, rows,
                 empty="no node descriptions recorded (nodes.parquet missing or empty)")


def _peaks(m: Merged, t: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per step: the node's estimated fp32 peak, and that peak scaled to the cores the step used."""
    n = m.nodes.set_index(["cluster", "node"])
    idx = pd.MultiIndex.from_arrays([t["cluster"], t["node"]])
    peak = pd.to_numeric(n["peak_gflops_fp32"], errors="coerce").reindex(idx).to_numpy()
    phys = (pd.to_numeric(n["sockets"], errors="coerce")
            * pd.to_numeric(n["cores_per_socket"], errors="coerce")).reindex(idx).to_numpy()
    peak = pd.Series(peak, index=t.index, dtype="float64")
    share = pd.to_numeric(t["cores"], errors="coerce").astype("float64") / pd.Series(phys, index=t.index)
    return peak, peak * share.clip(upper=1.0)


def _verdict(t: pd.DataFrame, name: str, run_sd: Noise | None) -> list[Any]:
    """The input set with the lowest figure ``name`` (claimed only when every other is slower
    with intervals corrected over the comparisons with it, else the set that cannot be told
    apart), and slowest ÷ fastest with an interval corrected over every pair (both ends of
    that pair were picked from the data)."""
    vals = {n: figure(d, name) for n, d in t.groupby("input_set", sort=False)}
    vals = {n: v for n, v in vals.items() if not math.isnan(v)}
    if not vals:
        return [Cell(NA, "na"), Cell(NA, "na")]
    best, worst = min(vals, key=vals.get), max(vals, key=vals.get)
    if len(vals) < 2:
        return [best, Cell(NA, "na")]
    parts = {n: t[t["input_set"] == n] for n in vals}
    ch = choose(vals, versus(parts, name, run_sd, lambda x: x))  # type: ignore[arg-type]
    pairs = len(vals) * (len(vals) - 1) // 2
    iv = ratio_interval(parts[worst], parts[best], name, run_sd, level=1 - 0.05 / pairs)
    basis = iv.basis + (f"; simultaneous over the {pairs} pairs (Bonferroni)" if pairs > 1 else "")
    text = iv.text() if not iv.includes_one else f"{iv.text()}: {verdict(iv)}"
    who: Any = best if ch.claimed else Cell(ch.sentence(sum(len(d) for d in parts.values())), "na")
    return [who, Cell(text, "na" if iv.includes_one else "", title=basis)]


def _cv_cell(v: pd.Series | None) -> Any:
    run_cv = float(v["run_cv"]) if v is not None else float("nan")
    if v is not None and bool(v["above_limit"]):
        return Cell(f"{100 * run_cv:.1f}% > {100 * VARIABILITY_LIMIT:.0f}%", "flag")
    if math.isnan(run_cv):
        return Cell(f"{NA} ({int(v['runs']) if v is not None else 0} run)", "na")
    return f"{100 * run_cv:.1f}%"


def timed_with_peaks(m: Merged) -> pd.DataFrame:
    """Timed steps with each step's node peak, scope's share of it and measured ceiling, in
    FLOP/s, and each step's own % of its ceiling."""
    t = timed(m.ref_steps)
    peak, scope_peak = _peaks(m, t) if len(t) else (pd.Series(dtype="float64"), pd.Series(dtype="float64"))
    ceiling = step_ceilings(t, m.nodes)
    return t.assign(peak_flops_s=peak * 1e9, scope_flops_s=scope_peak * 1e9, ceiling_flops_s=ceiling * 1e9,
                    pct_ceiling=100 * t["gflops"] / ceiling)


def _pct(g: pd.DataFrame, column: str) -> str | Cell:
    """Σ FLOPs ÷ Σ (seconds × peak FLOP/s): the share of peak over the steps' whole time."""
    return num(100 * ratio_of_sums(g["flops"], g["seconds"] * g[column]), ".1f")


def _pct_ceiling(g: pd.DataFrame) -> str | Cell:
    """The share of the measured ceiling, flagged above CEILING_LIMIT (not shown as plain fact)."""
    v = 100 * ratio_of_sums(g["flops"], g["seconds"] * g["ceiling_flops_s"])
    if not math.isnan(v) and v > 100 * CEILING_LIMIT:
        return Cell(f"{v:.1f}% > {100 * CEILING_LIMIT:.0f}%: counted FLOPs above executed?", "flag")
    return num(v, ".1f")


def summary(m: Merged) -> tuple[Table, Table]:
    """The answers per cluster and scope, and the per-input-set detail behind them."""
    t = timed_with_peaks(m)
    var = variability(t).set_index(["cluster", "scope", "input_set"]) if len(t) else None
    run_sd = run_spread(t, ["cluster", "scope", "input_set"]) if len(t) else None
    answers, detail = [], []
    for cluster, scope in sorted({(c, s) for c, s in zip(t["cluster"], t["scope"], strict=False)},
                                 key=lambda k: (k[0], scope_key(k[1]))):
        g = t[(t["cluster"] == cluster) & (t["scope"] == scope)]
        v_mp, v_imp = _verdict(g, "s_per_mp", run_sd), _verdict(g, "s_per_informative_mp", run_sd)
        where = scope_text(m, cluster, scope)
        answers.append([cluster, where, *v_mp, *v_imp])
        for name in order_input_sets(set(g["input_set"].dropna())):
            g1 = g[g["input_set"] == name]
            v = var.loc[(cluster, scope, name)] if var is not None and (cluster, scope, name) in var.index else None
            mp, imp = figure(g1, "s_per_mp"), figure(g1, "s_per_informative_mp")
            cells = [Cell(sig(x), "best") if name == b else sig(x) for x, b in ((mp, v_mp[0]), (imp, v_imp[0]))]
            detail.append([cluster, where, name, str(int(g1["run"].nunique())), str(len(g1)), *cells,
                           num(imp / mp if mp else float("nan"), ".2f"),
                           num(gflops(g1), ".1f"), _pct_ceiling(g1),
                           _pct(g1, "scope_flops_s"), _cv_cell(v)])
    a = Table("Answers per cluster and scope",
              ["cluster", "scope", "fastest per MP", "slowest ÷ fastest (s/MP) [95 % interval]",
               "fastest per informative MP", "slowest ÷ fastest (s/informative MP) [95 % interval]"], answers,
              note="Fastest = lowest seconds per megapixel, Σ seconds ÷ Σ megapixels over all timed steps of all "
                   "runs. Intervals: 95 %, on that ratio of sums: from the run-to-run spread where runs repeat, else a "
                   "seeded bootstrap of the steps (hover for what it covers); "
                   "where one includes 1, no measurable difference." + interval_bases(answers))
    d = Table("Summary per cluster, scope and input set",
              ["cluster", "scope", "input set", "runs", "timed steps", "s / MP", "s / informative MP",
               "padding overhead", "GFLOP/s", "% of measured ceiling", "% of theoretical peak (scope's share)",
               "run-to-run CV"],
              detail,
              note=(f"The statistic everywhere: {STATISTIC}; the CLI summary prints the same figures, and the "
                    f"figures per scope show the per-step distributions. Padding overhead = (s per informative "
                    f"MP) ÷ (s per MP). GFLOP/s = Σ counted forward+backward FLOPs ÷ Σ step time. Measured "
                    f"ceiling: the best counted rate of the network's own kernels (3×3 convolutions at "
                    f"ResNet18's channel counts, a 1×1 convolution, a matmul; fp32, bf16 for bf16 steps; "
                    f"forward, each repeated until its best three runs agree within 3 % or a time cap) on the "
                    f"scope's CPUs and threads before the node's first cell; above {100 * CEILING_LIMIT:.0f}% "
                    f"it is flagged: {ABOVE_CEILING}. Theoretical peak: the node's fp32 estimate from the "
                    f"maximum clock /sys states, its share for a scope is peak × cores used ÷ physical cores. "
                    f"Run-to-run CV is the coefficient of variation of each run's own s/MP; above "
                    f"{100 * VARIABILITY_LIMIT:.0f}% it is flagged. Green = fastest in its cluster and scope."))
    return a, d

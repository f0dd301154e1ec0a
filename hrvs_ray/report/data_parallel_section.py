"""The Data-parallel section (issue 28): per cluster, rank scope and input set, what splitting
one global batch over ranks cost and what a smarter split recovered. Shown only when the
results hold data-parallel cells (ranks > 1), so other reports are unchanged.

Pure pandas. ``grid`` is the one place it is computed: one row per cluster × rank scope ×
input set × setup (the remedy with the split set aside) × (ranks, split), the 1-rank cell
first. Figures (hrvs_ray.metrics.data_parallel): scaling efficiency (strong scaling, the same
global batch: the 1-rank cell's Σ s ÷ (ranks × the cell's Σ s)), straggler share (Σ idle
rank-seconds waiting for the slowest rank's compute ÷ Σ ranks × seconds), pixel imbalance
(Σ largest rank's pixels ÷ Σ the ranks' mean), and s / informative MP per split with its 95 %
interval; each split against ``shard`` (split ÷ shard, the existing interval machinery:
hrvs_ray.metrics.interval), and the fastest split claimed only as hrvs_ray.metrics.stats
allows a winner picked from the data.
"""
from __future__ import annotations

import math

import pandas as pd

from ..metrics import GROUP_KEYS, figures, timed
from ..metrics.data_parallel import (
    EFFICIENCY_BASIS,
    ONE_RANK_SPLIT,
    dp_figures,
    is_data_parallel,
    rank_scope_of,
    scaling_efficiency,
    setup_label,
)
from ..metrics.interval import LEVEL, Interval, ratio_interval, value_interval
from ..metrics.noise import Noise, run_spread
from ..metrics.stats import Choice, choose
from .answers import versus
from .fmt import Cell, Table, interval_bases, sig
from .load import Merged, scope_key, scope_label

ABSENT = "—"
PLACE = ["cluster", "rank_scope", "input_set", "setup"]
COLUMNS = PLACE + ["scope", "ranks", "split", "remedy", "runs", "steps", "s_imp", "s_imp_low", "s_imp_high",
                   "vs_shard", "efficiency", "straggler", "imbalance"]
SPLIT_ORDER = {"shard": 0, "balanced": 1, "uniform": 2}


def has_data_parallel(m: Merged) -> bool:
    """Whether the results hold a data-parallel cell (a step or a cell row with ranks > 1)."""
    return bool(is_data_parallel(m.steps).any() or is_data_parallel(m.cells).any())


def _annotated(steps: pd.DataFrame) -> pd.DataFrame:
    """Timed steps with each row's rank scope and setup (its remedy, the split set aside)."""
    t = timed(steps)
    # a label names one remedy: its setup once per label, not per row
    setups = {r["remedy"]: setup_label(r) for r in t.drop_duplicates("remedy").to_dict("records")}
    return t.assign(rank_scope=t["scope"].map(rank_scope_of), setup=t["remedy"].map(setups),
                    ranks=pd.to_numeric(t["ranks"], errors="coerce").fillna(1).astype(int))


def grid(m: Merged) -> pd.DataFrame:
    """Per cluster × rank scope × input set × setup holding a data-parallel cell: the 1-rank
    cell's row, then one per (ranks, split), with the section's figures."""
    t = _annotated(m.steps)
    run_sd = run_spread(t, GROUP_KEYS, "s_per_informative_mp")
    order = {n: i for i, n in enumerate(m.input_sets)}
    dp = t[t["ranks"] > 1]
    places = sorted({tuple(k) for k in dp[PLACE].itertuples(index=False)},
                    key=lambda k: (k[0], scope_key(k[1]), order.get(k[2], len(order)), k[3]))
    rows = []
    for place in places:
        here = t[(t[PLACE] == pd.Series(place, index=PLACE)).all(axis=1)]
        # (ranks, split) -> its steps; a 1-rank cell's rank scope is its own scope, its split shard
        parts = {k: g for k, g in here.groupby(["ranks", "split"], sort=False)}
        one = parts.get((1, ONE_RANK_SPLIT), here.iloc[:0])
        # each rank count's splits against its shard are one family (issue 26): simultaneous intervals
        family = {r: sum(1 for (rr, sp) in parts if rr == r and sp != ONE_RANK_SPLIT) for r, _ in parts}
        for ranks, split in sorted(parts, key=lambda k: (k[0], SPLIT_ORDER.get(k[1], 9), k[1])):
            rows.append(_row(place, parts[(ranks, split)], ranks, split, one, parts.get((ranks, ONE_RANK_SPLIT)),
                             run_sd, 1 - (1 - LEVEL) / max(1, family[ranks])))
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(place: tuple, g: pd.DataFrame, ranks: int, split: str, one: pd.DataFrame,
         shard: pd.DataFrame | None, run_sd: Noise | None, level: float = LEVEL) -> dict:
    f = figures(g)
    _, low, high = value_interval(g, "s_per_informative_mp", run_sd)
    row = dict(zip(PLACE, place, strict=True), scope=str(g["scope"].iloc[0]), ranks=int(ranks), split=split,
               remedy=str(g["remedy"].iloc[0]), runs=f["runs"], steps=f["steps"], s_imp=f["s_per_informative_mp"],
               s_imp_low=low, s_imp_high=high, vs_shard=None, efficiency=None, straggler=float("nan"),
               imbalance=float("nan"))
    if ranks > 1:
        d = dp_figures(g)
        row.update(straggler=d["straggler_share"], imbalance=d["pixel_imbalance"])
        if len(one):
            row["efficiency"] = scaling_efficiency(one, g, int(ranks), run_sd)
        if shard is not None and split != ONE_RANK_SPLIT:
            row["vs_shard"] = ratio_interval(g, shard, "s_per_informative_mp", run_sd, level=level)
    return row


def choices(m: Merged, g: pd.DataFrame) -> dict[tuple, Choice]:
    """Per place × ranks with two splits or more: the fastest split (s / informative MP), picked
    from the data and so claimed only with intervals corrected over the k - 1 comparisons."""
    t = _annotated(m.steps)
    parts = {k: d for k, d in t.groupby(GROUP_KEYS, sort=False)}
    run_sd = run_spread(t, GROUP_KEYS, "s_per_informative_mp")
    out = {}
    for key, e in g[g["ranks"] > 1].groupby([*PLACE, "ranks"], sort=False):
        ok = e[e["s_imp"].notna()]
        if len(ok) < 2:
            continue
        label = dict(zip(ok["split"], zip(ok["scope"], ok["remedy"], strict=True), strict=True))
        def where(split: str, k: tuple = key, lab: dict = label) -> tuple:
            return (k[0], lab[split][0], k[2], lab[split][1])
        out[key] = choose(dict(zip(ok["split"], ok["s_imp"], strict=True)),
                          versus(parts, "s_per_informative_mp", run_sd, where))  # type: ignore[arg-type]
    return out


def _pct(x: float) -> str | Cell:
    return Cell(ABSENT, "na") if math.isnan(x) else f"{sig(100 * x)} %"


def _iv_cell(iv: Interval | None, reference: str = "") -> str | Cell:
    if iv is None or math.isnan(iv.value):
        return reference or Cell(ABSENT, "na")
    return Cell(iv.text(), "na" if iv.includes_one else "", title=iv.basis)


def _eff_cell(iv: Interval | None) -> str | Cell:
    if iv is None or math.isnan(iv.value):
        return Cell(ABSENT, "na")
    return Cell(f"{sig(iv.value)} [{sig(iv.low)}–{sig(iv.high)}]", title=iv.basis)


def tables(g: pd.DataFrame) -> list[Table]:
    """One table per cluster × rank scope: every input set, setup, rank count and split."""
    out = []
    for (cluster, rscope), d in g.groupby(["cluster", "rank_scope"], sort=False):
        rows = []
        for _, r in d.iterrows():
            one = r["ranks"] == 1
            rows.append([r["input_set"], r["setup"], scope_label(r["scope"]), str(int(r["ranks"])),
                         ABSENT if one else r["split"], str(int(r["runs"])), str(int(r["steps"])),
                         f"{sig(r['s_imp'])} [{sig(r['s_imp_low'])}–{sig(r['s_imp_high'])}]",
                         _iv_cell(r["vs_shard"], "" if one else "1×"), "1 (reference)" if one else
                         _eff_cell(r["efficiency"]), _pct(r["straggler"]),
                         Cell(ABSENT, "na") if math.isnan(r["imbalance"]) else f"{sig(r['imbalance'])}×"])
        out.append(Table(f"Data-parallel — {cluster}, each rank {scope_label(rscope)}",
                         ["input set", "setup", "scope", "ranks", "split", "runs", "timed steps",
                          "s / informative MP (Σ s ÷ Σ MP) [95 % interval]",
                          "split ÷ shard, s / informative MP [simultaneous 95 % interval]",
                          "scaling efficiency (strong, same global batch) [95 % interval]",
                          "straggler share (Σ idle ÷ Σ ranks × s)", "pixel imbalance (Σ max ÷ Σ mean)"], rows,
                         note=NOTE + interval_bases(rows)))
    return out


NOTE = ("Every figure is a ratio of sums over the timed steps of all runs. Scaling efficiency is strong scaling on "
        "the same global batch: the 1-rank cell's Σ seconds ÷ (ranks × the data-parallel cell's Σ seconds) over the "
        "steps both trained on the same images (1 = perfect). Straggler share: Σ over steps and ranks of (the "
        "slowest rank's compute − the rank's compute) ÷ Σ ranks × step seconds: the ranks' time spent waiting for "
        "the slowest. Pixel imbalance: Σ the largest rank's pixels as trained (padding included) ÷ Σ the ranks' "
        "mean (1 = even). split ÷ shard below 1: the split is faster than shard; its intervals are simultaneous "
        "over the splits of one rank count (each at 1 − 0.05 ÷ their number); greyed where the interval "
        "includes 1 (not measurable).")


def _split_words(r: pd.Series) -> str:
    iv: Interval | None = r["vs_shard"]
    if iv is None or math.isnan(iv.value):
        return f"{r['split']}: not measured against shard"
    if iv.includes_one:
        return f"{r['split']}: not measurable ({iv.text()} shard's s / informative MP: the interval includes 1)"
    how = f"{sig(1 / iv.value)}× faster" if iv.value < 1 else f"{sig(iv.value)}× slower"
    return f"{r['split']}: {iv.text()} shard's s / informative MP, {how} than shard"


def answers(g: pd.DataFrame, chosen: dict[tuple, Choice] | None = None) -> Table:
    """Per cluster × rank scope × input set × setup × ranks: efficiency, stragglers and
    imbalance per split, how much each split recovers against shard, and the fastest split."""
    rows = []
    for key, e in g[g["ranks"] > 1].groupby([*PLACE, "ranks"], sort=False):
        cluster, rscope, name, setup, ranks = key
        by = {r["split"]: r for _, r in e.iterrows()}
        eff = "; ".join(f"{s} {sig(r['efficiency'].value)} [{sig(r['efficiency'].low)}–{sig(r['efficiency'].high)}]"
                        for s, r in by.items() if r["efficiency"] is not None and not math.isnan(r["efficiency"].value))
        stragglers = "; ".join(f"{s} {sig(100 * r['straggler'])} %, imbalance {sig(r['imbalance'])}×"
                               for s, r in by.items() if not math.isnan(r["straggler"]))
        recover = "; ".join(_split_words(r) for s, r in by.items() if s != ONE_RANK_SPLIT)
        ch = (chosen or {}).get(key)
        steps = int(e["steps"].sum())
        fastest = (ABSENT if ch is None else f"{ch.best} (faster than every other split at family-wise 95 %, "
                   f"{ch.comparisons} comparison{'s' if ch.comparisons > 1 else ''})" if ch.claimed
                   else ch.sentence(steps))
        rows.append([cluster, f"{ranks} × {scope_label(rscope)}", name, setup, eff or Cell(ABSENT, "na"),
                     stragglers or Cell(ABSENT, "na"), recover or Cell("only shard was run", "na"), fastest])
    return Table("Answers: which split recovers how much", ["cluster", "ranks × each rank", "input set", "setup",
                                                             "scaling efficiency per split [95 %]",
                                                             "straggler share and pixel imbalance per split",
                                                             "each split against shard", "fastest split"], rows,
                 note="Computed from the tables below. Scaling efficiency is strong scaling on the same global "
                      "batch (" + EFFICIENCY_BASIS + "). A split's ratio to shard is of s / informative MP on the "
                      "same images, with its 95 % interval; 'not measurable' where the interval includes 1. The "
                      "fastest split is picked from the data, so it is claimed only when every other split is slower "
                      "with intervals corrected over all comparisons with it; otherwise the splits that cannot be "
                      "told apart are named together.",
                 empty="No data-parallel cell has timed steps: see Failed and skipped cells.")

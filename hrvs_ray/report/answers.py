"""Answers across architectures, the paper's headline comparison, computed: per scope and
input set the fastest cluster and by how much; per cluster the size-and-shape penalty
(each input set's seconds per informative MP ÷ LR&FS's), i.e. which architecture suffers
least from large, variably shaped images.

Pure pandas; the paper's setup only (``Merged.ref_steps``), so remedies never mix in.
Every figure is the one statistic (ratio of sums, hrvs_ray.metrics) and every ratio carries
its 95 % interval (hrvs_ray.metrics.interval).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..metrics import figure, timed
from ..metrics.interval import Interval, ratio_interval, verdict
from ..metrics.noise import run_spread
from ..metrics.stats import Choice, Contrast, choose
from .fmt import NA, Cell, Table, interval_bases, sig
from .load import PAPER_ORDER, Merged, order_input_sets, scope_key, scope_label

REFERENCE_SET = PAPER_ORDER[0]  # LR&FS: no padding, the fixed-size baseline of the paper
KEYS = ["scope", "input_set", "cluster"]


def _groups(m: Merged, name: str) -> tuple[pd.DataFrame, dict, float | None]:
    """Per scope × input set × cluster: figure ``name``, the cores the steps used, the timed
    steps themselves (for intervals), and the sweep's run-to-run spread."""
    t = timed(m.ref_steps)
    if t.empty:
        return pd.DataFrame(columns=KEYS + ["value", "cores"]), {}, None
    parts = {k: g for k, g in t.groupby(KEYS, sort=False)}
    rows = [dict(zip(KEYS, k, strict=True), value=figure(g, name), cores=float(g["cores"].median()))
            for k, g in parts.items()]
    return pd.DataFrame(rows, columns=KEYS + ["value", "cores"]), parts, run_spread(t, KEYS, name)


def _cores(n: float) -> str:
    return "" if math.isnan(n) else f" ({int(n)} core{'s' if n != 1 else ''})"


def _times(iv: Interval, who: str = "") -> Cell:
    """'who: 1.42× [1.30–1.55]' or, interval including 1, '…: no measurable difference …'."""
    text = f"{who}: {iv.text()}" if who else iv.text()
    if iv.includes_one:
        return Cell(f"{text}, {verdict(iv)}", "na", title=iv.basis)
    return Cell(text, title=iv.basis)


def chosen_interval(ch: Choice, other: str, steps: int, basis: str) -> Interval:
    """other ÷ the chosen best as an Interval, corrected over the k - 1 comparisons with it."""
    value, low, high = ch.intervals[other]
    return Interval(value, low, high, steps, f"{basis}; simultaneous with the fastest over {ch.comparisons} "
                                             f"comparison{'s' if ch.comparisons > 1 else ''} (Bonferroni)")


def versus(parts: dict, name: str, noise: object, key: object) -> object:
    """A ``choose`` comparison: candidate a ÷ candidate b of ``parts[key(x)]`` as a Contrast."""
    def one(a: str, b: str) -> Contrast:
        iv = ratio_interval(parts[key(a)], parts[key(b)], name, noise)  # type: ignore[operator,arg-type]
        return iv.contrast or Contrast(float(np.log(iv.value)) if iv.value > 0 else float("nan"), float("nan"), 0,
                                       iv.basis)
    return one


def fastest_cluster(m: Merged) -> Table:
    """Per scope and input set with two clusters or more: the fastest, claimed only when every
    other cluster is slower than it with intervals corrected over the k - 1 comparisons with
    it (a winner picked from the data); otherwise the clusters that cannot be told apart."""
    c, parts, run_sd = _groups(m, "s_per_mp")
    c = c.dropna(subset=["value"])
    rows = []
    order = {n: i for i, n in enumerate(m.input_sets)}
    keys = sorted({(s, n) for s, n in zip(c["scope"], c["input_set"], strict=True)},
                  key=lambda k: (scope_key(k[0]), order.get(k[1], len(order))))
    for scope, name in keys:
        e = c[(c["scope"] == scope) & (c["input_set"] == name)].sort_values(["value", "cluster"])
        if len(e) < 2:
            continue
        ch = choose(dict(zip(e["cluster"], e["value"], strict=True)),
                    versus(parts, "s_per_mp", run_sd, lambda x, s=scope, n=name: (s, n, x)))  # type: ignore[arg-type]
        first, second, last = e.iloc[0], e.iloc[1], e.iloc[-1]
        steps = sum(len(parts[(scope, name, x)]) for x in e["cluster"])
        basis = ratio_interval(parts[(scope, name, second["cluster"])], parts[(scope, name, first["cluster"])],
                               "s_per_mp", run_sd).basis
        vs = [chosen_interval(ch, r["cluster"], len(parts[(scope, name, r["cluster"])]) +
                              len(parts[(scope, name, first["cluster"])]), basis) for r in (second, last)]
        best = (Cell(first["cluster"] + _cores(first["cores"]), "best") if ch.claimed else
                Cell(ch.sentence(steps), "na", title="no cluster is faster than all others at family-wise 95 %"))
        rows.append([scope_label(scope), name, str(len(e)), best,
                     sig(first["value"]), _times(vs[0], second["cluster"]), _times(vs[1], last["cluster"])])
    return Table("Fastest cluster per scope and input set",
                 ["scope", "input set", "clusters", "fastest", "lowest s / MP (Σ s ÷ Σ MP)",
                  "runner-up (× slower) [simultaneous 95 % interval]",
                  "slowest (× slower) [simultaneous 95 % interval]"], rows,
                 note="Lowest seconds per megapixel (Σ seconds ÷ Σ megapixels over the timed steps) of the paper's "
                      "setup at the same scope; the same batches ran everywhere, so the ranking per informative "
                      "megapixel is the same. The fastest is picked from the data, so it is claimed only when every "
                      "other cluster is slower than it with intervals corrected over all comparisons with it "
                      "(family-wise 95 %); otherwise the clusters that cannot be told from it are named together. "
                      "A scope names a place (4 cores, a socket, a node), not a core count: the cores "
                      "used are shown." + interval_bases(rows),
                 empty="One cluster per scope and input set in these results: nothing to compare across "
                       "architectures.")


def penalty(m: Merged) -> Table:
    """Per cluster and scope: every other input set's s / informative MP ÷ LR&FS's with its
    interval, and their geometric mean; the least penalised cluster of each scope in green."""
    c, parts, run_sd = _groups(m, "s_per_informative_mp")
    others = [n for n in order_input_sets(set(c["input_set"])) if n != REFERENCE_SET]
    cols = ["cluster", "scope", f"{REFERENCE_SET} s / informative MP (Σ s ÷ Σ MP)"] + \
        [f"{n} ÷ {REFERENCE_SET} [95 % interval]" for n in others] + ["geometric mean"]
    table = Table("Size-and-shape penalty per cluster", cols, [],
                  note=f"How many times longer an informative megapixel takes than in {REFERENCE_SET} on the same "
                       f"cluster and scope: the cost of larger, variably shaped images (padding, memory traffic). "
                       f"Lower is better; green = the cluster that suffers least at that scope. Intervals: 95 %, "
                       f"on the ratio of sums (README: Intervals); the geometric mean has none.",
                  empty=f"Needs {REFERENCE_SET} and another input set measured on the same cluster and scope.")
    if REFERENCE_SET not in set(c["input_set"]) or not others:
        return table
    v = c.set_index(["cluster", "scope", "input_set"])["value"]
    found = []
    for cluster, scope in sorted({(k[0], k[1]) for k in v.index}, key=lambda k: (scope_key(k[1]), k[0])):
        ref = v.get((cluster, scope, REFERENCE_SET), float("nan"))
        ivs = [ratio_interval(parts[(scope, n, cluster)], parts[(scope, REFERENCE_SET, cluster)],
                              "s_per_informative_mp", run_sd)
               if (scope, n, cluster) in parts and not math.isnan(ref) else None for n in others]
        known = [iv.value for iv in ivs if iv is not None and not math.isnan(iv.value)]
        geo = float(np.exp(np.mean(np.log(known)))) if known else float("nan")
        found.append((cluster, scope, ref, ivs, geo))
    for cluster, scope, ref, ivs, geo in found:
        peers = [f[4] for f in found if f[1] == scope and not math.isnan(f[4])]
        best = len(peers) > 1 and geo == min(peers)
        table.rows.append([cluster, scope_label(scope), sig(ref)] +
                          [Cell(NA, "na") if iv is None or math.isnan(iv.value) else _times(iv) for iv in ivs] +
                          [Cell(NA, "na") if math.isnan(geo) else Cell(f"{sig(geo)}×", "best" if best else "")])
    table.note += interval_bases(table.rows)
    return table

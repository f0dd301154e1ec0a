"""Answers across architectures, the paper's headline comparison, computed: per scope and
input set the fastest cluster and by how much; per cluster the size-and-shape penalty
(each input set's seconds per informative MP ÷ LR&FS's), i.e. which architecture suffers
least from large, variably shaped images.

Pure pandas; the paper's setup only (``Merged.ref_steps``), so remedies never mix in.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..metrics import CENTRAL, central, timed
from .fmt import NA, Cell, Table, sig
from .load import PAPER_ORDER, Merged, order_input_sets, scope_key, scope_label

REFERENCE_SET = PAPER_ORDER[0]  # LR&FS: no padding, the fixed-size baseline of the paper


def _centrals(m: Merged, column: str) -> pd.DataFrame:
    """Per scope × input set × cluster: the CENTRAL of ``column`` and the cores the steps used."""
    t = timed(m.ref_steps)
    if t.empty:
        return pd.DataFrame(columns=["scope", "input_set", "cluster", "value", "cores"])
    g = t.groupby(["scope", "input_set", "cluster"], sort=False)
    return pd.DataFrame({"value": g[column].agg(central), "cores": g["cores"].median()}).reset_index()


def _cores(n: float) -> str:
    return "" if math.isnan(n) else f" ({int(n)} core{'s' if n != 1 else ''})"


def fastest_cluster(m: Merged) -> Table:
    """Per scope and input set with two clusters or more: the fastest, the runner-up's and
    the slowest's time as multiples of it."""
    c = _centrals(m, "s_per_mp").dropna(subset=["value"])
    rows = []
    order = {n: i for i, n in enumerate(m.input_sets)}
    keys = sorted({(s, n) for s, n in zip(c["scope"], c["input_set"])},
                  key=lambda k: (scope_key(k[0]), order.get(k[1], len(order))))
    for scope, name in keys:
        e = c[(c["scope"] == scope) & (c["input_set"] == name)].sort_values(["value", "cluster"])
        if len(e) < 2:
            continue
        first, second, last = e.iloc[0], e.iloc[1], e.iloc[-1]
        rows.append([scope_label(scope), name, str(len(e)), Cell(first["cluster"] + _cores(first["cores"]), "best"),
                     sig(first["value"]), f"{second['cluster']}: {sig(second['value'] / first['value'])}×",
                     f"{last['cluster']}: {sig(last['value'] / first['value'])}×"])
    return Table("Fastest cluster per scope and input set",
                 ["scope", "input set", "clusters", "fastest", f"its s / MP ({CENTRAL})", "runner-up (× slower)",
                  "slowest (× slower)"], rows,
                 note=f"Lowest {CENTRAL} seconds per megapixel of the paper's setup at the same scope; the same "
                      f"batches ran everywhere, so the ranking per informative megapixel is the same. A scope "
                      f"names a place (4 cores, a socket, a node), not a core count: the cores used are shown.",
                 empty="One cluster per scope and input set in these results: nothing to compare across "
                       "architectures.")


def penalty(m: Merged) -> Table:
    """Per cluster and scope: every other input set's s / informative MP ÷ LR&FS's, and
    their geometric mean; the least penalised cluster of each scope in green."""
    c = _centrals(m, "s_per_informative_mp")
    others = [n for n in order_input_sets(set(c["input_set"])) if n != REFERENCE_SET]
    cols = ["cluster", "scope", f"{REFERENCE_SET} s / informative MP ({CENTRAL})"] + \
        [f"{n} ÷ {REFERENCE_SET}" for n in others] + ["geometric mean"]
    table = Table("Size-and-shape penalty per cluster", cols, [],
                  note=f"How many times longer an informative megapixel takes than in {REFERENCE_SET} on the same "
                       f"cluster and scope: the cost of larger, variably shaped images (padding, memory traffic). "
                       f"Lower is better; green = the cluster that suffers least at that scope.",
                  empty=f"Needs {REFERENCE_SET} and another input set measured on the same cluster and scope.")
    if REFERENCE_SET not in set(c["input_set"]) or not others:
        return table
    v = c.set_index(["cluster", "scope", "input_set"])["value"]
    found = []
    for cluster, scope in sorted({(k[0], k[1]) for k in v.index}, key=lambda k: (scope_key(k[1]), k[0])):
        ref = v.get((cluster, scope, REFERENCE_SET), float("nan"))
        ratios = [v.get((cluster, scope, n), float("nan")) / ref for n in others]
        known = [r for r in ratios if not math.isnan(r)]
        geo = float(np.exp(np.mean(np.log(known)))) if known and not math.isnan(ref) else float("nan")
        found.append((cluster, scope, ref, ratios, geo))
    for cluster, scope, ref, ratios, geo in found:
        peers = [f[4] for f in found if f[1] == scope and not math.isnan(f[4])]
        best = len(peers) > 1 and geo == min(peers)
        table.rows.append([cluster, scope_label(scope), sig(ref)] +
                          [Cell(NA, "na") if math.isnan(r) else f"{sig(r)}×" for r in ratios] +
                          [Cell(NA, "na") if math.isnan(geo) else Cell(f"{sig(geo)}×", "best" if best else "")])
    return table

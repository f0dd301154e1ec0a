"""The report's tables as plain data (``Table``): the paper's Tables 1-3 and the summary.

Pure pandas. Numbers are formatted here, escaping happens in html.py; a cell may carry a
CSS class from a fixed vocabulary (``best``, ``flag``, ``na``) but never markup.
Derived figures come from hrvs_ray.metrics (``derive`` ran in load.py, ``variability`` here).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

from ..metrics import VARIABILITY_LIMIT, variability
from .load import Merged, order_input_sets, scope_key, scope_label

NA = "n/a"


@dataclass(frozen=True)
class Cell:
    text: str
    cls: str = ""      # one of "", "best", "flag", "na" (set by code, never from data)
    title: str = ""    # tooltip, escaped like everything else


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""
    empty: str = "no data"
    extra: dict[str, Any] = field(default_factory=dict)


def num(x: Any, spec: str = ".3g") -> str | Cell:
    """A number formatted with ``spec``; missing/NaN shown as 'n/a'."""
    if x is None:
        return Cell(NA, "na")
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return Cell(NA, "na")
    return format(v, spec)


def uniq(values: Iterable[Any], sep: str = ", ") -> str:
    """Distinct non-empty values, sorted, joined; '—' when there are none."""
    out = sorted({str(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))
                  and str(v) != ""})
    return sep.join(out) if out else "—"


def timed(steps: pd.DataFrame) -> pd.DataFrame:
    """Timed steps only: warm-up steps (first-touch allocation, thread pool start) are kept in
    the parquet but left out of every table and figure of timings, as in the paper."""
    return steps[~steps["warmup"].astype("boolean").fillna(False).astype(bool)]


def _mma(s: pd.Series, scale: float = 1.0, spec: str = ".1f") -> list[Any]:
    s = pd.to_numeric(s, errors="coerce").dropna() / scale
    if s.empty:
        return [Cell(NA, "na")] * 3
    return [num(s.min(), spec), num(s.mean(), spec), num(s.max(), spec)]


def table1(m: Merged) -> Table:
    """Informative / padding / total MP per batch, min/avg/max over distinct timed batches
    (a batch seen on several clusters or scopes counts once)."""
    t = timed(m.steps)
    key = ["input_set", "batch_size", "seed", "run", "step", "batch_fingerprint"]
    t = t.drop_duplicates(subset=key)
    rows = []
    for name in order_input_sets(set(t["input_set"].dropna())):
        g = t[t["input_set"] == name]
        pad = (g["padding_px"].astype("float64") / g["total_px"].astype("float64")).mean()
        rows.append([name, uniq(g["batch_size"]), str(len(g)),
                     *_mma(g["informative_px"], 1e6), *_mma(g["padding_px"], 1e6), *_mma(g["total_px"], 1e6),
                     num(100 * pad, ".1f")])
    cols = ["input set", "batch size", "batches"] + [f"{k} MP {s}" for k in ("informative", "padding", "total")
                                                     for s in ("min", "avg", "max")] + ["padding % (avg)"]
    return Table("Table 1. Megapixels per batch", cols, rows,
                 note="Over the distinct timed batches in the results (warm-up batches excluded; a batch "
                      "seen on several clusters or scopes counts once). Padding is the zeros added to "
                      "bring every image of a batch to the batch's largest height and width.")


def table2(m: Merged) -> Table:
    """Peak main memory (resident set) per training step, GB, per input set and cluster."""
    t = timed(m.steps)
    rows = []
    for name in order_input_sets(set(t["input_set"].dropna())):
        for cluster in sorted(set(t.loc[t["input_set"] == name, "cluster"].dropna())):
            g = t[(t["input_set"] == name) & (t["cluster"] == cluster)]
            rss = pd.to_numeric(g["peak_rss_bytes"], errors="coerce")
            per_mp = (rss / g["total_px"].astype("float64")).mean() * 1e6 / 1e9
            rows.append([name, cluster, str(int(rss.notna().sum())), *_mma(rss, 1e9, ".2f"),
                         num(g["total_px"].astype("float64").mean() / 1e6, ".1f"), num(per_mp, ".3f")])
    return Table("Table 2. Main memory per batch",
                 ["input set", "cluster", "steps", "min GB", "avg GB", "max GB", "avg total MP", "GB per total MP"],
                 rows, note="Peak resident set size of the training process during each timed step "
                            "(VmHWM reset before the step), all scopes and runs pooled; 1 GB = 10^9 bytes.")


def _gib(x: Any) -> str | Cell:
    return num(None if x is None or pd.isna(x) else float(x) / 2**30, ".0f")


def _isa(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return " ".join(str(i) for i in list(v)) or "—"


def table3(m: Merged) -> Table:
    """Hardware of every node seen (the node-info description)."""
    rows = []
    for _, n in m.nodes.sort_values(["cluster", "node"]).iterrows():
        topo = "×".join(NA if pd.isna(n[k]) else str(int(n[k]))
                        for k in ("sockets", "cores_per_socket", "threads_per_core"))
        caches = " / ".join(NA if pd.isna(n[k]) else f"{int(n[k])}" for k in ("l1d_kib", "l2_kib", "l3_kib"))
        rows.append([n["cluster"], n["node"], n["hostname"] or "—", n["cpu_model"] or "—", n["vendor"] or "—",
                     topo, num(n["logical_cpus"], ".0f"), num(n["numa_nodes"], ".0f"), caches,
                     _gib(n["memory_bytes"]), num(n["base_mhz"], ".0f"), _isa(n["isa"]), n["kernel"] or "—",
                     num(n["perf_event_paranoid"], ".0f"), n["counters"] or "—", num(n["peak_gflops_fp32"], ".0f")])
    return Table("Table 3. Node hardware",
                 ["cluster", "node", "hostname", "CPU model", "vendor", "sockets×cores×threads", "logical CPUs",
                  "NUMA nodes", "L1d / L2 / L3 KiB", "memory GiB", "base MHz", "ISA", "kernel",
                  "perf_event_paranoid", "counters", "est. peak GFLOP/s fp32"], rows,
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


def summary(m: Merged) -> tuple[Table, Table]:
    """The answers per cluster and scope, and the per-input-set detail behind them."""
    t = timed(m.steps)
    peak, scope_peak = _peaks(m, t) if len(t) else (pd.Series(dtype="float64"), pd.Series(dtype="float64"))
    t = t.assign(pct_node=100 * t["gflops"] / peak, pct_scope=100 * t["gflops"] / scope_peak)
    var = variability(t).set_index(["cluster", "scope", "input_set"]) if len(t) else None
    answers, detail = [], []
    groups = sorted({(c, s) for c, s in zip(t["cluster"], t["scope"])}, key=lambda k: (k[0], scope_key(k[1])))
    for cluster, scope in groups:
        g = t[(t["cluster"] == cluster) & (t["scope"] == scope)]
        means = {n: (g.loc[g["input_set"] == n, "s_per_mp"].mean(), g.loc[g["input_set"] == n,
                     "s_per_informative_mp"].mean()) for n in order_input_sets(set(g["input_set"].dropna()))}
        valid_mp = {k: v[0] for k, v in means.items() if not pd.isna(v[0])}
        valid_imp = {k: v[1] for k, v in means.items() if not pd.isna(v[1])}
        best_mp = min(valid_mp, key=valid_mp.get) if valid_mp else None
        best_imp = min(valid_imp, key=valid_imp.get) if valid_imp else None

        def verdict(best: str | None, vals: dict[str, float]) -> list[Any]:
            if best is None:
                return [Cell(NA, "na"), Cell(NA, "na")]
            spread = max(vals.values()) / vals[best] if len(vals) > 1 else float("nan")
            return [best, num(spread, ".2f")]
        answers.append([cluster, scope_label(scope), *verdict(best_mp, valid_mp), *verdict(best_imp, valid_imp)])
        for name, (smp, simp) in means.items():
            g1 = g[g["input_set"] == name]
            v = var.loc[(cluster, scope, name)] if var is not None and (cluster, scope, name) in var.index else None
            run_cv = float(v["run_cv"]) if v is not None else float("nan")
            flagged = bool(v["above_limit"]) if v is not None else False
            cv_cell: Any = (Cell(f"{100 * run_cv:.1f}% > {100 * VARIABILITY_LIMIT:.0f}%", "flag") if flagged
                            else Cell(f"{NA} ({int(v['runs']) if v is not None else 0} run)", "na")
                            if math.isnan(run_cv) else f"{100 * run_cv:.1f}%")
            step_cv = float(v["step_cv"]) if v is not None else float("nan")
            detail.append([cluster, scope_label(scope), name,
                           str(int(g1["run"].nunique())), str(len(g1)),
                           Cell(str(num(smp)), "best") if name == best_mp else num(smp),
                           Cell(str(num(simp)), "best") if name == best_imp else num(simp),
                           num(simp / smp if smp else float("nan"), ".2f"),
                           num(g1["gflops"].mean(), ".1f"), num(g1["pct_node"].mean(), ".1f"),
                           num(g1["pct_scope"].mean(), ".1f"),
                           Cell(NA, "na") if math.isnan(step_cv) else f"{100 * step_cv:.1f}%", cv_cell])
    a = Table("Answers per cluster and scope",
              ["cluster", "scope", "fastest per MP", "slowest ÷ fastest (s/MP)", "fastest per informative MP",
               "slowest ÷ fastest (s/informative MP)"], answers,
              note="Fastest = lowest mean seconds per megapixel over all timed steps of all runs.")
    d = Table("Summary per cluster, scope and input set",
              ["cluster", "scope", "input set", "runs", "timed steps", "s / MP", "s / informative MP",
               "padding overhead", "GFLOP/s", "% of node peak", "% of scope's share of peak",
               "step-to-step CV", "run-to-run CV"], detail,
              note=(f"Means over timed steps. Padding overhead = (s per informative MP) ÷ (s per MP). "
                    f"GFLOP/s = counted forward+backward FLOPs ÷ step time; peak is the node's estimated fp32 "
                    f"peak, and its share for a scope is peak × cores used ÷ physical cores. Run-to-run CV is "
                    f"the coefficient of variation of per-run mean s/MP; above "
                    f"{100 * VARIABILITY_LIMIT:.0f}% it is flagged. Green = fastest in its cluster and scope."))
    return a, d

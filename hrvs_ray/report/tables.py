"""The report's tables as plain data (``Table``): the paper's Tables 1-3 and the summary.

Pure pandas. Derived figures come from hrvs_ray.metrics (``derive`` ran in load.py;
``timed``, ``central``, ``spread`` and ``variability`` here), so the CLI summary and the
report state the same statistic. The paper's tables show the results' reference setup
(``Merged.reference``, the paper's own wherever it was run); the Remedies section compares
the rest.
"""
from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from ..metrics import ABOVE_CEILING, CEILING_LIMIT, CENTRAL, VARIABILITY_LIMIT, central, step_ceilings, timed, variability
from .fmt import NA, STAT, Cell, Table, core_kinds_text, counters_text, missing, num, sig, stat, uniq
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
                     sig(100 * g["padding_fraction"].mean())])
    cols = ["input set", "batch size", "batches"] + [f"{k} MP {s}" for k in ("informative", "padding", "total")
                                                     for s in ("min", "avg", "max")] + ["padding % (avg)"]
    return Table("Table 1. Megapixels per batch", cols, rows,
                 note="Over the distinct timed batches in the results (warm-up batches excluded; a batch "
                      "seen on several clusters or scopes counts once), three significant digits. Padding is "
                      "the zeros added to bring every image of a batch to the batch's largest height and width.")


TABLE2_NOTE = (
    "Peak RSS is the paper's measure: the training process's whole resident set at its highest during each "
    "timed step (VmHWM reset before the step). It includes the cell's baseline (Python, PyTorch, the model and "
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
            per_mp = (rss / g["total_px"].astype("float64")).mean() * 1e6 / GB
            rows.append([name, cluster, str(int(rss.notna().sum())), *_mma(rss, GB), *_mma(g["growth_bytes"], GB),
                         base_text, sig(g["total_px"].astype("float64").mean() / 1e6), sig(per_mp)])
    return Table("Table 2. Main memory per batch",
                 ["input set", "cluster", "steps", "peak RSS GB min", "peak RSS GB avg", "peak RSS GB max",
                  "step growth GB min", "step growth GB avg", "step growth GB max", "cell baseline GB",
                  "avg total MP", "peak GB per total MP"], rows, note=TABLE2_NOTE)


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
    """A node's measured ceilings, per scope: 'node: 203 / 806; cores:2: ...'."""
    got = json.loads(v) if isinstance(v, str) else None
    if not isinstance(got, dict) or not got:
        return "not measured"
    return "; ".join(f"{scope_label(s)}: " + (f"{c['fp32_gflops']:.0f} / {c['bf16_gflops']:.0f}" if "error" not in c
                                              else f"not measured ({c['error']})")
                     for s, c in sorted(got.items(), key=lambda kv: scope_key(kv[0])))


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


def _verdict(vals: dict[str, float]) -> list[Any]:
    """The input set with the lowest value, and slowest ÷ fastest."""
    if not vals:
        return [Cell(NA, "na"), Cell(NA, "na")]
    best = min(vals, key=vals.get)
    return [best, num(max(vals.values()) / vals[best] if len(vals) > 1 else float("nan"), ".2f")]


def _cv_cell(v: pd.Series | None) -> Any:
    run_cv = float(v["run_cv"]) if v is not None else float("nan")
    if v is not None and bool(v["above_limit"]):
        return Cell(f"{100 * run_cv:.1f}% > {100 * VARIABILITY_LIMIT:.0f}%", "flag")
    if math.isnan(run_cv):
        return Cell(f"{NA} ({int(v['runs']) if v is not None else 0} run)", "na")
    return f"{100 * run_cv:.1f}%"


def timed_with_peaks(m: Merged) -> pd.DataFrame:
    t = timed(m.ref_steps)
    peak, scope_peak = _peaks(m, t) if len(t) else (pd.Series(dtype="float64"), pd.Series(dtype="float64"))
    return t.assign(pct_ceiling=100 * t["gflops"] / step_ceilings(t, m.nodes), pct_scope=100 * t["gflops"] / scope_peak)


def _pct_ceiling(v: float) -> Any:
    if math.isnan(v):
        return Cell(NA, "na")
    if v > 100 * CEILING_LIMIT:
        return Cell(f"{v:.1f}% > {100 * CEILING_LIMIT:.0f}%: counted FLOPs above executed?", "flag")
    return f"{v:.1f}"


def summary(m: Merged) -> tuple[Table, Table]:
    """The answers per cluster and scope, and the per-input-set detail behind them."""
    t = timed_with_peaks(m)
    var = variability(t).set_index(["cluster", "scope", "input_set"]) if len(t) else None
    answers, detail = [], []
    for cluster, scope in sorted({(c, s) for c, s in zip(t["cluster"], t["scope"])},
                                 key=lambda k: (k[0], scope_key(k[1]))):
        g = t[(t["cluster"] == cluster) & (t["scope"] == scope)]
        by_set = {n: g[g["input_set"] == n] for n in order_input_sets(set(g["input_set"].dropna()))}
        mp = {n: central(d["s_per_mp"]) for n, d in by_set.items()}
        imp = {n: central(d["s_per_informative_mp"]) for n, d in by_set.items()}
        v_mp = _verdict({k: v for k, v in mp.items() if not math.isnan(v)})
        v_imp = _verdict({k: v for k, v in imp.items() if not math.isnan(v)})
        where = scope_text(m, cluster, scope)
        answers.append([cluster, where, *v_mp, *v_imp])
        for name, g1 in by_set.items():
            v = var.loc[(cluster, scope, name)] if var is not None and (cluster, scope, name) in var.index else None
            best = (name == v_mp[0], name == v_imp[0])
            cells = [stat(g1[c]) for c in ("s_per_mp", "s_per_informative_mp")]
            cells = [Cell(str(c), "best") if b else c for c, b in zip(cells, best)]
            step_cv = float(v["step_cv"]) if v is not None else float("nan")
            detail.append([cluster, where, name, str(int(g1["run"].nunique())), str(len(g1)), *cells,
                           num(imp[name] / mp[name] if mp[name] else float("nan"), ".2f"),
                           num(g1["gflops"].mean(), ".1f"), _pct_ceiling(float(g1["pct_ceiling"].mean())),
                           num(g1["pct_scope"].mean(), ".1f"),
                           Cell(NA, "na") if math.isnan(step_cv) else f"{100 * step_cv:.1f}%", _cv_cell(v)])
    a = Table("Answers per cluster and scope",
              ["cluster", "scope", "fastest per MP", "slowest ÷ fastest (s/MP)", "fastest per informative MP",
               "slowest ÷ fastest (s/informative MP)"], answers,
              note=f"Fastest = lowest {CENTRAL} seconds per megapixel over all timed steps of all runs.")
    d = Table("Summary per cluster, scope and input set",
              ["cluster", "scope", "input set", "runs", "timed steps", f"s / MP ({STAT})",
               f"s / informative MP ({STAT})", "padding overhead", "GFLOP/s", "% of measured ceiling",
               "% of theoretical peak (scope's share)", "step-to-step CV", "run-to-run CV"], detail,
              note=(f"s / MP: the {CENTRAL} over the timed steps of all runs (warm-up excluded) ± their sample "
                    f"standard deviation; the CLI summary prints the same {CENTRAL}. Padding overhead = "
                    f"({CENTRAL} s per informative MP) ÷ ({CENTRAL} s per MP). GFLOP/s = counted forward+backward "
                    f"FLOPs ÷ step time. Measured ceiling: the GFLOP/s dense fp32 (bf16 for bf16 steps) "
                    f"kernels reached on the scope's CPUs and threads when the sweep started (the faster of a "
                    f"matmul and a 1×1 channels-last convolution, operands beyond the LLC); above "
                    f"{100 * CEILING_LIMIT:.0f}% it is flagged: {ABOVE_CEILING}. Theoretical peak: the node's "
                    f"fp32 estimate from the maximum clock /sys states, its share for a scope is "
                    f"peak × cores used ÷ physical cores. Run-to-run CV is the coefficient of variation of per-run "
                    f"mean s/MP; above {100 * VARIABILITY_LIMIT:.0f}% it is flagged. Green = fastest in its "
                    f"cluster and scope."))
    return a, d

"""Steps whose figures should not be read as plain fact: steal time, other processes' CPU time
on the cell's CPUs, and the measured ceiling (above it, measured beside other work, or drifted).

Pure: pandas/numpy only. The CLI summary and the report print the same sentences.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from . import timed

STEAL_LIMIT = 0.05        # a step whose hypervisor steal exceeds 5 % of its CPU time is flagged
OTHER_CPU_LIMIT = 0.05    # a step whose CPUs gave other processes over 5 % of their time is flagged
BUSY_SHARE = 0.05         # a ceiling measured while others took over 5 % of its CPUs' time is flagged
DRIFT_LIMIT = 0.10        # a ceiling that moved over 10 % between before and after a node's cells
CEILING_LIMIT = 1.05      # a step above 105 % of its measured ceiling is flagged, not shown as fact
ABOVE_CEILING = ("counted FLOPs can exceed what the kernels executed (Winograd- or FFT-style "
                 "convolutions do fewer multiplications than counted)")


def _ceilings(text: object) -> dict:
    if isinstance(text, dict):
        return text
    try:
        got = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return got if isinstance(got, dict) else {}


def step_ceilings(steps: pd.DataFrame, nodes: pd.DataFrame) -> pd.Series:
    """Per step: the measured ceiling (GFLOP/s) of its node, scope and precision (bf16 steps
    use the bf16 ceiling, others fp32), from the nodes table's ``ceilings`` (the higher of the
    measurements before and after the node's cells, where both exist); NaN where none."""
    if "ceilings" not in nodes or nodes.empty or steps.empty:
        return pd.Series(np.nan, index=steps.index, dtype="float64")
    table = {(r["cluster"], r["node"]): _ceilings(r["ceilings"]) for _, r in nodes.iterrows()}

    def one(cluster: object, node: object, scope: object, precision: object) -> float:
        c = table.get((cluster, node), {}).get(scope) or {}
        key = "bf16_gflops" if precision == "bfloat16" else "fp32_gflops"
        # measured before the node's cells and again after them: the ceiling is the best rate
        # the kernels reached, so the higher of the two (a busy or slow moment only lowers one)
        got = [v for v in (c.get(key), (c.get("after") or {}).get(key)) if isinstance(v, (int, float)) and v > 0]
        return float(max(got)) if got else np.nan
    keys = zip(steps["cluster"], steps["node"], steps["scope"], steps["precision"], strict=True)
    return pd.Series([one(*k) for k in keys], index=steps.index, dtype="float64")


def ceiling_note(pct_of_ceiling: pd.Series) -> str | None:
    """A sentence when any step is above CEILING_LIMIT of its measured ceiling (None otherwise)."""
    above = pct_of_ceiling[pct_of_ceiling > 100 * CEILING_LIMIT]
    if above.empty:
        return None
    return (f"{len(above)} timed steps ran above {100 * CEILING_LIMIT:.0f} % of their measured ceiling "
            f"(up to {above.max():.0f} %): {ABOVE_CEILING}")


def steal_note(derived: pd.DataFrame) -> str | None:
    """A sentence naming the timed steps whose steal exceeds STEAL_LIMIT (None when none)."""
    t = timed(derived)
    bad = t[t["steal_share"] > STEAL_LIMIT]
    if bad.empty:
        return None
    worst = bad.loc[bad["steal_share"].idxmax()]
    return (f"{len(bad)} of {len(t)} timed steps lost more than {STEAL_LIMIT:.0%} of their CPU time to the "
            f"hypervisor (steal time, /proc/stat): their seconds include time the VM did not run; worst "
            f"{worst['steal_share']:.0%} in cell {worst['cell_id']} step {int(worst['step'])}")


def other_cpu_note(derived: pd.DataFrame) -> str | None:
    """A sentence naming the cells during whose timed steps other processes took more than
    OTHER_CPU_LIMIT of their CPUs' time (``/proc/stat`` less the cell's own CPU time)."""
    if "other_cpu_share" not in derived:
        return None
    t = timed(derived)
    bad = t[t["other_cpu_share"] > OTHER_CPU_LIMIT]
    if bad.empty:
        return None
    worst = bad.loc[bad["other_cpu_share"].idxmax()]
    cells = sorted(set(bad["cell_id"]))
    return (f"{len(bad)} of {len(t)} timed steps shared their CPUs: other processes took more than "
            f"{OTHER_CPU_LIMIT:.0%} of the CPUs' time (/proc/stat less the cell's own CPU time), in "
            f"{len(cells)} cell(s) ({', '.join(cells[:5])}{', …' if len(cells) > 5 else ''}); worst "
            f"{worst['other_cpu_share']:.0%} in cell {worst['cell_id']} step {int(worst['step'])}")


def ceiling_notes(nodes: pd.DataFrame) -> list[str]:
    """Sentences about ceilings that should not be read as plain fact: measured while other
    processes took CPU time on those CPUs, not stable within the time cap, or moved more than
    the drift limit between before the node's cells and after its last one."""
    out: list[str] = []
    if "ceilings" not in nodes:
        return out
    for _, r in nodes.iterrows():
        seen = set()
        for scope, c in sorted(_ceilings(r["ceilings"]).items()):
            key = tuple(c.get("cpus") or ())
            if "error" in c or key in seen:
                continue
            seen.add(key)
            where = f"node {r['node']}, CPUs {list(key)} ({', '.join(c.get('scopes') or [scope])})"
            share = c.get("other_cpu_share")
            if isinstance(share, (int, float)) and share > BUSY_SHARE:
                out.append(f"ceiling of {where} was measured while other processes took {share:.0%} of those "
                           f"CPUs' time: it may be low, and shares of it high")
            d = c.get("drift") or {}
            if d.get("flagged"):
                out.append(f"ceiling of {where} moved between before the node's cells and after its last "
                           f"(fp32 ×{d.get('fp32')}, bf16 ×{d.get('bf16')}; more than {DRIFT_LIMIT:.0%})")
    return out

"""Steps whose figures should not be read as plain fact: steal time and the measured ceiling.

Pure: pandas/numpy only. The CLI summary and the report print the same sentences.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from . import timed

STEAL_LIMIT = 0.05        # a step whose hypervisor steal exceeds 5 % of its CPU time is flagged
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
    use the bf16 ceiling, others fp32), from the nodes table's ``ceilings``; NaN where none."""
    if "ceilings" not in nodes or nodes.empty or steps.empty:
        return pd.Series(np.nan, index=steps.index, dtype="float64")
    table = {(r["cluster"], r["node"]): _ceilings(r["ceilings"]) for _, r in nodes.iterrows()}

    def one(cluster: object, node: object, scope: object, precision: object) -> float:
        c = table.get((cluster, node), {}).get(scope) or {}
        v = c.get("bf16_gflops" if precision == "bfloat16" else "fp32_gflops")
        return float(v) if isinstance(v, (int, float)) and v > 0 else np.nan
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

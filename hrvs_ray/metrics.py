"""Derived figures, computed one way for the CLI summary, the report and anyone querying
the parquet: s/MP, s/informative-MP, IPC, instructions per MP, MPKI, GFLOP/s, and the
coefficient of variation across steps and across runs. Pure: pandas/numpy only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

VARIABILITY_LIMIT = 0.06  # the paper checked run-to-run variability stayed under 6%


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    num = pd.to_numeric(num, errors="coerce").astype("float64")
    den = pd.to_numeric(den, errors="coerce").astype("float64")
    return (num / den.where(den > 0)).astype("float64")


def derive(steps: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``steps`` with the derived per-step columns added (null where an input is null)."""
    d = steps.copy()
    mp = d["total_px"].astype("float64") / 1e6
    imp = d["informative_px"].astype("float64") / 1e6
    d["s_per_mp"] = _ratio(d["seconds"], mp)
    d["s_per_informative_mp"] = _ratio(d["seconds"], imp)
    d["ipc"] = _ratio(d["instructions"], d["cycles"])
    d["instructions_per_mp"] = _ratio(d["instructions"], mp)
    d["instructions_per_informative_mp"] = _ratio(d["instructions"], imp)
    d["mpki"] = _ratio(d["llc_misses"].astype("float64") * 1000.0, d["instructions"])
    d["gflops"] = _ratio(d["flops"].astype("float64") / 1e9, d["seconds"])
    d["padding_fraction"] = _ratio(d["padding_px"], d["total_px"])
    return d


def cv(values: pd.Series | np.ndarray) -> float:
    """Coefficient of variation (sample std / mean); NaN for fewer than two values."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().astype("float64")
    if len(v) < 2 or v.mean() == 0:
        return float("nan")
    return float(v.std(ddof=1) / v.mean())


def variability(steps: pd.DataFrame, metric: str = "s_per_mp") -> pd.DataFrame:
    """Per (cluster, scope, input_set): CV across timed steps (pooled within runs) and CV of
    the per-run means across runs, with a flag where run-to-run CV exceeds 6%."""
    d = steps if metric in steps.columns else derive(steps)
    d = d[~d["warmup"].astype(bool)]
    keys = ["cluster", "scope", "input_set"]
    rows = []
    for k, g in d.groupby(keys, sort=True):
        per_run = g.groupby("run")[metric].mean()
        step_cv = g.groupby("run")[metric].apply(cv).mean()
        run_cv = cv(per_run)
        rows.append(dict(zip(keys, k), runs=int(per_run.size), steps=int(len(g)),
                         mean=float(g[metric].mean()), step_cv=float(step_cv), run_cv=run_cv,
                         above_limit=bool(run_cv > VARIABILITY_LIMIT) if not np.isnan(run_cv) else False))
    return pd.DataFrame(rows, columns=keys + ["runs", "steps", "mean", "step_cv", "run_cv", "above_limit"])

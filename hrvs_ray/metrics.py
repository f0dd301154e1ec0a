"""Derived figures, computed one way for the CLI summary, the report and anyone querying
the parquet: s/MP, s/informative-MP, IPC, instructions per MP, MPKI, GFLOP/s, and the
coefficient of variation across steps and across runs. Pure: pandas/numpy only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

VARIABILITY_LIMIT = 0.06  # the paper checked run-to-run variability stayed under 6%
CENTRAL = "mean"          # the one central statistic of s/MP everywhere: the paper reports means
GROUP_KEYS = ["cluster", "scope", "input_set", "remedy"]   # one comparison group per remedy


def timed(steps: pd.DataFrame) -> pd.DataFrame:
    """The timed steps only (warm-up rows are kept in the data, never in a figure)."""
    return steps[~steps["warmup"].astype(bool)]


SPREAD = "sd"  # shown beside CENTRAL wherever a person reads it: the sample standard deviation


def central(values: pd.Series | np.ndarray) -> float:
    """The CENTRAL statistic of ``values`` (NaN when none): the CLI summary and the report
    both call this, so their s/MP figures are the same number."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().astype("float64")
    return float(v.agg(CENTRAL)) if len(v) else float("nan")


def spread(values: pd.Series | np.ndarray) -> float:
    """The SPREAD (sample standard deviation) of ``values``; NaN for fewer than two."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().astype("float64")
    return float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def central_s_per_mp(steps: pd.DataFrame) -> float | None:
    """The CENTRAL s/MP of a cell's timed steps (None when it has none)."""
    value = central(timed(derive(steps))["s_per_mp"])
    return None if np.isnan(value) else value


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
    """Per (cluster, scope, input_set, remedy): CV across timed steps (pooled within runs) and CV of
    the per-run means across runs, with a flag where run-to-run CV exceeds 6%."""
    d = timed(steps if metric in steps.columns else derive(steps))
    keys = GROUP_KEYS
    rows = []
    for k, g in d.groupby(keys, sort=True):
        per_run = g.groupby("run")[metric].mean()
        step_cv = g.groupby("run")[metric].apply(cv).mean()
        run_cv = cv(per_run)
        rows.append(dict(zip(keys, k), runs=int(per_run.size), steps=int(len(g)),
                         mean=float(g[metric].mean()), step_cv=float(step_cv), run_cv=run_cv,
                         above_limit=bool(run_cv > VARIABILITY_LIMIT) if not np.isnan(run_cv) else False))
    return pd.DataFrame(rows, columns=keys + ["runs", "steps", "mean", "step_cv", "run_cv", "above_limit"])

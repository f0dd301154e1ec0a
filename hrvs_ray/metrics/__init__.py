"""Derived figures, computed one way for ``plan``, the CLI summary, the report, ``compare``
and anyone querying the parquet. Pure: pandas/numpy only.

The one statistic: the s/MP, s/informative-MP or padding share of any group of steps is a
ratio of sums over its timed steps (Σ seconds ÷ Σ megapixels, Σ padding ÷ Σ total pixels),
never the mean of per-step ratios: a step of a large batch weighs as much as its pixels,
and a group's figure is what the group's pixels cost in all. Per-step ratios (``derive``)
stay in the data and in the figures' distributions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

VARIABILITY_LIMIT = 0.06  # the paper checked run-to-run variability stayed under 6%
GROUP_KEYS = ["cluster", "scope", "input_set", "remedy"]   # one comparison group per remedy
STATISTIC = ("ratio of sums over the timed steps of all runs (warm-up excluded): s / MP = Σ seconds ÷ Σ "
             "megapixels, s / informative MP = Σ seconds ÷ Σ informative megapixels, padding % = Σ padding "
             "pixels ÷ Σ total pixels")
# the per-step columns a group's figures are sums of: figure -> (numerator, denominator, scale)
RATIOS = {"s_per_mp": ("seconds", "total_px", 1e6),
          "s_per_informative_mp": ("seconds", "informative_px", 1e6),
          "padding_fraction": ("padding_px", "total_px", 1.0),
          "growth_per_mp": ("growth_bytes", "total_px", 1e6)}   # memory a step adds, per MP (compare)


def timed(steps: pd.DataFrame) -> pd.DataFrame:
    """The timed steps only (warm-up rows are kept in the data, never in a figure; so are
    the replay rows of a compiling sweep, which only its compile section reads)."""
    keep = ~steps["warmup"].astype(bool)
    if "replay" in steps:
        keep &= ~steps["replay"].fillna(False).astype(bool)
    return steps[keep]


def _num(values: object) -> np.ndarray:
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64")


def ratio_of_sums(num: object, den: object, scale: float = 1.0) -> float:
    """Σ num ÷ (Σ den / scale) over the rows where both are known; NaN when none or Σ den is 0."""
    n, d = _num(num), _num(den)
    ok = ~(np.isnan(n) | np.isnan(d))
    total = d[ok].sum() / scale
    return float(n[ok].sum() / total) if ok.any() and total > 0 else float("nan")


def gflops(steps: pd.DataFrame) -> float:
    """A group's counted GFLOP/s: Σ FLOPs ÷ Σ seconds ÷ 10^9 over the rows where both are known."""
    if "flops" not in steps or "seconds" not in steps:
        return float("nan")
    return ratio_of_sums(steps["flops"], steps["seconds"]) / 1e9


def figure(steps: pd.DataFrame, name: str) -> float:
    """The group figure ``name`` (a key of RATIOS) of ``steps``, all of them timed."""
    num, den, scale = RATIOS[name]
    if num not in steps or den not in steps:
        return float("nan")
    return ratio_of_sums(steps[num], steps[den], scale)


def figures(steps: pd.DataFrame) -> dict[str, float]:
    """Every RATIOS figure of ``steps`` (already timed), plus counts and the largest peak RSS."""
    out = {k: figure(steps, k) for k in RATIOS}
    peak = _num(steps["peak_rss_bytes"]) if "peak_rss_bytes" in steps else np.array([])
    out.update(steps=int(len(steps)), runs=int(steps["run"].nunique()) if "run" in steps else 0,
               peak_rss_bytes=float(np.nanmax(peak)) if np.isfinite(peak).any() else float("nan"))
    return out


def group_figures(steps: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``figures`` of the timed steps per group of ``keys`` (one row per group, keys as columns)."""
    t = timed(steps)
    rows = [dict(zip(keys, k if isinstance(k, tuple) else (k,), strict=True), **figures(g))
            for k, g in t.groupby(keys, sort=False)]
    return pd.DataFrame(rows, columns=keys + list(RATIOS) + ["steps", "runs", "peak_rss_bytes"])


def cell_s_per_mp(steps: pd.DataFrame) -> float | None:
    """A cell's s/MP over its timed steps (None when it has none), as the progress line shows it."""
    t = timed(steps)
    value = figure(t, "s_per_mp") if len(t) else float("nan")
    return None if np.isnan(value) else value


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    num = pd.to_numeric(num, errors="coerce").astype("float64")
    den = pd.to_numeric(den, errors="coerce").astype("float64")
    return (num / den.where(den > 0)).astype("float64")


def derive(steps: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``steps`` with the derived per-step columns added (null where an input is null):
    each step's own ratios, for the figures' distributions and for anyone reading the parquet."""
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
    # steal is summed over the cell's CPUs: its share is of the step's CPU time, seconds x cores
    cpu_time = d["seconds"].astype("float64") * pd.to_numeric(d["cores"], errors="coerce").astype("float64")
    d["steal_share"] = (_ratio(d["steal_seconds"], cpu_time) if "steal_seconds" in d
                        else pd.Series(np.nan, index=d.index, dtype="float64"))
    # other processes' CPU time on the cell's CPUs over the step, as a share of those CPUs' time
    d["other_cpu_share"] = (_ratio(d["other_cpu_seconds"], cpu_time) if "other_cpu_seconds" in d
                            else pd.Series(np.nan, index=d.index, dtype="float64"))
    return d


def cv(values: pd.Series | np.ndarray) -> float:
    """Coefficient of variation (sample std / mean); NaN for fewer than two values."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().astype("float64")
    if len(v) < 2 or v.mean() == 0:
        return float("nan")
    return float(v.std(ddof=1) / v.mean())


def variability(steps: pd.DataFrame, name: str = "s_per_mp") -> pd.DataFrame:
    """Per (cluster, scope, input_set, remedy): the group's figure ``name`` and the CV across
    runs of each run's own figure (ratio of sums), with a flag where it exceeds 6%."""
    d = timed(steps)
    keys = GROUP_KEYS
    rows = []
    for k, g in d.groupby(keys, sort=True):
        per_run = g.groupby("run").apply(lambda r: figure(r, name), include_groups=False)
        run_cv = cv(per_run)
        rows.append(dict(zip(keys, k, strict=True), runs=int(per_run.size), steps=int(len(g)), value=figure(g, name),
                         run_cv=run_cv, above_limit=bool(run_cv > VARIABILITY_LIMIT) if not np.isnan(run_cv)
                         else False))
    return pd.DataFrame(rows, columns=keys + ["runs", "steps", "value", "run_cv", "above_limit"])

"""95 % intervals on the ratios the tool states, computed on the one statistic (ratio of
sums, hrvs_ray.metrics) from the stored step rows. Pure numpy/pandas, seeded: the same rows
give the same interval on every machine.

Method: a bootstrap. Each replicate redraws a group's timed steps with replacement within
each run; with several runs it first redraws the runs (so run-to-run variation counts),
then steps within each drawn run. A ratio's replicate is the ratio of the two groups'
replicate ratios of sums, and the interval is the 2.5th-97.5th percentile of those.
Two groups that trained on identical batches (same runs, steps and batch fingerprints, as
in ``compare``) are redrawn with the same draws (paired), so the batches' sizes cancel.
A group of one run carries no run-to-run information; where other groups of the same
results have several runs, their pooled run-to-run spread (``run_spread``) is added to each
replicate, else the interval covers step-to-step noise only, and ``Interval.basis`` says so.
Peak memory is a maximum and is never bootstrapped (see README: memory ratios).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .metrics import RATIOS, figure, timed

LEVEL = 0.95
REPLICATES = 2000
SEED = 16042021       # fixed: an interval is a pure function of the rows
NO_DIFFERENCE = "no measurable difference"


@dataclass(frozen=True)
class Interval:
    """``value`` (the measured ratio) and its 95 % interval [low, high]."""
    value: float
    low: float
    high: float
    steps: int          # timed steps behind the ratio, both groups together
    basis: str          # what the interval covers, in words

    @property
    def includes_one(self) -> bool:
        return not (self.low > 1.0 or self.high < 1.0)

    def text(self, digits: int = 3) -> str:
        return f"{_sig(self.value, digits)}× [{_sig(self.low, digits)}–{_sig(self.high, digits)}]"


def _sig(x: float, digits: int) -> str:
    if not np.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - int(np.floor(np.log10(abs(x)))))
    return f"{x:.{decimals}f}"


def _layout(steps: pd.DataFrame) -> pd.DataFrame:
    """Timed steps ordered by (run, step): the row order the draws refer to."""
    return timed(steps).sort_values(["run", "step"], kind="stable").reset_index(drop=True)


def _weights(runs: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, rows) draw counts: runs redrawn with replacement when there are several, then each
    drawn run's steps redrawn with replacement (a run drawn twice draws twice as many)."""
    labels, first = np.unique(runs, return_index=True)
    w = np.zeros((n, len(runs)))
    copies = rng.multinomial(len(labels), np.full(len(labels), 1 / len(labels)), size=n) if len(labels) > 1 \
        else np.ones((n, 1), dtype=np.int64)
    for j, lab in enumerate(labels):
        rows = np.flatnonzero(runs == lab)
        w[:, rows] = rng.multinomial(copies[:, j] * len(rows), np.full(len(rows), 1 / len(rows)))
    return w


def _replicates(d: pd.DataFrame, name: str, w: np.ndarray) -> np.ndarray:
    num, den, scale = RATIOS[name]
    a = pd.to_numeric(d[num], errors="coerce").fillna(0).to_numpy("float64")
    b = pd.to_numeric(d[den], errors="coerce").fillna(0).to_numpy("float64") / scale
    with np.errstate(divide="ignore", invalid="ignore"):
        return (w @ a) / (w @ b)


def paired(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two groups' timed steps are the same batches: same (run, step) rows with the same
    batch fingerprints (then they are redrawn together)."""
    cols = ["run", "step", "batch_fingerprint"]
    if any(c not in a or c not in b for c in cols):
        return False
    x, y = _layout(a)[cols], _layout(b)[cols]
    return len(x) == len(y) and bool((x.to_numpy() == y.to_numpy()).all())


def run_spread(steps: pd.DataFrame, keys: list[str], name: str = "s_per_mp") -> float | None:
    """The pooled standard deviation of log(each run's figure) across the runs of every group
    of ``keys`` that has several runs; None when no group has. It is how much a whole run's
    figure moves from run to run beyond (and including) its steps' noise."""
    t = timed(steps)
    ss, df = 0.0, 0
    for _, g in t.groupby(keys, sort=False):
        per_run = np.log([figure(r, name) for _, r in g.groupby("run", sort=True)])
        per_run = per_run[np.isfinite(per_run)]
        if len(per_run) > 1:
            ss += float(((per_run - per_run.mean()) ** 2).sum())
            df += len(per_run) - 1
    return float(np.sqrt(ss / df)) if df else None


def _basis(runs: tuple[int, int], run_sd: float | None, pair: bool) -> str:
    lo = min(runs)
    how = "same batches, redrawn together; " if pair else ""
    if lo > 1:
        return how + f"runs and steps resampled ({runs[0]} and {runs[1]} runs)"
    if run_sd is not None:
        return how + f"one run: steps resampled + run-to-run spread of other groups (σ = {100 * run_sd:.1f} %)"
    return how + "one run: covers step-to-step noise only, not run-to-run variation"


def ratio_interval(num: pd.DataFrame, den: pd.DataFrame, name: str = "s_per_informative_mp",
                   run_sd: float | None = None, seed: int = SEED) -> Interval:
    """figure(num) ÷ figure(den) (figure ``name`` of each group's timed steps, a RATIOS key)
    with its bootstrap 95 % interval. ``run_sd`` (from ``run_spread``) widens a one-run group."""
    a, b = _layout(num), _layout(den)
    value = figure(a, name) / figure(b, name) if len(a) and len(b) else float("nan")
    runs = (int(a["run"].nunique()), int(b["run"].nunique()))
    if not np.isfinite(value):
        return Interval(value, float("nan"), float("nan"), len(a) + len(b), "not measured")
    rng = np.random.default_rng(seed)
    pair = paired(a, b)
    wa = _weights(a["run"].to_numpy(), rng, REPLICATES)
    wb = wa if pair else _weights(b["run"].to_numpy(), rng, REPLICATES)
    log_ratio = np.log(_replicates(a, name, wa)) - np.log(_replicates(b, name, wb))
    if run_sd is not None:
        for r in runs:   # each one-run group's whole-run offset, independent between groups
            if r == 1:
                log_ratio = log_ratio + rng.normal(0.0, run_sd, REPLICATES)
    log_ratio = log_ratio[np.isfinite(log_ratio)]
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.exp(np.percentile(log_ratio, [tail, 100 - tail]))
    return Interval(float(value), float(low), float(high), len(a) + len(b), _basis(runs, run_sd, pair))


def value_interval(steps: pd.DataFrame, name: str = "s_per_informative_mp", run_sd: float | None = None,
                   seed: int = SEED) -> tuple[float, float, float]:
    """One group's figure ``name`` and its bootstrap 95 % interval (value, low, high): the error
    bars of the trade-off and scaling figures, drawn the same way as the ratios' intervals."""
    a = _layout(steps)
    value = figure(a, name) if len(a) else float("nan")
    if not np.isfinite(value):
        return value, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    logs = np.log(_replicates(a, name, _weights(a["run"].to_numpy(), rng, REPLICATES)))
    if run_sd is not None and a["run"].nunique() == 1:
        logs = logs + rng.normal(0.0, run_sd, REPLICATES)
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.exp(np.percentile(logs[np.isfinite(logs)], [tail, 100 - tail]))
    return float(value), float(low), float(high)


def verdict(iv: Interval, lower: str = "faster", higher: str = "slower") -> str:
    """``lower`` when the whole interval is below 1, ``higher`` when above, else 'no measurable
    difference with N steps'."""
    if not np.isfinite(iv.value):
        return "not measured"
    if iv.includes_one:
        return f"{NO_DIFFERENCE} with {iv.steps} steps"
    return lower if iv.high < 1.0 else higher

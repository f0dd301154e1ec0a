"""95 % intervals on the ratios the tool states, computed on the one statistic (ratio of
sums, hrvs_ray.metrics) from the stored step rows. Pure numpy/pandas, seeded: the same rows
give the same interval on every machine.

Method: a bootstrap of the steps within each run (a run keeps its step count), plus the
run-to-run spread. Each replicate redraws a group's timed steps with replacement inside
each of its runs; a ratio's replicate is the ratio of the two groups' replicate ratios of
sums. Two groups that trained on identical batches (same runs, steps and batch
fingerprints, as in ``compare``) are redrawn with the same draws (paired), so the batches'
sizes cancel. Whole runs differ by more than their steps' noise (a cell is a fresh
process); that spread is the pooled standard deviation of each run's log figure over every
group with several runs (``run_spread``: the two groups themselves, or the other groups
of the same results), added to each replicate as a normal offset per group with the
variance divided by its run count. Where no group has several runs, the interval covers
step-to-step noise only, and ``Interval.basis`` says so.
The interval is log(value) ± t(0.975, n-1) × the replicates' standard deviation × √(n / (n-1)),
n the effective number of timed steps of the group with fewer (Kish's count, weighted by
pixels: a ratio of sums over very unequal steps rests on fewer of them): a percentile bootstrap of few steps is far too
narrow and lumpy (a redraw of 3 values never leaves their range: ~25 % false claims), and
for n paired differences this is exactly the interval a t-test gives. Peak memory is a maximum and is
never bootstrapped (see README: memory ratios).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import RATIOS, figure, timed

LEVEL = 0.95
REPLICATES = 2000
SEED = 16042021       # fixed: an interval is a pure function of the rows
NO_DIFFERENCE = "no measurable difference"


# t(0.975, df) for df = 1..30; above, the Cornish-Fisher expansion (error < 1e-4)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
_Z975 = 1.959964


def _t975(df: float) -> float:
    if df > len(_T975):
        z = _Z975
        return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
    return float(np.interp(df, np.arange(1, len(_T975) + 1), _T975))


def small_sample_factor(n: float) -> float:
    """t(0.975, n-1) / z(0.975) × √(n / (n-1)): how much wider than a normal interval on the
    bootstrap's standard deviation a 95 % interval of n values must be (→ 1 as n grows; inf
    below 2). ``n`` may be an effective (fractional) count."""
    if n < 2:
        return float("inf")
    df = n - 1
    return _t975(df) / _Z975 * float(np.sqrt(n / df))


def effective_steps(steps: pd.DataFrame, name: str) -> float:
    """Kish's effective count (Σw)² / Σw² of the steps weighted by the figure's denominator
    (their pixels): a ratio of sums over steps of very unequal size rests on fewer of them."""
    w = pd.to_numeric(steps[RATIOS[name][1]], errors="coerce").dropna().to_numpy("float64")
    if len(w) < 2 or (w ** 2).sum() <= 0:
        return float(len(w))
    # two steps or more always allow an interval (at least the t of one degree of freedom)
    return max(2.0, float(w.sum() ** 2 / (w ** 2).sum()))


def _bounds(logs: np.ndarray, center: float, n: float) -> tuple[float, float]:
    """The 95 % interval from log replicates: log(value) ± t(0.975, n-1) × their standard
    deviation × √(n / (n-1)) (the bootstrap's standard error, small-sample corrected)."""
    logs = logs[np.isfinite(logs)]
    if len(logs) < 2 or n < 2:
        return float("nan"), float("nan")
    half = small_sample_factor(n) * _Z975 * float(np.std(logs, ddof=1))
    return float(np.exp(center - half)), float(np.exp(center + half))


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
    if not 1e-3 <= abs(x) < 1e4:
        return f"{x:.2g}"   # an interval of one or two steps can span decades: keep it short
    decimals = max(0, digits - 1 - int(np.floor(np.log10(abs(x)))))
    return f"{x:.{decimals}f}"


def _layout(steps: pd.DataFrame) -> pd.DataFrame:
    """Timed steps ordered by (run, step): the row order the draws refer to."""
    return timed(steps).sort_values(["run", "step"], kind="stable").reset_index(drop=True)


def _weights(runs: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, rows) draw counts: each run's steps redrawn with replacement, as many as it has."""
    w = np.zeros((n, len(runs)))
    for lab in np.unique(runs):
        rows = np.flatnonzero(runs == lab)
        w[:, rows] = rng.multinomial(len(rows), np.full(len(rows), 1 / len(rows)), size=n)
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


def _basis(runs: tuple[int, ...], run_sd: float | None, pair: bool) -> str:
    how = "same batches, redrawn together; " if pair else ""
    which = "one run: " if min(runs) == 1 else f"{' and '.join(map(str, runs))} runs: "
    if run_sd is not None:
        return how + which + f"steps resampled within runs + run-to-run spread σ = {100 * run_sd:.1f} %"
    return how + which + "covers step-to-step noise only, not run-to-run variation"


def _own_spread(name: str, *groups: pd.DataFrame) -> float | None:
    """The run-to-run spread of the groups themselves (None unless one has several runs)."""
    both = pd.concat([g.assign(_group=i) for i, g in enumerate(groups)], ignore_index=True)
    return run_spread(both, ["_group"], name)


def _run_term(rng: np.random.Generator, run_sd: float | None, runs: tuple[int, ...]) -> np.ndarray | float:
    """Each group's whole-run offset: normal, variance σ² ÷ its run count, independent between groups."""
    if run_sd is None:
        return 0.0
    return sum(rng.normal(0.0, run_sd / np.sqrt(r), REPLICATES) for r in runs)


def ratio_interval(num: pd.DataFrame, den: pd.DataFrame, name: str = "s_per_informative_mp",
                   run_sd: float | None = None, seed: int = SEED) -> Interval:
    """figure(num) ÷ figure(den) (figure ``name`` of each group's timed steps, a RATIOS key)
    with its bootstrap 95 % interval. ``run_sd`` (from ``run_spread`` over the results) is the
    run-to-run spread; without it, the two groups' own runs give it where either has several."""
    a, b = _layout(num), _layout(den)
    value = figure(a, name) / figure(b, name) if len(a) and len(b) else float("nan")
    runs = (int(a["run"].nunique()), int(b["run"].nunique()))
    if not np.isfinite(value):
        return Interval(value, float("nan"), float("nan"), len(a) + len(b), "not measured")
    run_sd = run_sd if run_sd is not None else _own_spread(name, a, b)
    rng = np.random.default_rng(seed)
    pair = paired(a, b)
    wa = _weights(a["run"].to_numpy(), rng, REPLICATES)
    wb = wa if pair else _weights(b["run"].to_numpy(), rng, REPLICATES)
    with np.errstate(divide="ignore", invalid="ignore"):   # a replicate of zero growth: dropped in _bounds
        log_ratio = np.log(_replicates(a, name, wa)) - np.log(_replicates(b, name, wb))
    log_ratio = log_ratio + _run_term(rng, run_sd, runs)
    low, high = _bounds(log_ratio, float(np.log(value)), min(effective_steps(a, name), effective_steps(b, name)))
    return Interval(float(value), low, high, len(a) + len(b), _basis(runs, run_sd, pair))


def value_interval(steps: pd.DataFrame, name: str = "s_per_informative_mp", run_sd: float | None = None,
                   seed: int = SEED) -> tuple[float, float, float]:
    """One group's figure ``name`` and its 95 % interval (value, low, high), drawn the same way
    as the ratios' intervals: the error bars of the trade-off and scaling figures."""
    a = _layout(steps)
    value = figure(a, name) if len(a) else float("nan")
    if not np.isfinite(value):
        return value, float("nan"), float("nan")
    run_sd = run_sd if run_sd is not None else _own_spread(name, a)
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(_replicates(a, name, _weights(a["run"].to_numpy(), rng, REPLICATES)))
    logs = logs + _run_term(rng, run_sd, (int(a["run"].nunique()),))
    low, high = _bounds(logs, float(np.log(value)), effective_steps(a, name))
    return float(value), low, high


def verdict(iv: Interval, lower: str = "faster", higher: str = "slower") -> str:
    """``lower`` when the whole interval is below 1, ``higher`` when above, else 'no measurable
    difference with N steps'."""
    if not np.isfinite(iv.value):
        return "not measured"
    if iv.includes_one:
        return f"{NO_DIFFERENCE} with {iv.steps} steps"
    return lower if iv.high < 1.0 else higher

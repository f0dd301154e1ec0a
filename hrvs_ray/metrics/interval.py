"""95 % intervals on the ratios the tool states, computed on the one statistic (ratio of
sums, hrvs_ray.metrics) from the stored step rows. Pure numpy/pandas, seeded: the same rows
give the same interval on every machine.

Method. A run is a fresh process: whole runs differ by more than their steps' noise. So
where the run-to-run spread is known (``run_spread``: the pooled standard deviation of each
run's log figure over every group with several runs, the two groups themselves or the other
groups of the same results, with its degrees of freedom), the interval rests on it alone:
log(ratio) ± t(0.975, df) × √(σ² / runs of one group + σ² / runs of the other). A run's
figure already carries its steps' noise, so the steps are not counted twice; a bootstrap of
a few steps per run, widened for their small number, would swamp it (3 steps: a t of one or
two degrees of freedom). Where no group has several runs, nothing says how much two runs
differ, and the interval covers step-to-step noise only (``Interval.basis`` says so): a
bootstrap of the steps within each run (a run keeps its step count); each replicate redraws
a group's timed steps with replacement, and a ratio's replicate is the ratio of the two
groups' replicate ratios of sums. Two groups that trained on identical batches (same runs,
steps and batch fingerprints, as in ``compare``) are redrawn with the same draws (paired),
so the batches' sizes cancel. The half-width is the replicates' standard deviation ×
t(0.975, n-1)/z(0.975) × √(n / (n-1)) × z, n the effective number of timed steps of the
group with fewer (Kish's count, weighted by pixels: a ratio of sums over very unequal steps
rests on fewer of them): a percentile bootstrap of few steps is far too narrow and lumpy (a
redraw of 3 values never leaves their range: ~25 % false claims), and for n paired
differences this is exactly the interval a t-test gives. Peak memory is a maximum and is
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
    """The 95 % interval from the steps' log replicates: log(value) ± z × k × their standard
    deviation, k = small_sample_factor(n)."""
    logs = logs[np.isfinite(logs)]
    if len(logs) < 2 or n < 2:
        return float("nan"), float("nan")
    half = _Z975 * small_sample_factor(n) * float(np.std(logs, ddof=1))
    return float(np.exp(center - half)), float(np.exp(center + half))


@dataclass(frozen=True)
class Spread:
    """The run-to-run spread: pooled standard deviation of log(a run's figure), and its
    degrees of freedom (Σ over the groups with several runs of their runs - 1)."""
    sd: float
    df: int


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


def run_spread(steps: pd.DataFrame, keys: list[str], name: str = "s_per_mp") -> Spread | None:
    """The pooled standard deviation of log(each run's figure) across the runs of every group
    of ``keys`` that has several runs, with its degrees of freedom; None when no group has.
    It is how much a whole run's figure moves from run to run, its steps' noise included."""
    t = timed(steps)
    ss, df = 0.0, 0
    for _, g in t.groupby(keys, sort=False):
        per_run = np.log([figure(r, name) for _, r in g.groupby("run", sort=True)])
        per_run = per_run[np.isfinite(per_run)]
        if len(per_run) > 1:
            ss += float(((per_run - per_run.mean()) ** 2).sum())
            df += len(per_run) - 1
    return Spread(float(np.sqrt(ss / df)), df) if df else None


def _basis(runs: tuple[int, ...], spread: Spread | None, pair: bool) -> str:
    which = "one run: " if min(runs) == 1 else f"{' and '.join(map(str, runs))} runs: "
    if spread is not None:
        return which + f"run-to-run spread σ = {100 * spread.sd:.1f} % ({spread.df} degrees of freedom)"
    how = "same batches, redrawn together; " if pair else ""
    return how + which + "covers step-to-step noise only, not run-to-run variation"


def _own_spread(name: str, *groups: pd.DataFrame) -> Spread | None:
    """The run-to-run spread of the groups themselves (None unless one has several runs)."""
    both = pd.concat([g.assign(_group=i) for i, g in enumerate(groups)], ignore_index=True)
    return run_spread(both, ["_group"], name)


def _run_bounds(value: float, spread: Spread, runs: tuple[int, ...]) -> tuple[float, float]:
    """log(value) ± t(df) × √(Σ σ² / runs): each group's figure is the mean of its runs."""
    half = _t975(spread.df) * spread.sd * float(np.sqrt(sum(1 / r for r in runs)))
    return float(value * np.exp(-half)), float(value * np.exp(half))


def ratio_interval(num: pd.DataFrame, den: pd.DataFrame, name: str = "s_per_informative_mp",
                   run_sd: Spread | None = None, seed: int = SEED) -> Interval:
    """figure(num) ÷ figure(den) (figure ``name`` of each group's timed steps, a RATIOS key)
    with its 95 % interval. ``run_sd`` (``run_spread`` over the results) is the run-to-run
    spread; without it, the two groups' own runs give it where either has several."""
    a, b = _layout(num), _layout(den)
    value = figure(a, name) / figure(b, name) if len(a) and len(b) else float("nan")
    runs = (int(a["run"].nunique()), int(b["run"].nunique()))
    if not np.isfinite(value):
        return Interval(value, float("nan"), float("nan"), len(a) + len(b), "not measured")
    spread = run_sd if run_sd is not None else _own_spread(name, a, b)
    pair = paired(a, b)
    if spread is not None:
        return Interval(float(value), *_run_bounds(value, spread, runs), len(a) + len(b), _basis(runs, spread, pair))
    rng = np.random.default_rng(seed)
    wa = _weights(a["run"].to_numpy(), rng, REPLICATES)
    wb = wa if pair else _weights(b["run"].to_numpy(), rng, REPLICATES)
    with np.errstate(divide="ignore", invalid="ignore"):   # a replicate of zero growth: dropped in _bounds
        log_ratio = np.log(_replicates(a, name, wa)) - np.log(_replicates(b, name, wb))
    low, high = _bounds(log_ratio, float(np.log(value)), min(effective_steps(a, name), effective_steps(b, name)))
    return Interval(float(value), low, high, len(a) + len(b), _basis(runs, None, pair))


def value_interval(steps: pd.DataFrame, name: str = "s_per_informative_mp", run_sd: Spread | None = None,
                   seed: int = SEED) -> tuple[float, float, float]:
    """One group's figure ``name`` and its 95 % interval (value, low, high), drawn the same way
    as the ratios' intervals: the error bars of the trade-off and scaling figures."""
    a = _layout(steps)
    value = figure(a, name) if len(a) else float("nan")
    if not np.isfinite(value):
        return value, float("nan"), float("nan")
    spread = run_sd if run_sd is not None else _own_spread(name, a)
    if spread is not None:
        return (float(value), *_run_bounds(value, spread, (int(a["run"].nunique()),)))
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(_replicates(a, name, _weights(a["run"].to_numpy(), rng, REPLICATES)))
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

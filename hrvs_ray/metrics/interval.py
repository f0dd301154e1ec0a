"""95 % intervals on the ratios the tool states, computed on the one statistic (ratio of
sums, hrvs_ray.metrics) from the stored step rows. Pure numpy/pandas, seeded: the same rows
give the same interval on every machine. The tests and corrections behind the verdicts are in
hrvs_ray.metrics.stats; docs/statistics.md says why each choice was made.

Method. A run is a fresh process: whole runs differ by more than their steps' noise. So
where runs repeat, the interval rests on the run-to-run spread alone: the standard deviation
of log(each run's figure), pooled within the group's stratum (``stats.STRATUM``: cluster ×
input set × precision, pooled across scopes and the other remedy axes; ``noise.run_spread``
builds it per stratum, never lending one stratum's spread to another). log(ratio) ± t(df) × SE,
with t exact at integer degrees of freedom. Two groups of one stratum that ran the same runs
are paired: the stratum's spread then comes from an additive fit cell + run, so what every
cell of run r shares (its images) cancels. Groups of two strata: Welch's degrees of freedom.
A run's figure already carries its steps' noise, so the steps are not counted twice.

Where a stratum has no repeated run, nothing says how much two runs differ, and the interval
covers step-to-step noise only (``Interval.basis`` says so): a bootstrap of the steps within
each run (a run keeps its step count); each replicate redraws a group's timed steps with
replacement, and a ratio's replicate is the ratio of the two groups' replicate ratios of
sums. Two groups that trained on identical batches (same runs, steps and batch fingerprints)
are redrawn with the same draws (paired), so the batches' sizes cancel. The half-width is the
replicates' standard deviation × t(1 - α/2, n-1) × √(n / (n-1)), n the effective number of
timed steps of the group with fewer (Kish's count, weighted by pixels, rounded down to whole
degrees of freedom): a percentile bootstrap of few steps is far too narrow and lumpy, and
for n paired differences this is exactly the interval a t-test gives. Peak memory is a
maximum and is never bootstrapped; across runs, each run's peak has its own spread.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import RATIOS, figure, timed
from .noise import PEAK, Noise, group_value, per_run, run_spread, stratum
from .stats import Contrast, contrast, t_ppf

LEVEL = 0.95
REPLICATES = 2000
SEED = 16042021       # fixed: an interval is a pure function of the rows
NO_DIFFERENCE = "no measurable difference"
_Z975 = 1.959964


def small_sample_factor(n: float, level: float = LEVEL) -> float:
    """t(1 - α/2, n-1) / z(0.975) × √(n / (n-1)): how much wider than a normal 95 % interval
    on the bootstrap's standard deviation an interval of n values must be (inf below 2).
    ``n`` may be an effective (fractional) count: its degrees of freedom are rounded down."""
    if n < 2:
        return float("inf")
    df = n - 1
    return t_ppf(1 - (1 - level) / 2, df) / _Z975 * float(np.sqrt(n / df))


def effective_steps(steps: pd.DataFrame, name: str) -> float:
    """Kish's effective count (Σw)² / Σw² of the steps weighted by the figure's denominator
    (their pixels): a ratio of sums over steps of very unequal size rests on fewer of them."""
    w = pd.to_numeric(steps[RATIOS[name][1]], errors="coerce").dropna().to_numpy("float64")
    if len(w) < 2 or (w ** 2).sum() <= 0:
        return float(len(w))
    # two steps or more always allow an interval (at least the t of one degree of freedom)
    return max(2.0, float(w.sum() ** 2 / (w ** 2).sum()))


def _bounds(logs: np.ndarray, center: float, n: float, level: float) -> tuple[float, float]:
    """The interval from the steps' log replicates: log(value) ± z × k × their standard
    deviation, k = small_sample_factor(n, level)."""
    logs = logs[np.isfinite(logs)]
    if len(logs) < 2 or n < 2:
        return float("nan"), float("nan")
    half = _Z975 * small_sample_factor(n, level) * float(np.std(logs, ddof=1))
    return float(np.exp(center - half)), float(np.exp(center + half))


@dataclass(frozen=True)
class Interval:
    """``value`` (the measured ratio) and its interval [low, high] (95 % unless ``level`` says
    otherwise, e.g. corrected over several comparisons)."""
    value: float
    low: float
    high: float
    steps: int          # timed steps behind the ratio, both groups together
    basis: str          # what the interval covers, in words
    contrast: Contrast | None = field(default=None, compare=False)   # the test behind it, when runs repeat
    level: float = LEVEL

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


def _own_noise(name: str, *groups: pd.DataFrame) -> Noise | None:
    """The run-to-run spread of the groups themselves (None unless one has several runs)."""
    both = pd.concat([g.assign(_group=i) for i, g in enumerate(groups)], ignore_index=True)
    return run_spread(both, ["_group"], name)


def _runs_text(runs: tuple[int, ...]) -> str:
    return "one run: " if min(runs) == 1 else f"{' and '.join(map(str, runs))} runs: "


def run_contrast(num: pd.DataFrame, den: pd.DataFrame, name: str, noise: Noise | None,
                 value: float | None = None) -> Contrast:
    """log(figure(num) ÷ figure(den)) with its standard error from ``noise`` (paired where both
    groups lie in one stratum and ran the runs its two-way spread was fitted on)."""
    a, b = per_run(num, name), per_run(den, name)
    if value is None:
        va, vb = group_value(timed(num), name), group_value(timed(den), name)
        value = va / vb if vb else float("nan")
    est = math.log(value) if value is not None and np.isfinite(value) and value > 0 else float("nan")
    if noise is None:
        return Contrast(est, float("nan"), 0, "run-to-run spread unknown")
    sa, sb = stratum(num, noise.cols), stratum(den, noise.cols)
    pair = noise.paired_for(sa, tuple(sorted(a))) if sa == sb and sorted(a) == sorted(b) else None
    return contrast(list(a.values()), list(b.values()), noise.for_stratum(sa), noise.for_stratum(sb),
                    paired=pair, log_ratio=est)


def ratio_interval(num: pd.DataFrame, den: pd.DataFrame, name: str = "s_per_informative_mp",
                   run_sd: Noise | None = None, seed: int = SEED, level: float = LEVEL) -> Interval:
    """figure(num) ÷ figure(den) (figure ``name`` of each group's timed steps: a RATIOS key or
    PEAK) with its ``level`` interval. ``run_sd`` (``run_spread`` over the results) is the
    run-to-run spread per stratum; without it, the two groups' own runs give it where either
    has several. Where the strata have no spread, a bootstrap of the steps (steps only)."""
    a, b = _layout(num), _layout(den)
    va, vb = (group_value(a, name), group_value(b, name)) if len(a) and len(b) else (float("nan"),) * 2
    value = va / vb if vb else float("nan")
    runs = (int(a["run"].nunique()), int(b["run"].nunique()))
    if not np.isfinite(value):
        return Interval(value, float("nan"), float("nan"), len(a) + len(b), "not measured")
    noise = run_sd if run_sd is not None else _own_noise(name, a, b)
    c = run_contrast(a, b, name, noise, value)
    if c.testable:
        low, high = c.bounds(level)
        return Interval(float(value), low, high, len(a) + len(b), _runs_text(runs) + c.basis,
                        c, level)
    if name == PEAK:   # a maximum is not bootstrapped: without runs it has no interval
        return Interval(float(value), float("nan"), float("nan"), len(a) + len(b), "one run: a maximum, no interval")
    pair = paired(a, b)
    rng = np.random.default_rng(seed)
    wa = _weights(a["run"].to_numpy(), rng, REPLICATES)
    wb = wa if pair else _weights(b["run"].to_numpy(), rng, REPLICATES)
    with np.errstate(divide="ignore", invalid="ignore"):   # a replicate of zero growth: dropped in _bounds
        log_ratio = np.log(_replicates(a, name, wa)) - np.log(_replicates(b, name, wb))
    low, high = _bounds(log_ratio, float(np.log(value)), min(effective_steps(a, name), effective_steps(b, name)),
                        level)
    how = "same batches, redrawn together; " if pair else ""
    return Interval(float(value), low, high, len(a) + len(b),
                    how + _runs_text(runs) + "covers step-to-step noise only, not run-to-run variation",
                    None, level)


def value_interval(steps: pd.DataFrame, name: str = "s_per_informative_mp", run_sd: Noise | None = None,
                   seed: int = SEED) -> tuple[float, float, float]:
    """One group's figure ``name`` and its 95 % interval (value, low, high), drawn the same way
    as the ratios' intervals: the error bars of the trade-off and scaling figures."""
    a = _layout(steps)
    value = figure(a, name) if len(a) else float("nan")
    if not np.isfinite(value):
        return value, float("nan"), float("nan")
    noise = run_sd if run_sd is not None else _own_noise(name, a)
    spread = noise.for_stratum(stratum(a, noise.cols)) if noise is not None else None
    if spread is not None:
        half = t_ppf(1 - (1 - LEVEL) / 2, spread.df) * spread.sd / math.sqrt(int(a["run"].nunique()))
        return float(value), float(value * np.exp(-half)), float(value * np.exp(half))
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(_replicates(a, name, _weights(a["run"].to_numpy(), rng, REPLICATES)))
    low, high = _bounds(logs, float(np.log(value)), effective_steps(a, name), LEVEL)
    return float(value), low, high


def verdict(iv: Interval, lower: str = "faster", higher: str = "slower") -> str:
    """``lower`` when the whole interval is below 1, ``higher`` when above, else 'no measurable
    difference with N steps'."""
    if not np.isfinite(iv.value):
        return "not measured"
    if iv.includes_one:
        return f"{NO_DIFFERENCE} with {iv.steps} steps"
    return lower if iv.high < 1.0 else higher


__all__ = ["Interval", "LEVEL", "ratio_interval", "run_contrast", "value_interval", "verdict", "paired",
           "effective_steps", "small_sample_factor"]

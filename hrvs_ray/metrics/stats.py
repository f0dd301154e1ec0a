"""The tests behind every claim the tool makes about a ratio: t quantiles and p-values, the
run-to-run spread pooled within strata of groups that share their noise, Holm's correction
over a family of tests, four verdicts (slower, faster, equivalent, inconclusive), the
minimum detectable effect, and claims about a winner chosen from the data. Pure numpy.

Why each piece is as it is (docs/statistics.md has the numbers):

- t distribution at integer degrees of freedom, exactly (Abramowitz & Stegun 26.7.3/26.7.4,
  a finite series): no interpolation of a table. A fractional count (Kish's effective steps)
  is rounded down, which only ever widens an interval.
- A run is the unit of noise. Its spread is pooled within a stratum (``STRATUM``: cluster ×
  input set × precision, and compile × ranks where the results record them), across scopes
  and the other remedy axes: a group's own two runs leave one degree of freedom, far too few
  to survive a family correction, while a noisy stratum never lends its spread to a quiet one
  nor borrows a quieter one's.
- Within a stratum every cell of run r trained on run r's images. Where the cells compared
  share their runs, the run's common effect is removed (an additive two-way fit, cells ×
  runs) and the contrast is paired: it costs one degree of freedom per extra run and takes
  the images' share out of the noise. Across strata the contrast is unpaired (Welch).
- Holm's step-down procedure over every test of one invocation keeps the family-wise error
  at ``alpha`` whatever the tests' dependence.
- A winner is claimed only when every other candidate is slower than it with intervals
  corrected over the k - 1 comparisons against it (Bonferroni; valid whichever candidate the
  data picked, since a wrong claim needs the true best to look slower than the chosen one);
  otherwise the candidates that cannot be told from it are named as a set.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

ALPHA = 0.05
POWER = 0.8            # the minimum detectable effect is the slowdown found with this probability
STRATUM = ("cluster", "input_set", "precision", "compile", "ranks")
FEW_DF = 3             # below this many degrees of freedom an interval says it is wide


# ---------------------------------------------------------------- t distribution (integer df)

def _df(df: float) -> int:
    """Degrees of freedom as an integer: rounded down (a wider, never narrower, interval)."""
    if not df >= 1:
        raise ValueError(f"t distribution needs at least 1 degree of freedom, got {df}")
    return int(math.floor(df + 1e-9))


def _abs_cdf(t: float, n: int) -> float:
    """P(|T| <= t) for t >= 0 and integer n (A&S 26.7.3 odd n, 26.7.4 even n)."""
    theta = math.atan(t / math.sqrt(n))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if n % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(1, n // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return min(1.0, s * total)
    if n == 1:
        return 2 * theta / math.pi
    term, total = math.cos(theta), math.cos(theta)
    for k in range(1, (n - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return min(1.0, 2 / math.pi * (theta + s * total))


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom (rounded down to an integer)."""
    n = _df(df)
    if math.isnan(t):
        return float("nan")
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    if n > 4000:   # the series is exact but long; here the normal with Hills' correction is exact to 1e-7
        z = t * (1 - 1 / (4 * n)) / math.sqrt(1 + t * t / (2 * n))
        return 0.5 * math.erfc(z / math.sqrt(2))
    tail = 0.5 * (1 - _abs_cdf(abs(t), n))
    return tail if t >= 0 else 1 - tail


@lru_cache(maxsize=4096)
def _ppf(q: float, n: int) -> float:
    lo, hi = 0.0, 1.0
    while t_sf(hi, n) > 1 - q:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_sf(mid, n) > 1 - q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def t_ppf(q: float, df: float) -> float:
    """The q-quantile of Student's t (``df`` rounded down); q in (0, 1)."""
    if not 0 < q < 1:
        raise ValueError(f"quantile level must be in (0, 1), got {q}")
    if q == 0.5:
        return 0.0
    return _ppf(q, _df(df)) if q > 0.5 else -_ppf(1 - q, _df(df))


def chi2_sf(x: float, k: int) -> float:
    """P(X > x) for a chi-square with integer k degrees of freedom (closed forms)."""
    if x <= 0:
        return 1.0
    if k % 2 == 0:
        term, total = 1.0, 1.0
        for i in range(1, k // 2):
            term *= (x / 2) / i
            total += term
        return min(1.0, math.exp(-x / 2) * total)
    r = math.sqrt(x)
    out = math.erfc(r / math.sqrt(2))
    term = r * math.sqrt(2 / math.pi) * math.exp(-x / 2)
    for i in range(1, (k + 1) // 2):
        out += term
        term *= x / (2 * i + 1)
    return min(1.0, out)


# ---------------------------------------------------------------- Holm

def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count as a test)."""
    p = np.asarray(pvalues, dtype="float64")
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


# ---------------------------------------------------------------- spreads

@dataclass(frozen=True)
class Spread:
    """A pooled run-to-run spread: the standard deviation of log(a run's figure), its degrees
    of freedom, and how it was pooled (in words, for the interval's basis)."""
    sd: float
    df: int
    how: str = ""

    def text(self) -> str:
        few = f"; under {FEW_DF} degrees of freedom: wide" if self.df < FEW_DF else ""
        how = f", {self.how}" if self.how else ""
        return f"run-to-run spread σ = {100 * self.sd:.1f} % ({self.df} degrees of freedom{how}{few})"


def pool(*spreads: Spread | None) -> Spread | None:
    """Several estimates of one noise pooled: Σ df·σ² ÷ Σ df."""
    got = [s for s in spreads if s is not None and s.df > 0]
    if not got:
        return None
    df = sum(s.df for s in got)
    return Spread(math.sqrt(sum(s.df * s.sd ** 2 for s in got) / df), df, " + ".join(s.how for s in got if s.how))


def oneway(cells: Mapping[object, Mapping[object, float]], how: str = "") -> Spread | None:
    """Pooled within-cell spread of the cells' per-run log figures (each cell: run -> log)."""
    ss, df = 0.0, 0
    for runs in cells.values():
        v = np.array([x for x in runs.values() if np.isfinite(x)])
        if len(v) > 1:
            ss += float(((v - v.mean()) ** 2).sum())
            df += len(v) - 1
    return Spread(math.sqrt(ss / df), df, how) if df else None


def twoway(cells: Mapping[object, Mapping[object, float]], how: str = "") -> Spread | None:
    """Residual spread of the additive fit cell + run over the cells that share one set of runs
    (the most common set; the others are left out): the noise of a paired contrast."""
    sets: dict[tuple, list] = {}
    for key, runs in cells.items():
        ok = tuple(sorted(r for r, x in runs.items() if np.isfinite(x)))
        if len(ok) > 1:
            sets.setdefault(ok, []).append(key)
    if not sets:
        return None
    runs, keys = max(sets.items(), key=lambda kv: (len(kv[1]) * (len(kv[0]) - 1), kv[0]))
    if len(keys) < 2:
        return None
    y = np.array([[cells[k][r] for r in runs] for k in keys])
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
    df = (len(keys) - 1) * (len(runs) - 1)
    return Spread(math.sqrt(float((resid ** 2).sum()) / df), df, how)


# ---------------------------------------------------------------- contrasts and verdicts

@dataclass(frozen=True)
class Contrast:
    """log(figure A ÷ figure B), its standard error and degrees of freedom."""
    log_ratio: float
    se: float
    df: float
    basis: str

    @property
    def testable(self) -> bool:
        # a spread of exactly 0 (e.g. memory that repeats to the byte) is known, and testable
        return math.isfinite(self.log_ratio) and math.isfinite(self.se) and self.se >= 0 and self.df >= 1

    def _z(self, diff: float) -> float:
        if self.se > 0:
            return diff / self.se
        return 0.0 if abs(diff) < 1e-12 else math.copysign(math.inf, diff)

    def bounds(self, level: float = 1 - ALPHA, m: int = 1) -> tuple[float, float]:
        """The two-sided ``level`` interval of the ratio, Bonferroni-corrected over ``m``."""
        if not self.testable:
            return float("nan"), float("nan")
        half = t_ppf(1 - (1 - level) / (2 * m), self.df) * self.se
        return math.exp(self.log_ratio - half), math.exp(self.log_ratio + half)

    def p_above(self, bound: float) -> float:
        """p of H0 'ratio <= bound' (small when the ratio is clearly above ``bound``)."""
        return t_sf(self._z(self.log_ratio - math.log(bound)), self.df) if self.testable else float("nan")

    def p_below(self, bound: float) -> float:
        """p of H0 'ratio >= bound' (small when the ratio is clearly below ``bound``)."""
        return t_sf(self._z(math.log(bound) - self.log_ratio), self.df) if self.testable else float("nan")


def contrast(a: Sequence[float], b: Sequence[float], spread_a: Spread | None, spread_b: Spread | None = None,
             paired: Spread | None = None, log_ratio: float | None = None) -> Contrast:
    """The contrast of two groups' per-run logs ``a`` and ``b``. ``paired``: the two-way spread
    of their stratum, used when both ran the same runs (then ``a`` and ``b`` line up run by
    run); else each side's own stratum's one-way spread, with Welch's degrees of freedom when
    they differ. ``log_ratio``: the estimate (the one statistic, ratio of sums), defaulting
    to the difference of the mean logs."""
    na, nb = len(a), len(b)
    if log_ratio is not None:
        est = float(log_ratio)
    else:
        est = float(np.mean(a) - np.mean(b)) if na and nb else float("nan")
    if paired is not None and na == nb and na > 0:
        return Contrast(est, paired.sd * math.sqrt(2 / na), paired.df, f"paired, {paired.text()}")
    spread_b = spread_b or spread_a
    if spread_a is None or spread_b is None or not na or not nb:
        return Contrast(est, float("nan"), 0, "run-to-run spread unknown")
    if spread_a is spread_b or spread_a == spread_b:
        return Contrast(est, spread_a.sd * math.sqrt(1 / na + 1 / nb), spread_a.df, spread_a.text())
    va, vb = spread_a.sd ** 2 / na, spread_b.sd ** 2 / nb
    den = va ** 2 / spread_a.df + vb ** 2 / spread_b.df
    # Welch-Satterthwaite; two spreads of exactly 0 (memory repeating to the byte): the smaller df
    df = (va + vb) ** 2 / den if den > 0 else float(min(spread_a.df, spread_b.df))
    return Contrast(est, math.sqrt(va + vb), df,
                    f"two strata, {spread_a.text()} and {spread_b.text()}, Welch df {math.floor(df)}")


SLOWER, FASTER, EQUIVALENT, INCONCLUSIVE = "slower", "faster", "equivalent", "inconclusive"


@dataclass(frozen=True)
class Tested:
    """One test of a family: its raw and Holm-adjusted p-values per direction and its verdict."""
    p_slower: float
    p_faster: float
    p_equivalent: float
    adj_slower: float
    adj_faster: float
    adj_equivalent: float
    verdict: str


def verdicts(contrasts: Sequence[Contrast], threshold: float, alpha: float = ALPHA) -> list[Tested]:
    """Four verdicts per contrast, each direction Holm-corrected over the whole family:
    slower (H0 ratio <= 1 + threshold rejected), faster (H0 ratio >= 1 / (1 + threshold)
    rejected), equivalent (both one-sided nulls outside ±threshold rejected, TOST at the same
    alpha), else inconclusive. ``threshold`` is a fraction (0.05 = 5 %)."""
    up, down = 1 + threshold, 1 / (1 + threshold)
    ps = [c.p_above(up) for c in contrasts]
    pf = [c.p_below(down) for c in contrasts]
    pe = [max(c.p_below(up), c.p_above(down)) if threshold > 0 else float("nan") for c in contrasts]
    hs, hf, he = holm(ps), holm(pf), holm(pe)
    out = []
    for i in range(len(contrasts)):
        v = (SLOWER if hs[i] < alpha else FASTER if hf[i] < alpha else EQUIVALENT if he[i] < alpha
             else INCONCLUSIVE)
        out.append(Tested(ps[i], pf[i], pe[i], hs[i], hf[i], he[i], v))
    return out


def detectable(se: float, df: float, tests: int, threshold: float, alpha: float = ALPHA,
               power: float = POWER) -> float:
    """The minimum detectable slowdown: the true ratio at which the one-sided test at Holm's
    strictest level (alpha ÷ tests) rejects 'ratio <= 1 + threshold' with probability ``power``
    (t approximation, noise as estimated). NaN where nothing is testable."""
    if not (math.isfinite(se) and se >= 0 and df >= 1):
        return float("nan")
    k = t_ppf(1 - alpha / max(1, tests), df) + t_ppf(power, df)
    return math.exp(math.log(1 + threshold) + k * se)


# ---------------------------------------------------------------- winners chosen from the data

@dataclass(frozen=True)
class Choice:
    """The candidate with the lowest figure and what may be claimed about it."""
    best: str
    claimed: bool                   # every other candidate is slower, intervals corrected over k - 1
    tied: tuple[str, ...]           # the candidates that cannot be told from it (best first)
    intervals: dict[str, tuple[float, float, float]]   # other -> (ratio, low, high) vs the best, corrected
    comparisons: int                # k - 1

    def sentence(self, steps: int, unit: str = "steps") -> str:
        if self.claimed:
            return self.best
        return f"{_names(self.tied)} cannot be told apart with {steps} {unit}"


def _names(xs: Sequence[str]) -> str:
    xs = list(xs)
    return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]


def choose(values: Mapping[str, float], versus: Callable[[str, str], Contrast], alpha: float = ALPHA) -> Choice:
    """The lowest of ``values`` (name -> figure) and whether it is claimed: ``versus(other,
    best)`` gives log(other ÷ best); the claim needs every other's lower bound, Bonferroni over
    the k - 1 comparisons (one-sided at alpha ÷ (k - 1)), above 1."""
    names = sorted((n for n, v in values.items() if math.isfinite(v)), key=lambda n: (values[n], n))
    if not names:
        raise ValueError("no candidate has a value")
    best, m = names[0], max(1, len(names) - 1)
    ivs, tied = {}, [best]
    for other in names[1:]:
        c = versus(other, best)
        low, high = c.bounds(1 - 2 * alpha, m)       # one-sided at alpha / m on each side
        ivs[other] = (math.exp(c.log_ratio) if math.isfinite(c.log_ratio) else float("nan"), low, high)
        if not low > 1:
            tied.append(other)
    return Choice(best, len(names) > 1 and len(tied) == 1, tuple(tied), ivs, m)

"""The run-to-run spread: how much a whole run's figure moves from run to run, per stratum
(``stats.STRATUM``: cluster × input set × precision, pooled across scopes and the other
remedy axes), from the stored step rows. The intervals on the tool's ratios
(hrvs_ray.metrics.interval) rest on it wherever runs repeat; docs/statistics.md says why.

A run is a fresh process: whole runs differ by more than their steps' noise. A run's figure
(``per_run``: the ratio of sums over its timed steps, or for ``PEAK`` its largest per-step
peak RSS) already carries its steps' noise. ``run_spread`` pools the standard deviation of
log(each run's figure) over the groups of one stratum, never lending one stratum's spread to
another: one-way (each group's runs about their mean) and two-way (an additive fit group +
run, for paired contrasts of groups that ran the same runs, so what every group of run r
shares, its images, cancels). ``Noise.pooled_with`` pools a calibration folder's spread into
ours. Pure numpy/pandas.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import RATIOS, figure, timed
from .stats import STRATUM, Spread, oneway, pool, twoway

PEAK = "peak_rss_per_run"   # not a RATIOS figure: each run's largest per-step peak RSS (memory's own spread)


def group_value(steps: pd.DataFrame, name: str) -> float:
    """A group's figure ``name``: a RATIOS figure (ratio of sums), or for PEAK the largest
    per-step peak RSS (what the node must hold)."""
    if name == PEAK:
        v = pd.to_numeric(steps["peak_rss_bytes"], errors="coerce") if "peak_rss_bytes" in steps else pd.Series()
        return float(v.max()) if v.notna().any() else float("nan")
    return figure(steps, name)


def _narrow(steps: pd.DataFrame, name: str, keys: list[str] = ()) -> pd.DataFrame:
    """Only the columns figure ``name`` and ``keys`` need (a row selection copies every column)."""
    figure_cols = ("peak_rss_bytes",) if name == PEAK else RATIOS[name][:2]
    need = dict.fromkeys([*keys, "run", "warmup", "replay", *figure_cols])
    return steps[[c for c in need if c in steps]]


def per_run(steps: pd.DataFrame, name: str) -> dict[object, float]:
    """run -> log(the run's own figure ``name``) over the timed steps (finite values only)."""
    out = {}
    for run, r in timed(_narrow(steps, name)).groupby("run", sort=True):
        v = group_value(r, name)
        if np.isfinite(v) and v > 0:
            out[run] = float(np.log(v))
    return out


def stratum(steps: pd.DataFrame, cols: tuple[str, ...]) -> tuple | None:
    """The stratum of a group's rows (None when its rows span several)."""
    if not cols:
        return ()
    vals = steps[list(cols)].astype(str).drop_duplicates()
    return tuple(vals.iloc[0]) if len(vals) == 1 else None


@dataclass(frozen=True)
class Noise:
    """The run-to-run spread of one figure per stratum: one-way (each cell's runs about their
    mean) and two-way (cell + run fitted, for paired contrasts of cells that ran the same runs,
    with the runs it was fitted on)."""
    name: str
    cols: tuple[str, ...]
    oneway: dict[tuple, Spread]
    twoway: dict[tuple, tuple[tuple, Spread]]
    # per cell: (sd, df) of its own runs, for the homogeneity diagnostic only (never for the pooling)
    spread_of_cells: dict[tuple, list[tuple[float, int]]] = field(default_factory=dict, compare=False)

    def for_stratum(self, key: tuple | None) -> Spread | None:
        return None if key is None else self.oneway.get(key)

    def paired_for(self, key: tuple | None, runs: tuple) -> Spread | None:
        got = None if key is None else self.twoway.get(key)
        return got[1] if got is not None and got[0] == runs else None

    def pooled_with(self, other: Noise, label: str, strata: list[tuple] | None = None) -> Noise:
        """This noise with ``other``'s (a calibration folder) pooled into each of our strata (ours:
        those with a spread, plus ``strata``) that ``other`` knows; a calibration whose only
        cluster differs from ours matches on the other columns. The basis says it borrowed."""
        def match(key: tuple) -> tuple | None:
            if key in other.oneway:
                return key
            if "cluster" in self.cols and len({k[0] for k in other.oneway}) == 1:
                i = self.cols.index("cluster")
                alike = [k for k in other.oneway if k[:i] + k[i + 1:] == key[:i] + key[i + 1:]]
                return alike[0] if alike else None
            return None
        one, two = dict(self.oneway), dict(self.twoway)
        for key in {*self.oneway, *self.twoway, *(strata or [])}:
            k = match(key) if self.cols == other.cols else None
            if k is None:
                continue
            got = other.oneway[k]
            cal = Spread(got.sd, got.df, f"{label}: {got.df} df")
            one[key] = pool(self.oneway.get(key), cal) or cal
            if key in self.twoway:
                runs, sp = self.twoway[key]
                two[key] = (runs, pool(sp, cal) or cal)
        return Noise(self.name, self.cols, one, two, self.spread_of_cells)


def strata_of(steps: pd.DataFrame) -> tuple[tuple[str, ...], list[tuple]]:
    """The stratum columns the rows have and the strata they hold."""
    cols = tuple(c for c in STRATUM if c in steps and steps[c].notna().any())
    if not cols:
        return cols, [()]
    return cols, [tuple(str(x) for x in k) for k in steps[list(cols)].drop_duplicates().itertuples(index=False)]


def run_spread(steps: pd.DataFrame, keys: list[str], name: str = "s_per_mp") -> Noise | None:
    """The run-to-run spread of figure ``name`` per stratum (``stats.STRATUM`` columns that the
    rows have), pooled over the groups of ``keys`` inside it; None when no group anywhere has
    several runs. It is how much a whole run's figure moves from run to run, its steps' noise
    included."""
    t = timed(steps)
    if t.empty:
        return None
    cols, _ = strata_of(t)
    keys = list(dict.fromkeys([*cols, *keys]))
    t = _narrow(t, name, keys)
    cells: dict[tuple, dict[tuple, dict]] = {}
    for k, g in t.groupby(keys, sort=True, dropna=False):
        k = k if isinstance(k, tuple) else (k,)
        s = tuple(str(x) for x in k[:len(cols)])
        cells.setdefault(s, {})[k] = per_run(g, name)
    one, two, sds = {}, {}, {}
    for s, cs in cells.items():
        o = oneway(cs, "pooled over the stratum's groups")
        if o is not None:
            one[s] = o
        w = twoway(cs, "paired on the runs, pooled over the stratum's groups")
        if w is not None:
            sets = {}
            for runs in cs.values():
                if len(runs) > 1:
                    sets.setdefault(tuple(sorted(runs)), 0)
                    sets[tuple(sorted(runs))] += 1
            common = max(sets.items(), key=lambda kv: (kv[1] * (len(kv[0]) - 1), kv[0]))[0]
            two[s] = (common, w)
        sds[s] = [(float(np.std(list(r.values()), ddof=1)), len(r) - 1) for r in cs.values() if len(r) > 1]
    return Noise(name, cols, one, two, sds) if one else None


__all__ = ["Noise", "PEAK", "group_value", "per_run", "run_spread", "strata_of", "stratum"]

"""The figures of data-parallel cells (issue 28): how much of a step the ranks spend waiting for
the slowest, how unevenly a step's pixels were dealt, and how well the ranks scale. Pure:
numpy/pandas only, on the stored step rows (schema 5: ``ranks``, ``split`` and the per-rank
lists ``rank_compute_seconds``, ``rank_sync_seconds``, ``rank_px``).

Every group figure is a ratio of sums over the group's timed steps, like the one statistic
(hrvs_ray.metrics), never a mean of per-step ratios:

- straggler share of a step = Σ_r (max compute − compute_r) ÷ (ranks × seconds): the share of
  the ranks' time spent idle, waiting for the slowest rank's compute; of a group = Σ_steps
  Σ_r (max − compute_r) ÷ Σ_steps ranks × seconds.
- pixel imbalance of a step = max(rank_px) ÷ mean(rank_px) (1 = every rank trained as many
  pixels, padding included); of a group = Σ_steps max ÷ Σ_steps mean.
- scaling efficiency is strong scaling on the same global batch: (Σ seconds of the 1-rank cell
  on the same images) ÷ (ranks × Σ seconds of the data-parallel cell), over the steps both
  ran (same run and step, same informative pixels), matched on cluster, rank scope, input
  set, run and every remedy axis but the split (a 1-rank cell runs once, as ``shard``). 1 is
  perfect; its interval is the interval of the time ratio (hrvs_ray.metrics.interval, on
  s / informative MP, which on the same images is the ratio of Σ seconds) divided by ranks.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ..remedy_axes import Remedy
from ..scopes import rank_scope, ranks_of
from . import timed
from .interval import Interval, ratio_interval
from .noise import Noise

DP_KEYS = ("ranks", "split")   # what a group's key adds to scope, input set and remedy
ONE_RANK_SPLIT = "shard"       # the split a 1-rank cell records: it runs once, whatever the sweep lists
EFFICIENCY_BASIS = "strong scaling, the same global batch: 1-rank Σ s ÷ (ranks × Σ s)"


def _lists(values: object) -> list[np.ndarray | None]:
    """A list column (as pandas reads it from parquet: arrays, lists or null) as float arrays."""
    out: list[np.ndarray | None] = []
    for v in values:  # type: ignore[attr-defined]
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append(None)
            continue
        a = np.asarray(v, dtype="float64")
        out.append(a if a.size and np.isfinite(a).all() else None)
    return out


def _seconds(steps: pd.DataFrame) -> np.ndarray:
    return pd.to_numeric(steps["seconds"], errors="coerce").to_numpy("float64")


def _straggler_parts(steps: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per step: Σ_r (max compute − compute_r) and ranks × seconds (NaN where unknown)."""
    if "rank_compute_seconds" not in steps or not len(steps):
        return np.full(len(steps), np.nan), np.full(len(steps), np.nan)
    idle = np.array([np.nan if c is None else float((c.max() - c).sum())
                     for c in _lists(steps["rank_compute_seconds"])])
    ranks = np.array([np.nan if c is None else len(c) for c in _lists(steps["rank_compute_seconds"])], "float64")
    return idle, ranks * _seconds(steps)


def _imbalance_parts(steps: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per step: max(rank_px) and mean(rank_px) (NaN where unknown)."""
    if "rank_px" not in steps or not len(steps):
        return np.full(len(steps), np.nan), np.full(len(steps), np.nan)
    px = _lists(steps["rank_px"])
    return (np.array([np.nan if p is None else p.max() for p in px]),
            np.array([np.nan if p is None else p.mean() for p in px]))


def _ratio(num: np.ndarray, den: np.ndarray) -> float:
    ok = np.isfinite(num) & np.isfinite(den)
    total = den[ok].sum()
    return float(num[ok].sum() / total) if ok.any() and total > 0 else float("nan")


def step_straggler_share(steps: pd.DataFrame) -> pd.Series:
    """Each step's straggler share (NaN for a single-rank step or an unknown rank time)."""
    idle, wall = _straggler_parts(steps)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.Series(np.where(wall > 0, idle / wall, np.nan), index=steps.index, dtype="float64")


def step_pixel_imbalance(steps: pd.DataFrame) -> pd.Series:
    """Each step's pixel imbalance, max(rank_px) ÷ mean(rank_px) (NaN for a single-rank step)."""
    top, mean = _imbalance_parts(steps)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.Series(np.where(mean > 0, top / mean, np.nan), index=steps.index, dtype="float64")


def straggler_share(steps: pd.DataFrame) -> float:
    """A group's straggler share over ``steps`` (timed): Σ idle rank-seconds ÷ Σ ranks × seconds."""
    return _ratio(*_straggler_parts(steps))


def pixel_imbalance(steps: pd.DataFrame) -> float:
    """A group's pixel imbalance over ``steps`` (timed): Σ max(rank_px) ÷ Σ mean(rank_px)."""
    return _ratio(*_imbalance_parts(steps))


def is_data_parallel(rows: pd.DataFrame) -> pd.Series:
    """Which rows (steps or cells) belong to a data-parallel cell (ranks > 1)."""
    if "ranks" in rows:
        return pd.to_numeric(rows["ranks"], errors="coerce").fillna(1).astype(int) > 1
    return rows["scope"].map(scope_ranks).astype(int) > 1 if "scope" in rows else pd.Series(False, index=rows.index)


def scope_ranks(scope: object) -> int:
    """The rank count a scope names (1 for a single-rank scope or anything unparsable)."""
    try:
        return ranks_of(str(scope))
    except ValueError:
        return 1


def rank_scope_of(scope: str) -> str:
    """The scope each rank got (``cores:1`` for ``2*cores:1``); anything unparsable as it is."""
    try:
        return rank_scope(scope)
    except ValueError:
        return str(scope)


def setup_label(row: object) -> str:
    """A row's remedy label with the split set aside (``shard``, as a 1-rank cell records it):
    the setup a data-parallel cell is paired with its 1-rank cell and other splits on."""
    return replace(Remedy.from_row(row), split=ONE_RANK_SPLIT).label  # type: ignore[arg-type]


def matched_steps(one: pd.DataFrame, dp: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The timed steps both cells ran on the same images: same run and step, same informative
    pixels (the images; the padded pixels differ by split). Each side in (run, step) order."""
    one, dp = timed(one), timed(dp)
    on = ["run", "step", "informative_px"]
    keys = one[on].merge(dp[on], on=on)[on].drop_duplicates()
    pick = lambda d: d.merge(keys, on=on).sort_values(["run", "step"], kind="stable")  # noqa: E731
    return pick(one), pick(dp)


def scaling_efficiency(one: pd.DataFrame, dp: pd.DataFrame, ranks: int, run_sd: Noise | None = None) -> Interval:
    """Strong scaling on the same global batch: Σ s of the 1-rank cell ÷ (ranks × Σ s of the
    data-parallel cell) over the timed steps both ran on the same images, with the interval of
    the time ratio (run-to-run spread where runs repeat; see hrvs_ray.metrics.interval) ÷ ranks."""
    a, b = matched_steps(one, dp)
    if not len(a):
        return Interval(float("nan"), float("nan"), float("nan"), 0, "no steps on the same images")
    value = float(_seconds(a).sum() / (ranks * _seconds(b).sum()))
    # on the same images Σ informative pixels is equal, so this ratio is Σ s ÷ Σ s
    iv = ratio_interval(a, b, "s_per_informative_mp", run_sd)
    return Interval(value, iv.low / ranks, iv.high / ranks, iv.steps, f"{EFFICIENCY_BASIS}; {iv.basis}",
                    None, iv.level)


def dp_figures(steps: pd.DataFrame) -> dict[str, float]:
    """A group's data-parallel figures over its (timed) steps: straggler share, pixel imbalance."""
    return {"straggler_share": straggler_share(steps), "pixel_imbalance": pixel_imbalance(steps)}


def side_figures(base: pd.DataFrame, new: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """``dp_figures`` of two groups (``compare``'s base and new): figure -> {base, new}, null
    where unknown."""
    a, b = dp_figures(base), dp_figures(new)
    def known(x: float) -> float | None:
        return x if np.isfinite(x) else None
    return {k: {"base": known(a[k]), "new": known(b[k])} for k in a}


def key_json(dp_key: tuple, figures: dict | None) -> dict[str, object]:
    """A compared group's rank count and split (``DP_KEYS``) as JSON, with its data-parallel
    figures on each side (``side_figures``) where it has ranks > 1: shown, not tested."""
    out: dict[str, object] = {"ranks": int(dp_key[0]), "split": str(dp_key[1])}
    return {**out, "data_parallel": figures} if figures is not None else out

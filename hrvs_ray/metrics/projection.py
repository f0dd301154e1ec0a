"""Projected cost of a full epoch from a cell's measured steps. Pure: numpy only.

A cell times a few steps; an epoch of real training runs every batch of the epoch, whose
pixels the plan knows exactly (``plan.epoch.epoch_view``). The step time is modelled as
``seconds = a + b × total_px`` (``a``: a fixed cost per optimizer step, ``b``: the cost
per padded pixel), fitted by least squares on the group's timed steps, and applied to
the epoch's steps and pixel totals. It is a projection, not a measurement: the report
labels it so and shows the fit's residuals.

The fit is constrained to costs that can be: when the steps' pixel totals are all equal
(fixed-size inputs), ``a`` and ``b`` cannot be told apart and the cost is taken as
proportional to pixels (``a = 0``; an epoch of equal steps then projects to the measured
mean step); a negative intercept is refitted through the origin; a negative slope (noise
larger than the pixel effect) falls back to a constant step cost.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CostFit:
    intercept_s: float            # a: seconds per optimizer step that do not scale with pixels
    s_per_total_mp: float         # b × 1e6: seconds per million total (padded) pixels
    form: str                     # "a + b·px" | "b·px" | "a"
    residuals_s: tuple[float, ...]   # measured − fitted seconds, per step in input order
    mean_step_s: float

    def seconds(self, steps: int, total_px: float) -> float:
        """Fitted seconds of ``steps`` optimizer steps holding ``total_px`` pixels in all."""
        return self.intercept_s * steps + self.s_per_total_mp * total_px / 1e6

    @property
    def residual_rms_share(self) -> float:
        """Root-mean-square residual as a share of the mean measured step."""
        r = np.asarray(self.residuals_s)
        return float(np.sqrt(np.mean(r ** 2)) / self.mean_step_s) if len(r) and self.mean_step_s > 0 else float("nan")

    @property
    def residual_max_share(self) -> float:
        r = np.asarray(self.residuals_s)
        return float(np.abs(r).max() / self.mean_step_s) if len(r) and self.mean_step_s > 0 else float("nan")


def fit_cost(seconds: Sequence[float], total_px: Sequence[float]) -> CostFit:
    """Least-squares ``seconds = a + b × total_px`` over steps (see the module docstring)."""
    s = np.asarray(seconds, dtype=np.float64)
    x = np.asarray(total_px, dtype=np.float64) / 1e6
    if len(s) == 0 or len(s) != len(x) or not (x > 0).all():
        raise ValueError("a cost fit needs at least one step, each with a positive pixel total")
    if len(s) < 2 or np.ptp(x) == 0:
        a, b, form = 0.0, float(s.sum() / x.sum()), "b·px"
    else:
        b, a = np.polyfit(x, s, 1)
        a, b, form = float(a), float(b), "a + b·px"
        if a < 0:
            a, b, form = 0.0, float((s * x).sum() / (x * x).sum()), "b·px"
        elif b < 0:
            a, b, form = float(s.mean()), 0.0, "a"
    return CostFit(a, b, form, tuple((s - (a + b * x)).tolist()), float(s.mean()))


def project_epoch(fit: CostFit, steps: int, total_px: int, informative_px: int) -> dict[str, float]:
    """The fit applied to an epoch's exact totals: its seconds and s per informative MP."""
    seconds = fit.seconds(steps, total_px)
    return {"seconds": seconds, "s_per_informative_mp": seconds / (informative_px / 1e6)}

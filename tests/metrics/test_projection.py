"""The projected epoch cost: a least-squares step-cost fit, constrained to costs that can be."""
from __future__ import annotations

import numpy as np
import pytest

from hrvs_ray.metrics.projection import fit_cost, project_epoch


def test_fit_recovers_a_per_step_intercept_and_a_per_pixel_cost():
    px = np.array([2e6, 5e6, 3e6, 8e6])
    noise = np.array([0.01, -0.02, 0.015, -0.005])
    fit = fit_cost(0.3 + 0.5 * px / 1e6 + noise, px)
    assert fit.form == "a + b·px"
    assert fit.intercept_s == pytest.approx(0.3, abs=0.05) and fit.s_per_total_mp == pytest.approx(0.5, abs=0.01)
    assert sum(fit.residuals_s) == pytest.approx(0, abs=1e-9)            # least squares with an intercept
    assert 0 < fit.residual_rms_share < fit.residual_max_share < 0.02
    p = project_epoch(fit, 100, 400_000_000, 100_000_000)
    assert p["seconds"] == pytest.approx(fit.intercept_s * 100 + fit.s_per_total_mp * 400)
    assert p["s_per_informative_mp"] == pytest.approx(p["seconds"] / 100)


def test_equal_pixel_steps_project_the_measured_mean_step():
    fit = fit_cost([1.0, 1.2, 0.8], [4e6, 4e6, 4e6])       # fixed-size input: a and b not separable
    assert fit.form == "b·px" and fit.intercept_s == 0
    assert fit.seconds(10, 40e6) == pytest.approx(10.0)     # ten equal steps = ten mean steps


def test_impossible_costs_are_refitted():
    px = np.array([1e6, 2e6, 3e6])
    assert fit_cost([0.05, 1.0, 2.0], px).form == "b·px"              # the line would cross zero below 1 MP
    flat = fit_cost([1.0, 0.9, 0.8], px)                                # time falls as pixels grow: noise
    assert flat.form == "a" and flat.s_per_total_mp == 0 and flat.intercept_s == pytest.approx(0.9)
    with pytest.raises(ValueError):
        fit_cost([], [])

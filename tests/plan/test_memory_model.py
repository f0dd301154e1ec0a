"""The memory model: built-in factors per remedy, and calibration on measured steps."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hrvs_ray.plan.memory_calibration import calibrate
from hrvs_ray.plan.memory_model import BASE_BYTES, FACTOR, Calibration, bytes_per_pixel, estimate_step_bytes, fit_line
from hrvs_ray.remedy_axes import PAPER, Remedy


def test_built_in_model_is_the_papers_for_its_setup_and_scaled_for_remedies():
    assert estimate_step_bytes(67_100_000) == BASE_BYTES + 430 * 67_100_000      # paper's Table 2 slope
    # every setting a sweep can name has a measured factor, and the cheaper settings plan less
    for p, m, c in FACTOR:
        assert estimate_step_bytes(10**7, Remedy(precision=p, memory_format=m, checkpointing=c)) \
            <= estimate_step_bytes(10**7)
    assert bytes_per_pixel(Remedy(precision="bfloat16")) < bytes_per_pixel(PAPER)


def test_fit_recovers_a_line_and_reports_its_error():
    px = np.array([1e6, 2e6, 4e6, 8e6])
    f = fit_line(px, 5e8 + 300 * px)
    assert f.slope_from == "fit" and abs(f.bytes_per_pixel - 300) < 1e-6 and abs(f.base_bytes - 5e8) < 1
    assert f.max_rel_error < 1e-9 and f.predict(3_000_000) == pytest.approx(5e8 + 9e8)


def test_one_batch_shape_keeps_the_built_in_slope_and_fits_the_base():
    px = np.array([1e6, 1.01e6, 0.99e6])
    f = fit_line(px, np.array([2.0e9, 2.1e9, 1.9e9]), PAPER)
    assert f.slope_from == "built-in" and f.bytes_per_pixel == bytes_per_pixel(PAPER)
    assert f.predict(1_000_000) == pytest.approx(2.0e9, rel=0.06)


def _steps(node: str, precision: str, base: float, bpp: float) -> pd.DataFrame:
    px = np.array([1e6, 2e6, 3e6, 5e6, 1e6])
    return pd.DataFrame({"node": node, "precision": precision, "memory_format": "contiguous",
                         "checkpointing": "none", "pass_px": px, "peak_rss_bytes": base + bpp * px,
                         "peak_rss_scope": "step", "warmup": [True, False, False, False, False]})


def test_calibration_is_per_node_and_setting_and_round_trips():
    steps = pd.concat([_steps("a", "float32", 1e9, 400), _steps("b", "float32", 2e9, 500),
                       _steps("a", "bfloat16", 1e9, 200)])
    steps.loc[0, "peak_rss_bytes"] = 1e12          # a warm-up row: never part of the fit
    cal = calibrate(steps)
    assert set(cal.fits) == {("a", "float32", "contiguous", "none", "default"),
                             ("b", "float32", "contiguous", "none", "default"),
                             ("a", "bfloat16", "contiguous", "none", "default")}
    assert cal.predict(1_000_000, PAPER) == pytest.approx(2e9 + 5e8)             # worst node
    assert cal.predict(1_000_000, PAPER, node="a") == pytest.approx(1e9 + 4e8)
    assert cal.predict(1_000_000, Remedy(checkpointing="stages")) is None          # not measured
    est = cal.estimator()
    assert est(1_000_000, Remedy(checkpointing="stages")) == estimate_step_bytes(1_000_000,
                                                                               Remedy(checkpointing="stages"))
    again = Calibration.from_json(cal.to_json())
    assert again.fits.keys() == cal.fits.keys()
    assert all(again.fits[k].predict(7) == cal.fits[k].predict(7) for k in cal.fits)


def test_kernel_cache_on_and_off_steps_are_never_fitted_together():
    on = _steps("a", "float32", 1.5e9, 400).assign(kernel_cache="default")
    off = _steps("a", "float32", 1.0e9, 400).assign(kernel_cache="off")
    cal = calibrate(pd.concat([on, off]))
    assert set(cal.fits) == {("a", "float32", "contiguous", "none", "default"),
                             ("a", "float32", "contiguous", "none", "off")}
    assert cal.predict(1_000_000, PAPER) == pytest.approx(1.5e9 + 4e8)
    assert cal.predict(1_000_000, Remedy(kernel_cache="off")) == pytest.approx(1.0e9 + 4e8)
    assert all(f.max_rel_error < 1e-9 for f in cal.fits.values())        # each fit is exact: no mixing
    # a fit stored before the axis existed was of torch's default caches
    old = [{k: v for k, v in d.items() if k != "kernel_cache"} for d in json.loads(cal.to_json())["fits"]]
    assert set(Calibration.from_json(json.dumps(old[:1])).fits) == {("a", "float32", "contiguous", "none", "default")}

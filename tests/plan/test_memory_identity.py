"""Memory fits that know where they come from: which steps are fitted, which machine a fit is
for, and what plan --memory-from and the pre-flight do with a fit of another machine."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hrvs_ray.cli import main
from hrvs_ray.plan.memory_calibration import calibrate, node_estimators, plan_estimator, unmasked
from hrvs_ray.plan.memory_identity import local_identity, mismatch
from hrvs_ray.plan.memory_model import Calibration, Fit, FitError, estimate_step_bytes
from hrvs_ray.remedy_axes import PAPER, Remedy
from tests.helpers import REPO

KEY = ("n1", "float32", "contiguous", "none", "default")


def _cell(cell: str, px: list[float], base: float, bpp: float, released: bool = False) -> pd.DataFrame:
    """A cell whose allocator keeps the heap of its largest pass so far (release_heap: false):
    each step's peak is that of the largest pass up to it, unless the heap was released."""
    px_a = np.array(px)
    kept = px_a if released else np.maximum.accumulate(px_a)
    return pd.DataFrame({"cell_id": cell, "step": range(len(px)), "node": "n1", "precision": "float32",
                         "memory_format": "contiguous", "checkpointing": "none", "pass_px": px_a,
                         "peak_rss_bytes": base + bpp * kept, "warmup": [True] + [False] * (len(px) - 1),
                         "peak_rss_scope": "step, free heap released first" if released else "step"})


def test_steps_masked_by_an_earlier_larger_pass_are_not_fitted():
    steps = pd.concat([_cell("a", [2e6, 1e6, 3e6, 1.5e6, 4e6, 2e6], 1e9, 300),
                       _cell("b", [1e6, 5e6, 2e6, 6e6, 1e6], 1e9, 300)])
    kept = unmasked(steps)
    assert sorted(zip(kept["cell_id"], kept["step"], strict=True)) == [("a", 0), ("a", 2), ("a", 4),
                                                         ("b", 0), ("b", 1), ("b", 3)]
    fit = calibrate(steps).fits[KEY]
    assert fit.bytes_per_pixel == pytest.approx(300) and fit.slope_from == "fit"
    # fitting every timed step, as before, flattens the slope: the masked peaks look like big ones
    everything = calibrate(steps.assign(cell_id=range(len(steps)))).fits[KEY]
    assert everything.bytes_per_pixel < 0.8 * 300


def test_steps_run_with_the_heap_released_all_count():
    steps = _cell("a", [2e6, 1e6, 3e6, 1.5e6, 4e6], 1e9, 300, released=True)
    assert len(unmasked(steps)) == 5 and calibrate(steps).fits[KEY].steps == 4


def _here() -> dict:
    return {"cpu_model": "AMD EPYC", "cores": 2, "memory_bytes": 25 * 2**30, "torch_version": "2.14.1"}


def test_identity_must_match_model_cores_torch_and_memory_within_five_percent():
    here = _here()
    assert mismatch(dict(here, memory_bytes=int(here["memory_bytes"] * 1.04)), here) == []
    why = mismatch(dict(here, cpu_model="Intel Xeon", cores=64, memory_bytes=here["memory_bytes"] * 2,
                        torch_version="2.1.0"), here)
    assert len(why) == 4 and "CPU model 'Intel Xeon' in the fit, 'AMD EPYC' here" in why[0]
    assert "more than 5% apart" in why[3]
    assert "no node identity recorded" in mismatch(None, here)[0]
    assert "unknown" in mismatch(dict(here, cpu_model=None), here)[0]


def _fit_folder(tmp_path: Path, identity: dict | None, base: float = 1e9, bpp: float = 300,
                old_format: bool = False) -> Path:
    cal = Calibration({KEY: Fit(base, bpp, 9, 0.01, "fit")}, {"n1": identity} if identity else {})
    text = json.dumps(json.loads(cal.to_json())["fits"]) if old_format else cal.to_json()
    (tmp_path / "memory_fit.json").write_text(text)
    return tmp_path


def test_a_fit_of_another_machine_is_not_used(tmp_path):
    other = dict(_here(), cpu_model="Intel(R) Xeon(R) Gold 6130", memory_bytes=192 * 2**30)
    est, text = plan_estimator(_fit_folder(tmp_path, other, bpp=1), _here())
    assert est is None and text.startswith("built-in model")
    assert "node n1 does not match: CPU model 'Intel(R) Xeon(R) Gold 6130' in the fit, 'AMD EPYC' here" in text
    est, text = plan_estimator(_fit_folder(tmp_path, None, old_format=True), _here())
    assert est is None and "no node identity recorded" in text


def test_a_matching_fit_is_used_and_unfitted_settings_say_they_fell_back(tmp_path):
    est, text = plan_estimator(_fit_folder(tmp_path, _here()), _here())
    assert est(1_000_000, PAPER) == int(1e9 + 300e6) and "calibrated on" in text
    bf16 = Remedy(precision="bfloat16")
    assert est(1_000_000, bf16) == estimate_step_bytes(1_000_000, bf16)
    assert est.fallbacks == {("bfloat16", "contiguous", "none", "default")}


def test_a_prediction_at_or_below_zero_is_an_error_in_the_fit(tmp_path):
    est, _ = plan_estimator(_fit_folder(tmp_path, _here(), base=-5e9, bpp=100), _here())
    with pytest.raises(FitError, match="predicts -4.90 GB .* an error in the fit, not a missing fit"):
        est(1_000_000, PAPER)


def _plan(tmp_path: Path, capsys, folder: Path) -> tuple[int, str, str]:
    rc = main(["plan", str(REPO / "sweeps" / "smoke.yaml"), "--memory-from", str(folder)])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.slow
def test_plan_memory_from_another_machine_falls_back_and_says_why(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    other = dict(local_identity(), cpu_model="Some Other CPU")
    rc, out, err = _plan(tmp_path, capsys, _fit_folder(tmp_path, other, bpp=1))
    assert rc == 0 and "node n1 does not match: CPU model 'Some Other CPU' in the fit" in err
    assert "(memory: built-in model" in out
    rc, out, err = _plan(tmp_path, capsys, _fit_folder(tmp_path, local_identity(), base=-5e9, bpp=1))
    assert rc == 2 and "an error in the fit" in err


def test_preflight_uses_a_fit_only_on_nodes_that_match():
    here = _here()
    cal = Calibration({KEY: Fit(1e9, 300, 9, 0.01, "fit")}, {"n1": here})
    live = {"same": {"cpu_model": "AMD EPYC", "logical_cpus": 2, "memory_bytes": here["memory_bytes"],
                     "info": {"torch_version": "2.14.1+cu130"}},
            "big": {"cpu_model": "AMD EPYC", "logical_cpus": 64, "memory_bytes": 512 * 2**30,
                    "info": {"torch_version": "2.14.1"}}}
    ests, notes = node_estimators(cal, live)
    assert set(ests) == {"same"} and ests["same"](1_000_000, PAPER) == int(1.3e9)
    assert len(notes) == 1 and "node big: built-in model" in notes[0]
    assert "logical CPUs 2 in the fit, 64 here" in notes[0]


def test_plan_memory_from_says_what_a_fit_of_unknown_processes_means(tmp_path):
    """Steps recorded before schema 4 carry the process's own RSS (a forked cell's misses the library
    pages it never mapped): a fit of them says so; one of library + anonymous peaks does not."""
    old = _cell("a", [1e6, 2e6, 3e6], 1e9, 300)
    assert calibrate(old).memory_basis == "unknown"
    new = old.assign(library_bytes=4e8)
    assert calibrate(new).memory_basis == "library+anonymous"
    assert calibrate(pd.concat([old, new.assign(cell_id="b")])).memory_basis == "mixed"
    for basis, says in (("unknown", "process: unknown"), ("library+anonymous", None)):
        cal = Calibration({KEY: Fit(1e9, 300, 9, 0.01, "fit")}, {"n1": _here()}, basis)
        (tmp_path / "memory_fit.json").write_text(cal.to_json())
        _, text = plan_estimator(tmp_path, _here())
        assert (says in text and "~0.3 GB" in text and "low" in text) if says else "schema 4" not in text

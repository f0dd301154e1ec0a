"""Memory that does not depend on how the cell's process started (issue 25): the same small cell
forked from a zygote that imported torch, and in a fresh interpreter that imported nothing
before the cell (``execution.process: fork | fresh``, both through a CellHost as a sweep runs
them), read the same baseline and per-step peak within max(5 %, 40 MB), while the processes'
own RSS differs by the library pages the fork never mapped."""
from __future__ import annotations

import json
import os

import pytest

from hrvs_ray.cluster.zygote_client import CellHost
from hrvs_ray.config import load_sweep
from hrvs_ray.node.topology import read_topology, resolve_scope
from hrvs_ray.plan.cells import plan_cells
from hrvs_ray.store.results import with_library
from hrvs_ray.train.library_baseline import measure_library
from tests.helpers import tiny_sweep_dict

pytestmark = pytest.mark.slow

MB = 1_000_000


def _close(a: int, b: int) -> bool:
    return abs(a - b) <= max(0.05 * max(a, b), 40 * MB)


def test_forked_and_fresh_cells_read_the_same_memory(tmp_path, write_sweep, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = tiny_sweep_dict(tmp_path, training={"warmup_steps": 1, "steps": 2, "runs": 1, "seed": 3})
    d["input_sets"] = {"FS": {"resize": "fixed", "size": [160, 160], "batch_size": 8}}
    d["dataset"]["synthetic"]["count"] = 32
    path = write_sweep(d)
    sweep = load_sweep(path)
    cell = plan_cells(sweep, ["local"])[0]
    placement = resolve_scope(read_topology("/"), "node", allowed=os.sched_getaffinity(0))

    outcomes = {}
    for how, process in (("forked", "fork"), ("fresh", "fresh")):   # the sweep's two ways (execution.process)
        with CellHost(placement, cell.remedy.kernel_cache, process) as host:
            out = host.run(cell, sweep.dataset, "local")
        assert out.status == "ok", out.error
        assert out.facts.process == process
        outcomes[how] = out.steps

    library = measure_library()
    assert "error" not in library, library
    lib = library["library_bytes"]
    steps, cells = {}, {}
    for how, t in outcomes.items():
        steps[how], cells[how] = with_library(t, {"node": "local"}, lib)
    for how in steps:
        s = steps[how].to_pandas()
        assert (s["library_bytes"] == lib).all() and (s["peak_rss_bytes"] == lib + s["peak_anon_bytes"]).all()
        assert (s["file_growth_bytes"] >= 0).all() and (s["peak_anon_bytes"] >= s["anon_start_bytes"]).all()
        assert cells[how]["baseline_rss_bytes"] == lib + cells[how]["baseline_anon_bytes"]
    f, n = steps["forked"].to_pandas(), steps["fresh"].to_pandas()
    report = {"library": lib, "baseline": (cells["forked"]["baseline_rss_bytes"], cells["fresh"]["baseline_rss_bytes"]),
              "peak": (f["peak_rss_bytes"].tolist(), n["peak_rss_bytes"].tolist()),
              "vmhwm": (f["vmhwm_bytes"].tolist(), n["vmhwm_bytes"].tolist())}
    print(json.dumps(report))
    # the processes' own figures differ: the fork never mapped most library pages ...
    assert (n["vmhwm_bytes"] - f["vmhwm_bytes"]).min() > 100 * MB, report
    # ... the defined ones agree: baseline and every step's peak
    assert _close(cells["forked"]["baseline_rss_bytes"], cells["fresh"]["baseline_rss_bytes"]), report
    for a, b in zip(f["peak_rss_bytes"], n["peak_rss_bytes"], strict=True):
        assert _close(int(a), int(b)), report
    # and they are what a fresh process reads (its own VmHWM), within the same tolerance
    for a, b in zip(n["peak_rss_bytes"], n["vmhwm_bytes"], strict=True):
        assert _close(int(a), int(b)), report

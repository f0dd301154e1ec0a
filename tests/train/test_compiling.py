"""torch.compile's mechanics on a tiny CNN (issue 27): what a step records about the
compiler (Dynamo's counters), the recompile limit and its eager fallback, and compiler
caches that never carry over between cells unless asked. Each test compiles for real."""
from __future__ import annotations

import json
import os

import pytest
import torch

from hrvs_ray.remedy_axes import Remedy
from hrvs_ray.train.model import train_step

pytestmark = pytest.mark.slow


def _tiny() -> torch.nn.Module:
    torch.manual_seed(5)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))


def _batch(h: int, w: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(2, 3, h, w, generator=g), torch.tensor([0, 2]))]


def _run(remedy: Remedy, shapes: list[tuple[int, int]], tmp_path) -> tuple[list[dict], list[float], str]:
    """One 'cell' of the tiny CNN: its caches, compiled forward, eager loss and Adam."""
    # imported here, not at the top: Dynamo takes seconds to import, and the fast lane
    # collects this (slow) module without running it
    from hrvs_ray.train.compiling import CompileProbe, compile_model, open_caches
    torch.set_num_threads(1)
    caches = open_caches(remedy, "t", "cpu", base=tmp_path)
    try:
        model = _tiny()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False)
        probe = CompileProbe()
        forward = compile_model(model, remedy, probe)
        rows, losses = [], []
        for i, (h, w) in enumerate(shapes):
            probe.begin()
            losses.append(train_step(forward, opt, _batch(h, w, i), "float32").item())
            rows.append(probe.end())
        assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(caches.path)
        assert any(caches.path.rglob("*")), "Inductor wrote nothing to the cell's cache folder"
    finally:
        caches.close()
    return rows, losses, caches.state


def test_each_step_records_its_compiles_and_the_limit_runs_new_shapes_eager(tmp_path):
    shapes = [(8, 8), (8, 8), (8, 12), (8, 8)]
    rows, losses, state = _run(Remedy(compile="static", recompile_limit=1), shapes, tmp_path)
    assert state == "empty"
    first, same, new, back = rows
    assert first["compiles"] == 1 and first["compile_seconds"] > 0 and not first["ran_eager"]
    assert json.loads(first["compile_reasons"]) == ["first compile"]
    assert not first["recompile_limit_hit"] and first["graph_breaks"] == 0
    assert first["compiler_child_peak_bytes"] > 0   # the C++ compiler ran as a child, recorded apart
    assert (same["compiles"], same["compile_seconds"], same["ran_eager"]) == (0, 0, False)
    assert same["compile_reasons"] is None
    # a new shape at the limit (1 graph): no compile, the step runs eager, and says why
    assert new["compiles"] == 0 and new["recompile_limit_hit"] and new["ran_eager"]
    assert any(r.startswith("recompile limit hit") for r in json.loads(new["compile_reasons"]))
    # the shape that has a graph still runs it
    assert back["compiles"] == 0 and not back["ran_eager"] and not back["recompile_limit_hit"]
    # the same maths as eager: the first step's loss within 1e-5 (relative)
    model = _tiny()
    ref = train_step(model, torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False), _batch(8, 8, 0),
                     "float32").item()
    assert losses[0] == pytest.approx(ref, rel=1e-5)


def test_caches_carry_over_only_when_warm(tmp_path):
    from torch._dynamo.utils import counters

    def hits() -> int:
        return counters["inductor"]["fxgraph_cache_hit"]

    warm = Remedy(compile="static", compile_cache="warm")
    h0 = hits()
    _, _, state = _run(warm, [(8, 8)], tmp_path)
    assert state == "empty" and hits() == h0                 # the first warm cell fills the folder
    _, _, state = _run(warm, [(8, 8)], tmp_path)
    assert state.startswith("filled") and hits() > h0         # the next one reuses its kernels
    h1 = hits()
    rows, _, state = _run(Remedy(compile="static"), [(8, 8)], tmp_path)
    assert state == "empty" and hits() == h1 and rows[0]["compiles"] == 1   # cold: nothing carried over
    assert [p.name for p in tmp_path.glob("hrvs-ray-compile-*/cell-*")] == []   # cold folders go with the cell

"""The report's Compiling section on hand-made step rows (no training): steady state from
replay rows paired with eager's, compile cost apart, break-even as a labelled projection."""
from __future__ import annotations

import json

import pandas as pd

from hrvs_ray.report import compile_section
from hrvs_ray.report.load import Merged


def _rows(compile_: str, seconds: list[float], compiles: list[int], compile_s: list[float], new: list[bool],
          iset: str = "HR&VS") -> list[dict]:
    """4 planned steps (1 warm-up) then 3 replayed; each step 4 images of 1 MP informative."""
    out = []
    for step, sec in enumerate(seconds):
        replay = step >= 4
        out.append({"cluster": "c", "scope": "node", "input_set": iset, "run": 0, "step": step,
                    "warmup": step == 0, "replay": replay, "batch_fingerprint": f"b{step if not replay else step - 3}",
                    "batch_size": 4, "seconds": sec, "informative_px": 4_000_000, "total_px": 5_000_000,
                    "compile": compile_, "compiles": compiles[step], "compile_seconds": compile_s[step],
                    "new_shape": new[step], "ran_eager": compile_ == "eager",
                    "recompile_limit": None if compile_ == "eager" else 8,
                    "compile_reasons": json.dumps(["first compile"]) if compiles[step] else None,
                    "batching": "pad", "precision": "float32", "memory_format": "contiguous",
                    "checkpointing": "none", "kernel_cache": "default", "shape_round": 0})
    return out


def _merged(rows: list[dict]) -> Merged:
    return Merged(sources=[], steps=pd.DataFrame(rows), cells=pd.DataFrame(), nodes=pd.DataFrame())


NONE = [0] * 7


def test_one_shape_pays_back_after_compile_seconds_over_the_saving_per_image():
    eager = _rows("eager", [1.0] * 7, NONE, [0.0] * 7, [True] + [False] * 6, "LR&FS")
    static = _rows("static", [51, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], [1] + [0] * 6, [50.0] + [0.0] * 6,
                   [True] + [False] * 6, "LR&FS")
    t = compile_section.table(_merged(eager + static))
    (row,) = t.rows
    assert row[3] == "static" and row[6].text.startswith("0.500×")
    assert row[8] == "1 / 1" and row[9] == "0"
    # saving 0.125 s/MP × 1 MP per image; 50 s of compiling: 400 images
    assert row[-1] == "400 (projection)"
    (sentence,) = compile_section.answers(t)
    assert "compile static for LR&FS only if you train more than 400 images" in sentence


def test_a_recompile_per_new_shape_that_costs_more_than_it_saves_never_pays():
    new = [True, True, True, True, False, False, False]
    eager = _rows("eager", [1.0] * 7, NONE, [0.0] * 7, new)
    static = _rows("static", [51, 31, 31, 31, 0.5, 0.5, 0.5], [1, 1, 1, 1, 0, 0, 0], [50.0, 30, 30, 30, 0, 0, 0], new)
    t = compile_section.table(_merged(eager + static))
    (row,) = t.rows
    assert row[8] == "4 / 4" and row[7] == "140"
    assert row[-1].startswith("never")   # 30 s per recompile, a new shape every 4 images, 0.125 s saved per image
    assert "do not compile for HR&VS" in compile_section.answers(t)[0]


def test_slower_compiled_steps_never_pay_and_results_without_compile_have_no_section():
    eager = _rows("eager", [1.0] * 7, NONE, [0.0] * 7, [True] + [False] * 6)
    slow = _rows("dynamic", [60, 2, 2, 2, 2, 2, 2], [1] + [0] * 6, [58.0] + [0.0] * 6, [True] + [False] * 6)
    (row,) = compile_section.table(_merged(eager + slow)).rows
    assert row[6].text.startswith("2.00×") and row[-1] == "never"
    assert not compile_section.has_compile(_merged(eager))


def _views(images: list[int], distinct: list[int], shape_round: int = 0) -> dict:
    """The plan's epoch view of HR&VS / pad with one shape curve (images -> distinct pass shapes)."""
    return {("HR&VS", "pad"): {"epoch": {"pass_shapes": [{"shape_round": shape_round, "images": images,
                                                          "distinct": distinct}]}}}


def _dynamic() -> list[dict]:
    """Eager 1 s a step; 'dynamic': first compile 50 s, then one 20 s recompile over the 3 new
    shapes after it (1/3 recompile per new shape), 0.5 s a step at steady state: a saving of
    0.125 s per image (0.125 s/inf-MP × 1 MP per image)."""
    new = [True, True, True, True, False, False, False]
    eager = _rows("eager", [1.0] * 7, NONE, [0.0] * 7, new)
    dyn = _rows("dynamic", [51, 21, 0.5, 0.5, 0.5, 0.5, 0.5], [1, 1, 0, 0, 0, 0, 0], [50.0, 20, 0, 0, 0, 0, 0], new)
    return eager + dyn


def test_break_even_reads_the_epochs_shape_curve_from_the_plan():
    # 4 shapes ever (e.g. rounded): 50 + 20 × 1/3 × 3 = 70 compile s, paid back at 70 ÷ 0.125 = 560 images
    (row,) = compile_section.table(_merged(_dynamic()), _views([4, 8, 1000], [1, 4, 4])).rows
    assert row[-1] == "560 (projection)"
    # the same cell, an epoch of 100 images: not paid back within it, and says what it would cost
    (row,) = compile_section.table(_merged(_dynamic()), _views([4, 8, 100], [1, 4, 4])).rows
    assert row[-1].startswith("not within an epoch (100 images): 70 compile s against")
    # the curve of another rounding is not this cell's: the cell's own rate is used
    (row,) = compile_section.table(_merged(_dynamic()), _views([4, 8, 1000], [1, 4, 4], shape_round=32)).rows
    assert not row[-1].startswith("560")


def test_the_limit_reached_before_paying_back_is_never_and_says_when():
    # shapes grow to 100 over 400 images; graphs = 1 + (shapes - 1) / 3 pass 8 at 22 shapes:
    # between 16 (4 shapes) and 400 images (100), 16 + 384 × (22 - 4) / 96 = 88 images
    (row,) = compile_section.table(_merged(_dynamic()), _views([4, 8, 16, 400], [1, 2, 4, 100])).rows
    assert row[-1] == "never (the recompile limit, 8, comes first, by about 88 images)"
    (sentence,) = compile_section.answers(compile_section.table(_merged(_dynamic()),
                                                                _views([4, 8, 16, 400], [1, 2, 4, 100])))
    assert "do not compile for HR&VS" in sentence


def test_the_epoch_view_of_a_compiling_sweep_carries_its_shape_curves():
    from hrvs_ray.config import load_sweep
    from hrvs_ray.plan.epoch import policy_views
    from hrvs_ray.plan.table import planning_shapes
    from tests.helpers import REPO

    sweep = load_sweep(REPO / "sweeps" / "compile.yaml")
    views = policy_views(sweep, planning_shapes(sweep, read_disk=False)[0])
    for (iset, _), v in views.items():
        (curve,) = v["epoch"]["pass_shapes"]
        assert curve["shape_round"] == 0 and curve["distinct"][0] == 1
        assert curve["images"] == sorted(curve["images"]) and curve["distinct"] == sorted(curve["distinct"])
        assert curve["images"][-1] == v["epoch"]["steps"] * sweep.input_set(iset).batch_size
    lr = views[("LR&FS", "pad")]["epoch"]["pass_shapes"][0]
    assert lr["distinct"][-1] == 1                       # one fixed shape: one graph for the epoch
    assert views[("HR&VS", "pad")]["epoch"]["pass_shapes"][0]["distinct"][-1] > 8   # past the default limit

"""The remedies in real training: accumulate, bf16, channels-last, checkpointing (tiny, CPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hrvs_ray.config import NetworkSpec, OptimizerSpec
from hrvs_ray.probes.flops import step_flops
from hrvs_ray.train.model import build_model, build_optimizer, train_step

# report rendering / torch training: seconds per test, so out of the fast lane (README)
pytestmark = pytest.mark.slow

SHAPES = [(2, 3, 48, 64), (2, 3, 48, 64), (2, 3, 40, 56)]


def _batches(fmt: str = "contiguous"):
    g = torch.Generator().manual_seed(3)
    out = []
    for n, c, h, w in SHAPES:
        x = torch.randn(n, c, h, w, generator=g)
        if fmt == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        out.append((x, torch.randint(0, 5, (n,), generator=g)))
    return out


def _train(precision="float32", fmt="contiguous", ckpt="none", split=None):
    torch.set_num_threads(1)
    model = build_model(NetworkSpec(num_classes=5), 11, ckpt, fmt)
    model.train()
    opt = build_optimizer(OptimizerSpec(), model)
    losses = []
    for x, y in _batches(fmt):
        passes = [(x, y)] if split is None else [(x[s], y[s]) for s in split]
        losses.append(train_step(model, opt, passes, precision).item())
    return losses, [p.detach().clone() for p in model.parameters()]


def test_accumulate_with_one_pass_is_bitwise_the_pad_step():
    # micro_batch = batch size: one pass of weight exactly 1, the paper's step bit for bit
    a_loss, a_params = _train()
    b_loss, b_params = _train(split=[slice(0, 2)])
    assert a_loss == b_loss
    assert all(torch.equal(p, q) for p, q in zip(a_params, b_params, strict=False))


def test_accumulate_loss_is_the_mean_over_the_whole_batch():
    # two passes of one image: the recorded loss is the mean of the per-image losses of the
    # same weights (BatchNorm sees each image alone, so it differs from the padded pass)
    torch.set_num_threads(1)
    model = build_model(NetworkSpec(num_classes=5), 11)
    model.train()
    x, y = _batches()[0]
    ref = [torch.nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).item() for i in range(2)]
    model2 = build_model(NetworkSpec(num_classes=5), 11)
    model2.train()
    loss = train_step(model2, build_optimizer(OptimizerSpec(), model2), [(x[0:1], y[0:1]), (x[1:2], y[1:2])],
                      "float32")
    assert abs(loss.item() - sum(ref) / 2) < 1e-6


def test_checkpointing_leaves_float32_losses_equal_within_tolerance():
    plain, _ = _train()
    ckpt, _ = _train(ckpt="stages")
    assert max(abs(a - b) for a, b in zip(plain, ckpt, strict=False)) < 1e-5


def test_bfloat16_is_bitwise_repeatable_and_close_to_float32():
    a, _ = _train("bfloat16")
    b, _ = _train("bfloat16")
    assert a == b
    f32, _ = _train()
    assert max(abs(x - y) for x, y in zip(a, f32, strict=False)) < 0.1
    assert a != f32                                  # it really ran in bfloat16


def test_channels_last_trains_the_same_model():
    a, _ = _train(fmt="channels_last")
    b, _ = _train(fmt="channels_last")
    c, _ = _train()
    assert a == b
    assert abs(a[0] - c[0]) < 1e-5          # same weights, other kernels: the same first loss
    assert max(abs(x - y) for x, y in zip(a, c, strict=False)) < 1e-2   # Adam then amplifies rounding a little


def test_flops_scale_exactly_with_images_per_pass():
    # the cell counts each pass as images × FLOPs of one image of its shape (counted on two)
    assert step_flops("resnet18", 29, (3, 3, 40, 56)) == 3 * (step_flops("resnet18", 29, (2, 3, 40, 56)) // 2)
    # a 32x32 image alone would leave BatchNorm one value per channel: two never do
    assert step_flops("resnet18", 29, (2, 3, 32, 32)) > 0


class _Images:
    """An in-memory prepared set: real uint8 images, real labels."""

    def __init__(self, shapes: dict[str, tuple[int, int]]) -> None:
        g = np.random.default_rng(0)
        self.images = {i: g.integers(0, 256, (h, w, 3), dtype=np.uint8) for i, (h, w) in shapes.items()}

    def get(self, i: str) -> np.ndarray:
        return self.images[i]

    def label(self, i: str) -> int:
        return int(i[-1]) % 5


def _cell(tmp_path, remedies: dict | None):
    from hrvs_ray.config import parse_sweep
    from hrvs_ray.plan.cells import plan_cells
    from tests.helpers import tiny_sweep_dict

    d = tiny_sweep_dict(tmp_path, input_sets={"HR&VS": {"resize": "none", "batch_size": 3}})
    d["model"] = {"num_classes": 5}
    if remedies:
        d["remedies"] = remedies
    return plan_cells(parse_sweep(d), ["c"])[0]


def test_accumulate_with_the_whole_batch_collates_and_trains_exactly_as_pad(tmp_path):
    from hrvs_ray.train.cell import step_input

    shapes = {"a1": (40, 52), "b2": (48, 36), "c3": (44, 60)}
    images = _Images(shapes)
    ids = ("a1", "b2", "c3")
    got = []
    for remedies in (None, {"batching": "accumulate", "micro_batch": 3}, {"batching": "accumulate", "micro_batch": 1}):
        cell = _cell(tmp_path, remedies)
        data = step_input(cell, ids, images, images, shapes)
        torch.set_num_threads(1)
        model = build_model(NetworkSpec(num_classes=5), 11)
        model.train()
        loss = train_step(model, build_optimizer(OptimizerSpec(), model), data.passes, "float32").item()
        got.append((data.fingerprint, [tuple(x.shape) for x, _ in data.passes], loss))
    pad, whole, single = got
    assert whole == pad                                   # same batch, same fingerprint, bitwise loss
    assert single[1] == [(1, 3, 40, 52), (1, 3, 48, 36), (1, 3, 44, 60)]   # each image unpadded
    assert single[0] != pad[0] and abs(single[2] - pad[2]) < 1.0

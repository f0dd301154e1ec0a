"""FLOPs of a ResNet18 training step from meta tensors: scaling and the known per-image figure."""
from __future__ import annotations

import pytest

from hrvs_ray.probes.flops import forward_flops, step_flops


def test_forward_matches_the_published_resnet18_figure():
    # ResNet18 at 224x224 is the well-known 1.82 G multiply-adds; FlopCounterMode counts 2 FLOPs each.
    assert forward_flops("resnet18", 1000, (1, 3, 224, 224)) == pytest.approx(2 * 1.82e9, rel=0.02)


def test_step_is_about_three_forwards():
    fwd = forward_flops("resnet18", 29, (2, 3, 224, 224))
    step = step_flops("resnet18", 29, (2, 3, 224, 224))
    # backward = grad w.r.t. inputs + w.r.t. weights (2x forward), minus the first conv's input grad.
    assert 2.8 * fwd < step < 3.0 * fwd


@pytest.mark.slow
def test_scales_linearly_with_batch_and_pixels():
    base = step_flops("resnet18", 29, (1, 3, 224, 224))
    assert step_flops("resnet18", 29, (4, 3, 224, 224)) == 4 * base
    assert step_flops("resnet18", 29, (1, 3, 448, 448)) == pytest.approx(4 * base, rel=1e-3)
    # an HR&VS-sized batch: per-pixel cost stays the same, nothing is computed (meta tensors)
    hr = step_flops("resnet18", 29, (4, 3, 3000, 4000))
    assert hr / (4 * 3000 * 4000) == pytest.approx(base / (224 * 224), rel=0.01)


def test_cached_per_shape():
    step_flops.cache_clear()
    step_flops("resnet18", 29, (3, 3, 256, 256))
    step_flops("resnet18", 29, (3, 3, 256, 256))
    info = step_flops.cache_info()
    assert info.hits == 1 and info.misses == 1

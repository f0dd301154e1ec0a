"""FLOPs of a ResNet18 training step from meta tensors: scaling and the known per-image figure."""
from __future__ import annotations

import functools

import pytest

from hrvs_ray.probes.flops import _counted_by_mode, _counter, forward_flops, step_flops


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


@pytest.mark.slow
def test_layer_shapes_count_exactly_what_the_flop_counter_mode_counts() -> None:
    # ResNets: every counted FLOP is in a Conv2d or Linear layer, so the fast count is used
    # (a wrong backward factor would fail the one-off check and silently fall back: asserted)
    assert not isinstance(_counter("resnet18", 29), functools.partial)
    for shape in [(2, 3, 40, 56), (2, 3, 123, 211), (4, 3, 97, 64), (2, 3, 500, 333)]:
        assert step_flops("resnet18", 29, shape) == _counted_by_mode("resnet18", 29, shape), shape


@pytest.mark.slow
def test_an_arch_whose_work_is_not_all_in_those_layers_is_counted_by_the_mode() -> None:
    # MobileNetV3's squeeze-excitation differs from the layer count: the mode counts it
    assert isinstance(_counter("mobilenet_v3_small", 29), functools.partial)
    assert step_flops("mobilenet_v3_small", 29, (2, 3, 96, 128)) == _counted_by_mode("mobilenet_v3_small", 29,
                                                                                        (2, 3, 96, 128))


@pytest.mark.slow
def test_the_checks_verdict_is_kept_on_the_node_and_used_by_the_next_process(tmp_path, monkeypatch) -> None:
    import tempfile

    from hrvs_ray.probes.flops import _verdict_file

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _counter.cache_clear()
    assert not isinstance(_counter("resnet18", 29), functools.partial)
    kept = _verdict_file("resnet18", 29)
    assert kept.parent.parent == tmp_path and kept.read_text() == "layers"
    # what a later process reads is what it uses (here a planted "mode": still a right count)
    kept.write_text("mode")
    _counter.cache_clear()
    assert isinstance(_counter("resnet18", 29), functools.partial)
    kept.write_text("garbage")          # unreadable: the check runs again and rewrites it
    _counter.cache_clear()
    assert not isinstance(_counter("resnet18", 29), functools.partial) and kept.read_text() == "layers"
    _counter.cache_clear()

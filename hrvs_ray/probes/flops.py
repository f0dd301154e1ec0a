"""FLOPs of one training step (forward + backward), counted from shapes on meta tensors.

``torch.utils.flop_counter.FlopCounterMode`` is the reference: it counts convolutions,
matmuls and attention from their shapes (2 FLOPs per multiply-add), forward and backward.
BatchNorm, ReLU, pooling and the optimizer update are not counted: they are memory bound and
well under 1 % of ResNet18's arithmetic. On the ``meta`` device nothing is computed or
allocated, but the mode sends every operator of the step through Python: about 0.25 s per
new shape here, paid after every step of a variable-shape cell (nearly every step is a new
shape), which made the harness cost more wall time than some cells' training.

So the count is taken from the layers' shapes instead: one forward pass of a meta model
with hooks on its ``Conv2d`` and ``Linear`` layers records each layer's output shape, and a
layer's forward FLOPs follow from it; its backward is twice that (input and weight
gradients), except for a first layer whose input is the image (no input gradient). About
3x faster. It holds only for a model whose counted work is all in those layers, so for each
(arch, classes) it is checked once against ``FlopCounterMode`` on a reference shape, and an
architecture where the two differ (attention, functional matmuls) is counted by the mode.
The check's verdict is kept on the node per (arch, classes, torch, torchvision, this source);
counts are cached in the process per (arch, classes, batch shape).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..fsutil import atomic_write_text, private_dir

REFERENCE_SHAPE = (2, 3, 64, 80)   # the one-off check; not square, so H and W are not confused


def _meta_model(arch: str, num_classes: int):
    import torch
    import torchvision

    with torch.device("meta"):
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    model.train()
    return model


def _counted_by_mode(arch: str, num_classes: int, batch_shape: tuple[int, int, int, int]) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = _meta_model(arch, num_classes)
    n, c, h, w = batch_shape
    x = torch.empty(n, c, h, w, device="meta")
    target = torch.zeros(n, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), target).backward()
    return int(counter.get_total_flops())


def _layer_counter(arch: str, num_classes: int) -> Callable[[tuple[int, int, int, int]], int]:
    """A function of the batch shape: forward + backward FLOPs of the Conv2d / Linear layers,
    from the output shapes one no-grad meta forward records."""
    import torch

    model = _meta_model(arch, num_classes)
    # Normalisation layers keep the shape and are not counted, but on meta tensors a training
    # BatchNorm runs its Python decomposition: 0.27 of the 0.29 s a new shape took (cProfile). Out they go.
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, torch.nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, torch.nn.Identity())
    seen: list[int] = []

    def record(layer, inputs, out) -> None:
        if isinstance(layer, torch.nn.Conv2d):
            k = (layer.in_channels // layer.groups) * layer.kernel_size[0] * layer.kernel_size[1]
            seen.append(2 * out.numel() * k)
        else:   # Linear: 2 × rows × in × out
            seen.append(2 * (inputs[0].numel() // layer.in_features) * layer.in_features * layer.out_features)

    for layer in model.modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
            layer.register_forward_hook(record)

    def count(batch_shape: tuple[int, int, int, int]) -> int:
        seen.clear()
        with torch.no_grad():
            model(torch.empty(*batch_shape, device="meta"))
        # forward once; backward: weight gradient always, input gradient but for the image
        return sum(f * (2 if i == 0 else 3) for i, f in enumerate(seen))
    return count


def _verdict_file(arch: str, num_classes: int) -> Path | None:
    """Where the check's verdict for (arch, classes) is kept on this node: a per-user private
    folder, keyed by torch, torchvision and this module's source (None if not ours alone).
    The check costs 1.2 s, and every cell is a fresh process."""
    import torch
    import torchvision

    d = private_dir(tempfile.gettempdir(), "hrvs-ray-flops")
    if d is None:
        return None
    key = (torch.__version__, torchvision.__version__, arch, num_classes, REFERENCE_SHAPE,
           hashlib.sha256(Path(__file__).read_bytes()).hexdigest())
    return d / (hashlib.sha256(repr(key).encode()).hexdigest()[:32] + ".txt")


def _layers_count_right(arch: str, num_classes: int, by_layers: Callable) -> bool:
    """The check: the layer count equals ``FlopCounterMode``'s on the reference shape."""
    path = _verdict_file(arch, num_classes)
    with contextlib.suppress(OSError):
        if path is not None and (kept := path.read_text().strip()) in ("layers", "mode"):
            return kept == "layers"
    try:
        same = by_layers(REFERENCE_SHAPE) == _counted_by_mode(arch, num_classes, REFERENCE_SHAPE)
    except (RuntimeError, ValueError, AssertionError):   # a model that takes fixed sizes only (ViT)
        same = False
    if path is not None:
        with contextlib.suppress(OSError):
            atomic_write_text(path, "layers" if same else "mode")   # cells of a node may race here
    return same


@functools.lru_cache(maxsize=64)
def _counter(arch: str, num_classes: int) -> Callable[[tuple[int, int, int, int]], int]:
    by_layers = _layer_counter(arch, num_classes)
    if _layers_count_right(arch, num_classes, by_layers):
        return by_layers
    return functools.partial(_counted_by_mode, arch, num_classes)


@functools.lru_cache(maxsize=4096)
def step_flops(arch: str, num_classes: int, batch_shape: tuple[int, int, int, int]) -> int:
    """Forward + backward FLOPs of torchvision ``arch`` (e.g. ``resnet18``, whose global pooling is
    already adaptive) with ``num_classes`` outputs on a batch of shape (N, 3, H, W)."""
    return _counter(arch, num_classes)(tuple(int(v) for v in batch_shape))


def forward_flops(arch: str, num_classes: int, batch_shape: tuple[int, int, int, int]) -> int:
    """Forward-only FLOPs (for checks and reports)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = _meta_model(arch, num_classes)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(*batch_shape, device="meta"))
    return int(counter.get_total_flops())

"""FLOPs of one training step (forward + backward), counted on meta tensors.

``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs of convolutions, matmuls and
attention from their shapes (2 FLOPs per multiply-add) for forward and backward. On the
``meta`` device nothing is computed or allocated, so an HR&VS batch costs milliseconds to
count. BatchNorm, ReLU, pooling and the optimizer update are not counted: they are memory
bound and well under 1% of ResNet18's arithmetic. Cached per (arch, classes, batch shape):
variable-shape batches repeat few distinct shapes per sweep.
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=4096)
def step_flops(arch: str, num_classes: int, batch_shape: tuple[int, int, int, int]) -> int:
    """Forward + backward FLOPs of torchvision ``arch`` (e.g. ``resnet18``, whose global pooling is
    already adaptive) with ``num_classes`` outputs on a batch of shape (N, 3, H, W)."""
    import torch
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    n, c, h, w = (int(v) for v in batch_shape)
    with torch.device("meta"):
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
        x = torch.empty(n, c, h, w)
        target = torch.zeros(n, dtype=torch.long)
    model.train()
    with FlopCounterMode(display=False) as counter:
        loss = torch.nn.functional.cross_entropy(model(x), target)
        loss.backward()
    return int(counter.get_total_flops())


def forward_flops(arch: str, num_classes: int, batch_shape: tuple[int, int, int, int]) -> int:
    """Forward-only FLOPs (for checks and reports)."""
    import torch
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
        x = torch.empty(*batch_shape)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())

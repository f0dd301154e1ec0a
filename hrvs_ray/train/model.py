"""ResNet18 with adaptive average pooling before the classifier, so any input shape works
(torchvision's ResNet already ends in AdaptiveAvgPool2d((1, 1)); we assert it rather than
trust it), plus the Adam optimiser of the paper."""
from __future__ import annotations

import torch
import torchvision

from ..config import ModelSpec, OptimizerSpec


def build_model(spec: ModelSpec, seed: int) -> torch.nn.Module:
    """A freshly initialised model; the same seed gives bitwise the same weights."""
    if spec.arch != "resnet18":
        raise ValueError(f"unsupported arch {spec.arch!r}")
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None, num_classes=spec.num_classes)
    if not isinstance(model.avgpool, torch.nn.AdaptiveAvgPool2d):
        raise RuntimeError("torchvision resnet18 lost its adaptive pooling; variable shapes would break")
    if spec.memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    return model.to(spec.device)


def build_optimizer(spec: OptimizerSpec, model: torch.nn.Module) -> torch.optim.Optimizer:
    # foreach=False keeps the update a plain per-parameter loop: same result whatever the
    # thread count's effect on fused kernels.
    return torch.optim.Adam(model.parameters(), lr=spec.lr, betas=spec.betas,
                            weight_decay=spec.weight_decay, foreach=False)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, precision: str) -> torch.Tensor:
    """Forward + backward + optimiser step; the timed unit of the benchmark."""
    optimizer.zero_grad(set_to_none=True)
    if precision == "bfloat16":
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            out = model(x)
        loss = torch.nn.functional.cross_entropy(out.float(), y)
    else:
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.detach()

"""ResNet18 with adaptive average pooling before the classifier, so any input shape works
(torchvision's ResNet already ends in AdaptiveAvgPool2d((1, 1)); we assert it rather than
trust it), plus the Adam optimiser of the paper."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.utils.checkpoint
import torchvision

from ..config import NetworkSpec, OptimizerSpec


class CheckpointedStage(torch.nn.Module):
    """One ResNet stage whose activations are recomputed in backward instead of kept:
    non-reentrant checkpointing (the PyTorch-recommended variant; it works with autocast
    and with inputs that do not require grad)."""

    def __init__(self, stage: torch.nn.Module) -> None:
        super().__init__()
        self.stage = stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.stage(x)
        return torch.utils.checkpoint.checkpoint(self.stage, x, use_reentrant=False)


def build_model(spec: NetworkSpec, seed: int, checkpointing: str = "none",
                memory_format: str = "contiguous") -> torch.nn.Module:
    """A freshly initialised model; the same seed gives bitwise the same weights, whatever
    the checkpointing (wrapping happens after initialisation)."""
    if spec.arch != "resnet18":
        raise ValueError(f"unsupported arch {spec.arch!r}")
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None, num_classes=spec.num_classes)
    if not isinstance(model.avgpool, torch.nn.AdaptiveAvgPool2d):
        raise RuntimeError("torchvision resnet18 lost its adaptive pooling; variable shapes would break")
    if checkpointing == "stages":
        for name in ("layer1", "layer2", "layer3", "layer4"):
            setattr(model, name, CheckpointedStage(getattr(model, name)))
    elif checkpointing != "none":
        raise ValueError(f"unsupported checkpointing {checkpointing!r}")
    if memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    return model.to(spec.device)


def build_optimizer(spec: OptimizerSpec, model: torch.nn.Module) -> torch.optim.Optimizer:
    # foreach=False keeps the update a plain per-parameter loop: same result whatever the
    # thread count's effect on fused kernels.
    return torch.optim.Adam(model.parameters(), lr=spec.lr, betas=spec.betas,
                            weight_decay=spec.weight_decay, foreach=False)


def _loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str) -> torch.Tensor:
    if precision == "bfloat16":
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            out = model(x)
        return torch.nn.functional.cross_entropy(out.float(), y)   # the loss in float32
    return torch.nn.functional.cross_entropy(model(x), y)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               passes: Sequence[tuple[torch.Tensor, torch.Tensor]], precision: str,
               scale: float = 1.0, no_sync: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
               marks: list[float] | None = None) -> torch.Tensor:
    """Forward + backward of every pass, then one optimiser step: the timed unit.

    One pass is the paper's step. Several passes (gradient accumulation) each weigh their
    mean loss by their share of the batch, so the summed gradients are those of the mean
    loss over the whole batch; with one pass the weight is exactly 1 and the step is
    bitwise the single-pass step. Returns the batch's mean loss (before ``scale``).

    A data-parallel rank (``train.data_parallel``) passes ``scale`` (its share of the global
    batch times the rank count: DDP averages over ranks), ``no_sync`` (DDP's: only the last
    pass all-reduces) and ``marks``, which gets the time backward returned, before the
    optimiser step. A single-rank cell passes none of them and runs exactly as before.
    """
    optimizer.zero_grad(set_to_none=True)
    n = sum(int(y.shape[0]) for _, y in passes)
    total = None
    for k, (x, y) in enumerate(passes):
        quiet = no_sync is not None and k < len(passes) - 1
        with no_sync() if quiet else contextlib.nullcontext():
            loss = _loss(model, x, y, precision)
            if len(passes) > 1:
                loss = loss * (y.shape[0] / n)
            (loss if scale == 1.0 else loss * scale).backward()
        total = loss.detach() if total is None else total + loss.detach()
    if marks is not None:
        marks.append(time.perf_counter())
    optimizer.step()
    return total

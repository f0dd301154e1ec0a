"""The remedies axes (beyond the paper): what a user can change to pay less for padding.

Pure: no torch, no ray. A sweep lists one or more values per axis; every cell runs one
``Remedy`` (one value per axis). The paper's setup is ``pad`` + ``float32`` +
``contiguous`` + ``none``; it is the default, and cells that run it keep the ids and
fingerprints they had before the axes existed.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

BATCHING = ("pad", "bucket", "accumulate")
PRECISION = ("float32", "bfloat16")
MEMORY_FORMAT = ("contiguous", "channels_last")
CHECKPOINTING = ("none", "stages")
KERNEL_CACHE = ("default", "off")   # off: oneDNN primitive cache 0, ideep LRU cache 1 (see train.kernel_cache)
AXES = ("batching", "precision", "memory_format", "checkpointing")   # product order, outermost first
# Axes added later: they enter a cell's id and label only when not at their default, so
# every cell that does not use them keeps the id and label it had before they existed.
LATER_AXES = ("kernel_cache", "shape_round")
NO_ROUND = 0              # shape_round: 0 = passes padded only to their largest image
DEFAULT_WINDOW = 64       # bucket: batches per shape-sorting window
DEFAULT_MICRO_BATCH = 1   # accumulate: images per micro-batch

_SHORT = {"pad": "pad", "bucket": "bucket", "accumulate": "accum", "float32": "fp32", "bfloat16": "bf16",
          "contiguous": "nchw", "channels_last": "nhwc", "none": "", "stages": "ckpt"}


@dataclass(frozen=True)
class Remedy:
    """One value per axis, plus the parameters of the batching policy it uses."""
    batching: str = "pad"
    precision: str = "float32"
    memory_format: str = "contiguous"
    checkpointing: str = "none"
    window: int = DEFAULT_WINDOW            # used by bucket only
    micro_batch: int = DEFAULT_MICRO_BATCH  # used by accumulate only
    kernel_cache: str = "default"           # default | off (PyTorch's CPU kernel caches)
    shape_round: int = NO_ROUND             # pad each pass up to a multiple of this many px (0: none)

    @property
    def axes(self) -> tuple:
        """The values that tell setups apart (the later axes only where not default)."""
        return (self.batching, self.precision, self.memory_format, self.checkpointing) + self._later()

    def _later(self) -> tuple:
        return tuple(v for v, d in ((self.kernel_cache, "default"), (self.shape_round, NO_ROUND)) if v != d)

    @property
    def is_paper(self) -> bool:
        return self.axes == PAPER.axes

    @property
    def label(self) -> str:
        """Short human name, e.g. 'bucket+bf16+nhwc+ckpt' ('pad+fp32+nchw' is the paper's)."""
        parts = [_SHORT[self.batching], _SHORT[self.precision], _SHORT[self.memory_format],
                 _SHORT[self.checkpointing]]
        if self.batching == "bucket" and self.window != DEFAULT_WINDOW:
            parts[0] += f"(w{self.window})"
        if self.batching == "accumulate" and self.micro_batch != DEFAULT_MICRO_BATCH:
            parts[0] += f"(mb{self.micro_batch})"
        if self.shape_round:
            parts[0] += f"(r{self.shape_round})"
        if self.kernel_cache != "default":
            parts.append(f"kc-{self.kernel_cache}")
        return "+".join(p for p in parts if p)

    def id_params(self, base: "Remedy | None" = None) -> dict:
        """What enters a cell id: empty for the sweep's base setup (``base``, default the
        paper's), so ids written before the axes existed stay valid; otherwise every axis
        plus the parameters of the batching policy actually used."""
        if self.axes == (base or PAPER).axes:
            return {}
        d = {a: getattr(self, a) for a in AXES}
        if self.batching == "bucket":
            d["window"] = self.window
        if self.batching == "accumulate":
            d["micro_batch"] = self.micro_batch
        if self.kernel_cache != "default":
            d["kernel_cache"] = self.kernel_cache
        if self.shape_round != NO_ROUND:
            d["shape_round"] = self.shape_round
        return d


PAPER = Remedy()


@dataclass(frozen=True)
class RemediesSpec:
    """The sweep's ``remedies:`` section: values per axis (each a non-empty tuple)."""
    batching: tuple[str, ...] = ("pad",)
    precision: tuple[str, ...] = ("float32",)
    memory_format: tuple[str, ...] = ("contiguous",)
    checkpointing: tuple[str, ...] = ("none",)
    window: int = DEFAULT_WINDOW
    micro_batch: int = DEFAULT_MICRO_BATCH
    kernel_cache: tuple[str, ...] = ("default",)
    shape_round: tuple[int, ...] = (NO_ROUND,)

    def combinations(self) -> list[Remedy]:
        """The cartesian product in a fixed order: batching outermost, then precision,
        memory format, checkpointing, kernel cache, shape rounding (each in the order the
        sweep lists them)."""
        return [Remedy(b, p, m, c, self.window, self.micro_batch, k, r)
                for b, p, m, c, k, r in itertools.product(self.batching, self.precision, self.memory_format,
                                                          self.checkpointing, self.kernel_cache, self.shape_round)]

    @property
    def is_default(self) -> bool:
        combos = self.combinations()
        return len(combos) == 1 and combos[0].is_paper

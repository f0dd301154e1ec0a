"""Planned main memory of one training step, before anything runs. Pure: no torch, no ray.

``peak = base + bytes_per_pixel × total pixels of the step's largest forward/backward pass``.

Built-in constants: the paper's Table 2 gives 28.3 GB for 67.1 MP (LR&FS), 19.8 GB for
46.8 MP (MR&VS) and 25.7 GB for 61.5 MP (HR&VS): 418–423 bytes per pixel for ResNet18,
fp32, contiguous, no checkpointing. We keep 430 B/px to stay on the safe side, plus the
process, weights, gradients and Adam state. The other remedies scale the per-pixel term by
factors measured on a development machine with ``benchmarks/memory_factors.py`` (each
setting in a fresh process on the same batch; see FACTOR).

A results folder can replace the constants with a fit of its own measured steps
(``fit_line`` per node and setting, gathered in a ``Calibration`` and stored in the folder
as ``memory_fit.json``): ``hrvs-ray plan --memory-from RESULTS`` and the driver's
pre-flight skip use it when present.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ..remedies import PAPER, Remedy

BASE_BYTES = 1_200_000_000
BYTES_PER_PIXEL = 430
# Per-pixel factor of each setting against fp32 + contiguous + no checkpointing, measured
# by benchmarks/memory_factors.py on a 2-vCPU EPYC VM (8 × 512 × 640 batch, peak RSS above
# the pre-step RSS less weights' gradients and Adam state; fp32/contiguous/none: 547 B/px).
# The settings do not combine multiplicatively (channels-last alone 0.93 and checkpointing
# alone 0.98, together 0.76), so every combination has its own measured factor.
FACTOR = {
    ("float32", "contiguous", "none"): 1.00, ("float32", "contiguous", "stages"): 0.98,
    ("float32", "channels_last", "none"): 0.93, ("float32", "channels_last", "stages"): 0.76,
    ("bfloat16", "contiguous", "none"): 0.64, ("bfloat16", "contiguous", "stages"): 0.55,
    ("bfloat16", "channels_last", "none"): 0.63, ("bfloat16", "channels_last", "stages"): 0.49,
}


def bytes_per_pixel(remedy: Remedy = PAPER) -> float:
    """The built-in per-pixel cost of one step under ``remedy``."""
    return BYTES_PER_PIXEL * FACTOR[(remedy.precision, remedy.memory_format, remedy.checkpointing)]


def estimate_step_bytes(pass_px: int, remedy: Remedy = PAPER) -> int:
    """Planned peak main memory of a step whose largest forward/backward pass holds
    ``pass_px`` pixels (the whole padded batch, except under ``accumulate``)."""
    return int(BASE_BYTES + bytes_per_pixel(remedy) * int(pass_px))


@dataclass(frozen=True)
class Fit:
    """``peak = base_bytes + bytes_per_pixel × pass pixels``, fitted on measured steps."""
    base_bytes: float
    bytes_per_pixel: float
    steps: int              # how many steps the fit used
    max_rel_error: float    # in-sample: worst |predicted - measured| / measured
    slope_from: str         # "fit" | "built-in" (pixel range too narrow to fit a slope)

    def predict(self, pass_px: int) -> int:
        return int(self.base_bytes + self.bytes_per_pixel * pass_px)


MIN_PX_SPREAD = 1.5   # max/min pass pixels below which a fitted slope is noise, not a trend


def fit_line(pass_px: np.ndarray, peak: np.ndarray, remedy: Remedy = PAPER) -> Fit:
    """Least squares of peak on pass pixels. Where the pixels barely vary (one batch shape)
    or the slope comes out negative, the slope is the built-in one and only the base is fitted."""
    x = np.asarray(pass_px, dtype=np.float64)
    y = np.asarray(peak, dtype=np.float64)
    if len(x) >= 3 and x.max() >= MIN_PX_SPREAD * x.min():
        slope, base = np.polyfit(x, y, 1)
        source = "fit"
    else:
        slope = -1.0
    if slope <= 0:
        slope, source = bytes_per_pixel(remedy), "built-in"
        base = float(np.median(y - slope * x))
    err = float(np.max(np.abs(base + slope * x - y) / y)) if len(y) else float("nan")
    return Fit(float(base), float(slope), int(len(x)), err, source)


@dataclass(frozen=True)
class Calibration:
    """Fits per (node, precision, memory format, checkpointing), from one results folder."""
    fits: dict[tuple[str, str, str, str], Fit]

    def predict(self, pass_px: int, remedy: Remedy, node: str | None = None) -> int | None:
        """The largest prediction over the matching fits (any node unless ``node``), or None."""
        got = [f.predict(pass_px) for (n, p, m, c), f in self.fits.items()
               if (node is None or n == node) and (p, m, c) == (remedy.precision, remedy.memory_format,
                                                              remedy.checkpointing)]
        return max(got) if got else None

    def estimator(self, node: str | None = None) -> "Callable[[int, Remedy], int]":
        """``(pass_px, remedy) -> bytes``: calibrated where a fit exists (of ``node``, or the
        worst of all nodes), built-in elsewhere."""
        return lambda px, r: self.predict(px, r, node) or estimate_step_bytes(px, r)

    def to_json(self) -> str:
        return json.dumps([{"node": k[0], "precision": k[1], "memory_format": k[2], "checkpointing": k[3],
                            **asdict(f)} for k, f in sorted(self.fits.items())], indent=2)

    @staticmethod
    def from_json(text: str) -> "Calibration":
        fits = {}
        for d in json.loads(text):
            key = (d.pop("node"), d.pop("precision"), d.pop("memory_format"), d.pop("checkpointing"))
            fits[key] = Fit(**d)
        return Calibration(fits)

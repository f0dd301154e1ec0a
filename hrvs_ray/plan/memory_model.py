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
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import UserError
from ..remedy_axes import PAPER, Remedy

# The base is what a step holds at zero pixels, as a fresh process reads it (probes.memory): the
# node's libraries (file-backed, 0.43 GB) + the anonymous memory of the interpreter, torch, the
# model, gradients and Adam state. Fitted (schema 4, library + anonymous peaks) on quick.yaml's
# 39 unmasked fp32 steps on a 2-vCPU EPYC VM, torch 2.14: 1.13 GB (in-sample worst error 8 %);
# rounded up. A fit of forked cells' own RSS (before schema 4) gave ~0.34 GB less.
BASE_BYTES = 1_150_000_000
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


MEMORY_BASES = {
    "library+anonymous": "peaks = the node's library baseline + each step's anonymous peak: what a fresh process "
                         "reads, forked or not",
    "unknown": "peaks recorded before schema 4 (cells' process: unknown): each is the process's own RSS; a cell "
               "forked from a zygote read ~0.3 GB of library pages below a fresh process, so a prediction from "
               "these can be that much low (rerun the sweep to refit on schema-4 steps)",
    "mixed": "some peaks are library + anonymous memory, some the process's own RSS (recorded before schema 4): "
             "a prediction can be up to ~0.3 GB low",
}


def memory_basis(library_known: np.ndarray) -> str:
    """What a fit of steps is a fit of, from which of them carry the node's library baseline."""
    known = np.asarray(library_known, dtype=bool)
    return "library+anonymous" if known.all() and known.size else "unknown" if not known.any() else "mixed"


class FitError(UserError, ValueError):
    """A calibrated fit that predicts no memory at all: an error in the fit, not a missing one."""


def _setting(remedy: Remedy) -> tuple[str, str, str, str]:
    return remedy.precision, remedy.memory_format, remedy.checkpointing, remedy.kernel_cache


@dataclass(frozen=True)
class Calibration:
    """Fits per (node, precision, memory format, checkpointing, kernel cache), from one results
    folder, and each node's identity (``memory_identity``; empty in files written before
    identities were kept). The kernel-cache setting is part of the key: a fit of steps with the
    caches on carries their cached kernels and must not plan a cell without them (or back)."""
    fits: dict[tuple[str, str, str, str, str], Fit]
    nodes: dict[str, dict] = field(default_factory=dict)
    # what the fitted peaks are (MEMORY_BASES): schema-4 steps are library + anonymous memory, the
    # same forked or fresh; older ones the process's own RSS, of a process started either way
    memory_basis: str = "unknown"

    def predict(self, pass_px: int, remedy: Remedy, node: str | None = None) -> int | None:
        """The largest prediction over the matching fits (any node unless ``node``), or None.
        Raises FitError when a fit predicts <= 0 bytes."""
        got = []
        for (n, p, m, c, k), f in sorted(self.fits.items()):
            if (node is None or n == node) and (p, m, c, k) == _setting(remedy):
                v = f.predict(pass_px)
                if v <= 0:
                    raise FitError(f"the memory fit of node {n} for {p}/{m}/{c}/{k} predicts {v / 1e9:.2f} GB for "
                                   f"{pass_px / 1e6:.3g} MP ({f.base_bytes / 1e9:.2f} GB + {f.bytes_per_pixel:.0f} "
                                   f"B/px from {f.steps} steps): an error in the fit, not a missing fit")
                got.append(v)
        return max(got) if got else None

    def matching(self, here: dict) -> tuple[Calibration, dict[str, list[str]]]:
        """The fits of nodes whose identity matches ``here``, and why each other node does not."""
        from .memory_identity import mismatch
        why = {n: mismatch(self.nodes.get(n), here) for n in sorted({k[0] for k in self.fits})}
        keep = {k: f for k, f in self.fits.items() if not why[k[0]]}
        return Calibration(keep, {n: i for n, i in self.nodes.items() if not why.get(n)}, self.memory_basis), \
            {n: w for n, w in why.items() if w}

    def estimator(self, node: str | None = None) -> Estimator:
        """``(pass_px, remedy) -> bytes``: calibrated where a fit exists (of ``node``, or the
        worst of all nodes), built-in elsewhere (the settings it fell back on are recorded)."""
        return Estimator(self, node)

    def to_json(self) -> str:
        return json.dumps({"format": 2, "nodes": self.nodes, "memory_basis": self.memory_basis,
                           "fits": [{"node": k[0], "precision": k[1], "memory_format": k[2], "checkpointing": k[3],
                                     "kernel_cache": k[4], **asdict(f)} for k, f in sorted(self.fits.items())]},
                          indent=2, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Calibration:
        raw = json.loads(text)
        rows, nodes = (raw, {}) if isinstance(raw, list) else (raw["fits"], raw.get("nodes") or {})
        basis = "unknown" if isinstance(raw, list) else raw.get("memory_basis", "unknown")   # older fits: unknown
        fits = {}
        for d in rows:
            # fits stored before the kernel-cache axis were all of torch's default caches
            key = (d.pop("node"), d.pop("precision"), d.pop("memory_format"), d.pop("checkpointing"),
                   d.pop("kernel_cache", "default"))
            fits[key] = Fit(**d)
        return Calibration(fits, nodes, basis)


class Estimator:
    """A calibration as ``(pass_px, remedy) -> bytes``; ``fallbacks`` lists the settings that
    had no fit and were planned with the built-in model."""

    def __init__(self, cal: Calibration, node: str | None = None) -> None:
        self.cal, self.node = cal, node
        self.fallbacks: set[tuple[str, str, str]] = set()

    def __call__(self, pass_px: int, remedy: Remedy) -> int:
        got = self.cal.predict(pass_px, remedy, self.node)
        if got is None:
            self.fallbacks.add(_setting(remedy))
            return estimate_step_bytes(pass_px, remedy)
        return got

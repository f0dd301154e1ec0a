"""Calibrate the memory model on a results folder: fit, store, load.

A sweep's own timed steps say what a step costs on its nodes better than the paper's
constants: ``calibrate`` fits ``peak = base + bytes_per_pixel × pass pixels`` per node and
per precision × memory format × checkpointing; the driver stores the fit as
``memory_fit.json`` in the results folder when a sweep ends, and uses it (when the folder
has one) for its pre-flight memory skip; ``hrvs-ray plan --memory-from DIR`` plans with it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..fsutil import atomic_write_text
from .memory_model import Calibration, fit_line
from ..metrics import timed
from ..remedies import Remedy
from ..store import ResultsError, read_results

FIT_FILE = "memory_fit.json"
FIT_KEYS = ["node", "precision", "memory_format", "checkpointing"]


def calibrate(steps: pd.DataFrame) -> Calibration:
    """One fit per (node, precision, memory format, checkpointing) over the timed steps."""
    d = timed(steps).dropna(subset=["peak_rss_bytes", "pass_px"])
    d = d[d["peak_rss_scope"].fillna("step").str.startswith("step")]   # a process-wide peak is not the step's
    fits = {}
    for key, g in d.groupby(FIT_KEYS, sort=True):
        remedy = Remedy.from_row(dict(zip(FIT_KEYS, key)))
        fits[tuple(key)] = fit_line(g["pass_px"].to_numpy(), g["peak_rss_bytes"].to_numpy(), remedy)
    return Calibration(fits)


def write_calibration(results_dir: str | Path) -> Calibration | None:
    """Fit the folder's steps and store the fit beside them; None when no step qualifies."""
    res = read_results(results_dir)
    cal = calibrate(res.steps.to_pandas())
    if not cal.fits:
        return None
    atomic_write_text(Path(results_dir) / FIT_FILE, cal.to_json())
    return cal


def load_calibration(results_dir: str | Path) -> Calibration:
    """The folder's stored fit, or a fit of its steps when none was stored (older folders)."""
    path = Path(results_dir) / FIT_FILE
    if path.is_file():
        try:
            return Calibration.from_json(path.read_text())
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ResultsError(f"{path}: unreadable memory fit ({e}); delete it to refit from the steps") from None
    cal = calibrate(read_results(results_dir).steps.to_pandas())
    if not cal.fits:
        raise ResultsError(f"{results_dir}: no timed step with a per-step peak to calibrate memory on")
    return cal


def stored_calibration(results_dir: str | Path) -> Calibration | None:
    """The stored fit if the folder has a readable one (the driver's optional input)."""
    try:
        return Calibration.from_json((Path(results_dir) / FIT_FILE).read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return None

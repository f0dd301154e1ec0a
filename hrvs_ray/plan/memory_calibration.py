"""Calibrate the memory model on a results folder: fit, store, load.

A sweep's own timed steps say what a step costs on its nodes better than the paper's
constants: ``calibrate`` fits ``peak = base + bytes_per_pixel × pass pixels`` per node and
per precision × memory format × checkpointing × kernel-cache setting (steps with PyTorch's
kernel caches on carry their cached kernels in every peak: never fitted with steps without); the
driver stores the fit as ``memory_fit.json`` in the results folder when a sweep ends, and uses it (when the folder
has one) for its pre-flight memory skip; ``hrvs-ray plan --memory-from DIR`` plans with it.

Which steps are fitted: only those whose peak is the step's own. Without ``release_heap`` the
allocator keeps the heap of an earlier, larger pass, so a smaller step's peak RSS shows the
larger one's heap and flattens the slope; a step counts when its largest pass is the largest
so far in its cell (warm-up steps included), or when it ran with the free heap released.
Which machine: the fit records each node's identity (:mod:`.memory_identity`) and is used only
for a node whose identity matches (:func:`node_estimators`, :func:`plan_estimator`).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..fsutil import atomic_write_text
from ..metrics import timed
from ..remedy_axes import Remedy
from ..store import FIT_FILE, ResultsError, read_results
from .memory_identity import local_identity, node_identity, results_identities
from .memory_model import MEMORY_BASES, Calibration, Estimator, FitError, fit_line, memory_basis

FIT_KEYS = ["node", "precision", "memory_format", "checkpointing", "kernel_cache"]


def unmasked(steps: pd.DataFrame) -> pd.DataFrame:
    """The steps whose peak is not masked by heap kept from an earlier, larger pass: the
    largest pass so far in their cell (ties count), or run with the free heap released."""
    if not {"cell_id", "step"} <= set(steps.columns) or steps.empty:
        return steps
    d = steps.sort_values(["cell_id", "step"])
    px = d["pass_px"].astype("float64")
    before = px.groupby(d["cell_id"]).cummax().groupby(d["cell_id"]).shift(1)
    released = d["peak_rss_scope"].fillna("").str.contains("released")
    return d[released | before.isna() | (px >= before)]


def fit_steps(steps: pd.DataFrame) -> pd.DataFrame:
    """The steps a fit is made of (and an out-of-sample check predicts): timed, unmasked, with a
    per-step peak of the step's own; pass every step of a cell, warm-up included (warm-up passes
    leave heap too). A null kernel-cache setting reads as ``default``."""
    d = timed(unmasked(steps.dropna(subset=["pass_px"]))).dropna(subset=["peak_rss_bytes"])
    d = d.assign(kernel_cache=d["kernel_cache"].fillna("default")) if "kernel_cache" in d else \
        d.assign(kernel_cache="default")
    return d[d["peak_rss_scope"].fillna("step").str.startswith("step")]   # a process-wide peak is not the step's


def calibrate(steps: pd.DataFrame) -> Calibration:
    """One fit per (node, precision, memory format, checkpointing, kernel cache) over ``fit_steps``."""
    d = fit_steps(steps)
    fits = {}
    for key, g in d.groupby(FIT_KEYS, sort=True):
        remedy = Remedy.from_row(dict(zip(FIT_KEYS, key, strict=False)))
        fits[tuple(key)] = fit_line(g["pass_px"].to_numpy(), g["peak_rss_bytes"].to_numpy(), remedy)
    known = d["library_bytes"].notna().to_numpy() if "library_bytes" in d else [False] * len(d)
    return Calibration(fits, memory_basis=memory_basis(known))


def write_calibration(results_dir: str | Path) -> Calibration | None:
    """Fit the folder's steps and store the fit beside them; None when no step qualifies."""
    res = read_results(results_dir)
    cal = _with_identities(calibrate(res.steps.to_pandas()), res)
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
    res = read_results(results_dir)
    cal = _with_identities(calibrate(res.steps.to_pandas()), res)
    if not cal.fits:
        raise ResultsError(f"{results_dir}: no timed step with a per-step peak to calibrate memory on")
    return cal


def _with_identities(cal: Calibration, res) -> Calibration:
    ids = results_identities(res.nodes.to_pandas(), res.cells.to_pandas())
    return Calibration(cal.fits, {n: ids[n] for n in sorted({k[0] for k in cal.fits}) if n in ids}, cal.memory_basis)


def _why(reasons: dict[str, list[str]]) -> str:
    return "; ".join(f"node {n} does not match: " + ", ".join(w) for n, w in reasons.items())


def plan_estimator(results_dir: str | Path, here: dict | None = None) -> tuple[Estimator | None, str]:
    """The estimator ``hrvs-ray plan --memory-from`` uses on this machine, and what it says about
    it: the fits of nodes whose identity matches ``here`` (this machine), or None (built-in model)
    with every node that did not match and why. Raises ResultsError for an unreadable fit."""
    cal = load_calibration(results_dir)
    mine, reasons = cal.matching(here or local_identity())
    if not mine.fits:
        return None, (f"built-in model: the fit in {results_dir} is for other machines ({_why(reasons)})")
    fits = ", ".join(f"{n} {p}/{m}/{c}{'' if k == 'default' else f'/kernel cache {k}'}: "
                     f"{f.base_bytes / 1e9:.2f} GB + {f.bytes_per_pixel:.0f} B/px ({f.slope_from})"
                     for (n, p, m, c, k), f in sorted(mine.fits.items()))
    skipped = f"; not used: {_why(reasons)}" if reasons else ""
    basis = "" if cal.memory_basis == "library+anonymous" else f"; {MEMORY_BASES[cal.memory_basis]}"
    return mine.estimator(), f"calibrated on {results_dir}: {fits}{skipped}{basis}"


def fallback_note(est: Estimator) -> str | None:
    """Which settings had no matching fit and were planned with the built-in model."""
    if not est.fallbacks:
        return None
    return ("built-in model for " + ", ".join("/".join(k) for k in sorted(est.fallbacks))
            + ": no fit of a matching node for that setting")


def node_estimators(cal: Calibration, nodes: dict[str, dict]) -> tuple[dict[str, Estimator], list[str]]:
    """Per live node (name -> its node description): an estimator over the fits of recorded
    nodes whose identity matches it (nodes without one get none: the built-in model), and a
    note for each live node planned without the fit, saying why."""
    out, notes = {}, []
    for name, info in sorted(nodes.items()):
        mine, reasons = cal.matching(node_identity(info))
        if mine.fits:
            out[name] = mine.estimator()
        else:
            notes.append(f"memory pre-flight on node {name}: built-in model, the stored fit is for other "
                         f"machines ({_why(reasons)})")
    return out, notes


__all__ = ["FIT_FILE", "FitError", "calibrate", "fallback_note", "fit_steps", "load_calibration", "node_estimators",
           "plan_estimator", "stored_calibration", "unmasked", "write_calibration"]


def stored_calibration(results_dir: str | Path) -> Calibration | None:
    """The stored fit if the folder has a readable one (the driver's optional input)."""
    try:
        return Calibration.from_json((Path(results_dir) / FIT_FILE).read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return None

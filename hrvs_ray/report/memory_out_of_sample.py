"""The memory fit out of sample: each results folder predicted by a fit of the other folders.

The memory table's calibrated column is in-sample: the fit is compared with the very steps it
was made of, so it cannot show a slope that holds for these batch shapes only (before issue 19,
heap kept from larger steps flattened it while the in-sample error read 1.6 %). With two or more
folders, each folder B is predicted as ``hrvs-ray plan --memory-from`` would plan it from the
others: a fit of the other folders' steps, used only for B's nodes whose identity (CPU model,
logical CPUs, torch release, memory within 5 %) matches a node the fit came from — node names
differ between runs, so they are matched by identity, never by name — and only for the same
precision × memory format × checkpointing × kernel-cache setting. B's steps predicted are
those a fit is made of (``fit_steps``). Pure: pandas and numpy, no torch, no ray.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..plan.memory_calibration import calibrate, fit_steps
from ..plan.memory_identity import results_identities
from ..plan.memory_model import Calibration, FitError
from ..remedy_axes import Remedy
from .fmt import Cell, Table
from .load import Merged, order_input_sets

SETTING = ["precision", "memory_format", "checkpointing", "kernel_cache"]
TITLE = "Memory model out of sample: each folder predicted by a fit of the other folders"
COLUMNS = ["predicted folder", "fitted on", "input set", "steps", "median error", "worst error",
           "fit's in-sample worst", "fit errors"]
SINGLE = "in-sample only: give a second results folder to see out-of-sample error"
NOTE = ("Each folder's timed steps whose peak is their own (the steps a fit is made of), predicted by the "
        "memory fit of the other folder(s) only, as `hrvs-ray plan --memory-from` plans: for a node whose "
        "identity (CPU model, logical CPUs, torch release, memory within 5 %) matches a node the fit came "
        "from, with the fit of the same precision, memory format, checkpointing and kernel-cache setting "
        "(the largest prediction where several matching nodes have one). Error = |predicted − measured| / "
        "measured; the fit's in-sample worst is the worst error of the fits used on their own steps. "
        "A prediction ≤ 0 bytes is an error in the fit and is counted under fit errors.")


def _labels(m: Merged) -> dict[str, str]:
    """Each folder's name as shown: its last part, or the whole path where two share it."""
    names = [Path(s.path).name for s in m.sources]
    return {str(s.path): n if names.count(n) == 1 else str(s.path) for s, n in zip(m.sources, names, strict=True)}


def _node_frames(m: Merged, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    nodes = m.source_nodes if m.source_nodes is not None else m.nodes.assign(source=source)
    return nodes[nodes["source"] == source], m.cells[m.cells["source"] == source]


def _training(m: Merged, others: list[str], labels: dict[str, str]) -> tuple[Calibration, dict[str, str]]:
    """The fit of the ``others`` folders, each node keyed ``node (folder)`` (two runs may give
    different machines the same node name, and their steps must not be pooled in one fit), and
    each key's folder."""
    steps, ids, origin = [], {}, {}
    for src in others:
        key = {}
        nodes, cells = _node_frames(m, src)
        for n in set(m.steps.loc[m.steps["source"] == src, "node"]) | set(nodes["node"]) | set(cells["node"]):
            key[n] = f"{n} ({labels[src]})"
            origin[key[n]] = labels[src]
        steps.append(m.steps[m.steps["source"] == src].assign(node=lambda d, k=key: d["node"].map(k)))
        ids.update(results_identities(nodes.assign(node=nodes["node"].map(key)),
                                      cells.assign(node=cells["node"].map(key))))
    fits = calibrate(pd.concat(steps, ignore_index=True)).fits
    return Calibration(fits, {n: ids[n] for n in sorted({k[0] for k in fits}) if n in ids}), origin


def _predict(cal: Calibration, px: np.ndarray, remedy: Remedy) -> tuple[np.ndarray, np.ndarray]:
    """Each step's prediction as ``plan`` makes it (``Calibration.predict``: the largest of the
    matching fits), and whether a fit predicted <= 0 bytes there (an error in the fit)."""
    pred, bad = np.full(len(px), np.nan), np.zeros(len(px), dtype=bool)
    for i, p in enumerate(px):
        try:
            pred[i] = cal.predict(int(p), remedy)
        except FitError:
            bad[i] = True
    return pred, bad


def predict_folder(m: Merged, source: str, labels: dict[str, str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Folder ``source``'s fitted steps predicted by a fit of every other folder: one row per
    step predicted (input_set, node, pass_px, measured, predicted, error, fit_error, in_sample,
    fitted_on: the folders whose fits predicted it), and a note for each node or setting that
    could not be predicted, saying why."""
    labels = labels or _labels(m)
    others = [str(s.path) for s in m.sources if str(s.path) != source]
    cal, origin = _training(m, others, labels)
    test = fit_steps(m.steps[m.steps["source"] == source])
    ids = results_identities(*_node_frames(m, source))
    parts, notes, here = [], [], labels[source]
    if test.empty:
        notes.append(f"{here}: nothing to predict: no timed step whose peak is its own (the steps a fit is made of).")
    for node, g in test.groupby("node", sort=True):
        mine, why = cal.matching(ids.get(str(node), {}))
        if not mine.fits:
            reasons = "; ".join(f"node {n} does not match: " + ", ".join(w) for n, w in why.items()) or \
                "the other folder(s) have no fitted step"
            notes.append(f"{here}: node {node} not predicted ({len(g)} steps): no node the fit came from has "
                         f"its identity ({reasons}).")
            continue
        for setting, s in g.groupby(SETTING, sort=True):
            used = sorted(k for k in mine.fits if k[1:] == tuple(setting))
            fits = [mine.fits[k] for k in used]
            if not fits:
                notes.append(f"{here}: node {node}, {'/'.join(setting)} not predicted ({len(s)} steps): no "
                             f"matching node of the other folder(s) has a fit for that setting.")
                continue
            px = s["pass_px"].to_numpy(dtype="float64")
            pred, bad = _predict(mine, px, Remedy.from_row(dict(zip(SETTING, setting, strict=True))))
            measured = s["peak_rss_bytes"].to_numpy(dtype="float64")
            parts.append(pd.DataFrame({
                "input_set": s["input_set"].to_numpy(), "node": str(node), "pass_px": px, "measured": measured,
                "predicted": pred, "error": np.where(bad, np.nan, np.abs(pred - measured) / measured),
                "fit_error": bad, "in_sample": max(f.max_rel_error for f in fits),
                "fitted_on": ", ".join(sorted({origin[k[0]] for k in used}))}))
    cols = ["input_set", "node", "pass_px", "measured", "predicted", "error", "fit_error", "in_sample", "fitted_on"]
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)), notes


def _row(folder: str, iset: str, d: pd.DataFrame) -> list:
    ok = d.loc[~d["fit_error"].astype(bool), "error"]
    n_bad = int(d["fit_error"].astype(bool).sum())
    stats = (f"{ok.median():.1%}", f"{ok.max():.1%}") if len(ok) else \
        (Cell("fit error: predicts ≤ 0", "flag"), Cell("—", "na"))
    fitted_on = ", ".join(sorted({o for f in d["fitted_on"] for o in f.split(", ")}))
    return [folder, fitted_on, iset, str(len(d)), *stats, f"{d['in_sample'].max():.1%}",
            Cell(f"{n_bad}: predicts ≤ 0 bytes", "flag") if n_bad else "0"]


def out_of_sample(m: Merged) -> Table:
    """Per folder (and per input set, where it has several) the out-of-sample error of the
    other folders' fit; with one folder, an empty table that says it is in-sample only."""
    if len(m.sources) < 2:
        return Table(TITLE, COLUMNS, [], note=NOTE, empty=SINGLE)
    labels = _labels(m)
    rows, notes = [], []
    for src in m.sources:
        source = str(src.path)
        d, why = predict_folder(m, source, labels)
        notes += why
        if d.empty:
            rows.append([labels[source], "—", "—", "0", Cell("not predicted: see the note", "na"),
                         Cell("—", "na"), Cell("—", "na"), "0"])
            continue
        sets = order_input_sets(set(d["input_set"]))
        rows += [_row(labels[source], s, d[d["input_set"] == s]) for s in sets]
        if len(sets) > 1:
            rows.append(_row(labels[source], "all", d))
    return Table(TITLE, COLUMNS, rows, note=" ".join([NOTE, *notes]), empty=SINGLE)

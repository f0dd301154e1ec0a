"""The memory model against what was measured: planned vs measured peak per input set.

The driver skips cells the memory model says cannot fit, so the report shows how good that
model is on these results: the built-in one (the paper's 430 B/px × measured remedy
factors) and the one calibrated on these very steps (per node and setting).
"""
from __future__ import annotations

from ..metrics import timed
from ..plan.memory_calibration import calibrate
from ..plan.memory_model import BASE_BYTES, FitError, estimate_step_bytes
from ..remedy_axes import Remedy
from .fmt import Cell, Table, sig
from .load import Merged, order_input_sets

GB = 1e9
NOTE = ("Peak RSS of the largest timed step against the memory model's prediction for that step's "
        "largest forward/backward pass. Built-in: the paper's 430 B/px times the measured factor of "
        f"the setting, plus {BASE_BYTES / 1e9:.2f} GB. Calibrated: base + B/px fitted on these results' own "
        "timed steps whose peak is their own (the largest pass so far in their cell, or run with the heap released) "
        "per node and setting, kernel-cache setting included (what `hrvs-ray plan --memory-from` and a resumed "
        "sweep use). "
        "Error = (predicted − measured) / measured: positive means the model plans with room to spare.")


def predicted_vs_measured(m: Merged) -> Table:
    t = timed(m.steps).dropna(subset=["peak_rss_bytes", "pass_px"])
    cal = calibrate(m.steps)      # every step: warm-up passes leave heap that masks later peaks
    rows = []
    keys = ["cluster", "input_set", "remedy"]
    for (cluster, iset, label), g in sorted(t.groupby(keys), key=lambda kv: (kv[0][0], order_input_sets(
            set(t["input_set"])).index(kv[0][1]), kv[0][2])):
        top = g.loc[g["peak_rss_bytes"].idxmax()]
        measured = float(top["peak_rss_bytes"])
        remedy = Remedy.from_row(top)
        builtin = estimate_step_bytes(int(top["pass_px"]), remedy)
        try:
            fitted = cal.predict(int(top["pass_px"]), remedy, node=top["node"])
        except FitError:        # a fit predicting <= 0 bytes is wrong, and shown so, not as missing
            fitted = "error"
        rows.append([cluster, iset, label, str(len(g)), sig(measured / GB), sig(builtin / GB),
                     f"{(builtin - measured) / measured:+.0%}",
                     *(("—", "—") if fitted is None else
                       (Cell("fit error: predicts ≤ 0", "flag"), Cell("—", "na")) if fitted == "error" else
                       (sig(fitted / GB), f"{(fitted - measured) / measured:+.0%}"))])
    errs = [abs(float(r[8].rstrip("%")) / 100) for r in rows if isinstance(r[8], str) and r[8] != "—"]
    note = NOTE + (f" Worst calibrated error here: {max(errs):.0%}." if errs else "")
    return Table("Memory model: planned vs measured peak per step",
                 ["cluster", "input set", "remedy", "timed steps", "measured peak GB", "built-in GB",
                  "built-in error", "calibrated GB", "calibrated error"], rows, note=note,
                 empty="no timed step with a per-step peak")

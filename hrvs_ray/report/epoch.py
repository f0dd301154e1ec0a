"""The report's "Sampled steps vs a full epoch" section: what a cell's few timed steps stand
for. Padding and label diversity per input set and batching policy over the sweep's timed
steps and over one full epoch (from metadata, ``plan.epoch``), and a **projected** seconds
per informative megapixel of a full epoch (``projection``): each group's measured cost per
total pixel applied to the epoch's exact pixel totals.

Pure pandas/numpy; the plan is the one each results folder's driver recorded
(``plan.json``), or for older folders recomputed from the stored definition over the
shipped MAMe shape table (no pixels, no dataset on disk).
"""
from __future__ import annotations

from ..config import Sweep, SweepError
from ..metrics import GROUP_KEYS, timed
from ..metrics.projection import fit_cost, project_epoch
from ..plan.epoch import diversity_sentence, policy_views, views_from_record
from ..plan.table import planning_shapes
from .fmt import NA, Cell, Table, sig
from .load import Merged, scope_label

Views = dict[tuple[str, str], dict]   # (input set, batching) -> {"sampled", "epoch", "batch_size"}


def plan_views(m: Merged) -> tuple[Views, list[str]]:
    """Every input set × batching policy of the merged folders' sweeps, and a note per
    folder whose plan is unknown (the section says why instead of guessing). A folder's
    own ``plan.json`` (what its driver planned) is used as it stands; a folder written
    before it existed has its plan recomputed from its stored definition over the shipped
    shape table, never from a dataset on disk."""
    views: Views = {}
    notes = []
    seen = set()
    for src in m.sources:
        if src.fingerprint in seen:
            continue
        seen.add(src.fingerprint)
        try:
            if src.plan is not None:
                found = views_from_record(src.plan)
            else:
                sweep = Sweep.from_dict(src.definition)
                shapes, _ = planning_shapes(sweep, read_disk=False)
                found = {key: v | {"batch_size": sweep.input_set(key[0]).batch_size}
                         for key, v in policy_views(sweep, shapes).items()}
            for key, v in found.items():
                views.setdefault(key, v)
        except (ValueError, KeyError, TypeError, SweepError) as e:
            what = "read from plan.json" if src.plan is not None else "recomputed from sweep.json"
            notes.append(f"{src.path}: the plan could not be {what} ({e}); its input sets have no epoch view")
    return views, notes


def diversity_notes(views: Views) -> dict[tuple[str, str], str]:
    """(input set, batching) -> a sentence where that policy's batches are markedly less
    diverse than pad's over an epoch (for the Remedies answers)."""
    out = {}
    for (name, batching), v in views.items():
        pad = views.get((name, "pad"))
        s = pad and diversity_sentence(name, batching, v["epoch"]["labels"], pad["epoch"]["labels"], v["batch_size"])
        if s:
            out[(name, batching)] = s
    return out


def _labels(lab: dict) -> str:
    return f"{lab['mean_classes']:.1f} / {lab['min_classes']:.0f}"


def padding_table(m: Merged, views: Views) -> Table:
    order = {n: i for i, n in enumerate(m.input_sets)}
    rows = []
    flagged = diversity_notes(views)
    for (name, batching), v in sorted(views.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][1])):
        s, e = v["sampled"], v["epoch"]
        flag = "flag" if (name, batching) in flagged else ""
        rows.append([name, batching, str(v["batch_size"]), f"{s['steps']} ({s['runs']} run(s))",
                     f"{100 * s['padding_share']:.1f}", _labels(s["labels"]),
                     f"{e['steps']}" + (f" (window {e['window']})" if e.get("window") else ""),
                     f"{100 * e['padding_share']:.1f}", Cell(_labels(e["labels"]), flag),
                     f"{100 * e['labels']['mean_top_share']:.0f} / {100 * e['labels']['max_top_share']:.0f}"])
    return Table("Padding and label diversity: sampled steps vs a full epoch",
                 ["input set", "batching", "batch", "sampled timed steps", "padding % (sampled)",
                  "classes per batch, mean / min (sampled)", "epoch steps", "padding % (epoch)",
                  "classes per batch, mean / min (epoch)", "largest class % of a batch, mean / max (epoch)"], rows,
                 note="From metadata, the same plan as `hrvs-ray plan`: sampled = exactly the timed steps of the "
                      "sweep's cells (every run); epoch = every step of one full epoch under the policy (bucket in "
                      "full windows). Padding % = Σ padding ÷ Σ total pixels. Classes are MAMe's media; a flagged "
                      "cell is markedly less diverse than pad's (mean 10 % lower, or a batch of a single class). "
                      "Under bucket, a few sampled steps regroup only their own images: the epoch's padding is "
                      "what real training with bucket meets.",
                 empty="No plan could be recomputed for these results.")


def projection_table(m: Merged, views: Views) -> Table:
    rows = []
    for key, g in timed(m.steps).groupby(GROUP_KEYS, sort=False):
        cluster, scope, name, remedy = key
        v = views.get((name, str(g["batching"].iloc[0])))
        g = g.dropna(subset=["seconds", "total_px", "informative_px"])
        if v is None or g.empty or not (g["total_px"] > 0).all():
            continue
        fit = fit_cost(g["seconds"].to_numpy(), g["total_px"].to_numpy())
        e = v["epoch"]
        proj = project_epoch(fit, e["steps"], e["total_px"], e["informative_px"])
        measured = g["seconds"].sum() / (g["informative_px"].sum() / 1e6)
        rows.append([cluster, scope_label(scope), name, remedy, str(len(g)), sig(measured),
                     f"{sig(fit.intercept_s)} + {sig(fit.s_per_total_mp)}/MP" if fit.form == "a + b·px" else
                     f"{sig(fit.s_per_total_mp)}/MP" if fit.form == "b·px" else f"{sig(fit.intercept_s)} per step",
                     f"{100 * fit.residual_rms_share:.0f} / {100 * fit.residual_max_share:.0f}",
                     str(e["steps"]), Cell(f"{sig(proj['s_per_informative_mp'])} (projected)"),
                     f"{sig(proj['seconds'] / 3600)} h (projected)"])
    return Table("Projected cost of a full epoch (projected, not measured)",
                 ["cluster", "scope", "input set", "combination", "timed steps",
                  "measured s / informative MP (Σ s ÷ Σ MP)", "fit: s per step + s per total MP",
                  "residuals, % of the mean step (rms / max)", "epoch steps", "s / informative MP over an epoch",
                  "epoch time"], rows,
                 note="Projected, not measured: each group's timed steps (all runs) fit seconds = a + b × total "
                      "pixels by least squares (a: a fixed cost per optimizer step; a = 0 when all steps hold the "
                      "same pixels or a would be negative; b = 0 when the slope would be); the fit is applied to "
                      "the exact steps and pixel totals of one full epoch under the same policy. Large residuals "
                      "mean the step time is not explained by pixels alone: trust the projection less.",
                 empty=f"No timed steps with an epoch view to project from ({NA}).")


def section(m: Merged, views: Views, notes: list[str]) -> list[Table]:
    """The section's two tables (notes about folders without a plan go on the first)."""
    pad = padding_table(m, views)
    if notes:
        pad.note = " ".join(notes) + " " + pad.note
    return [pad, projection_table(m, views)]

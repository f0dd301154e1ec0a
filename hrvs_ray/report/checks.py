"""Checks and bookkeeping tables: batch determinism across clusters, failed and skipped
cells, provenance. Pure pandas; returns ``Table`` objects like tables.py."""
from __future__ import annotations

import pandas as pd

from .load import Merged, scope_key, scope_label
from .tables import Cell, Table, num, uniq

# Everything that decides which images land in a batch: the same key must give the same
# fingerprint wherever it ran (cluster, node, scope), or the comparison is not like for like.
# The sweep name is part of it: two different sweeps may reuse an input-set name for
# different data or sizes, and are not expected to agree.
CONFIG_KEY = ["sweep", "input_set", "batch_size", "seed", "run", "step"]


def determinism(m: Merged) -> Table:
    """One row per batch configuration whose fingerprints differ between places it ran."""
    s = m.steps.dropna(subset=["batch_fingerprint"])
    rows: list[list] = []
    compared = 0
    if len(s):
        s = s.assign(where=s["cluster"].astype(str) + " / " + s["node"].astype(str) + " / "
                     + s["scope"].map(lambda x: scope_label(str(x))))
        for key, g in s.groupby(CONFIG_KEY, dropna=False, sort=True):
            if g["where"].nunique() > 1:
                compared += 1
            fps = g.groupby("batch_fingerprint")["where"].apply(lambda w: uniq(w, "; "))
            if len(fps) > 1:
                cfg = dict(zip(CONFIG_KEY, key))
                seed = "?" if pd.isna(cfg["seed"]) else str(int(cfg["seed"]))
                for fp, where in fps.items():
                    rows.append([cfg["input_set"], str(cfg["batch_size"]), seed, str(cfg["run"]),
                                 str(cfg["step"]), Cell(str(fp), "flag"), where])
    configs = len(s.groupby(CONFIG_KEY, dropna=False)) if len(s) else 0
    verdict = (f"{configs} batch configurations (sweep, input set, batch size, seed, run, step) recorded; "
               f"{compared} ran in more than one place (cluster / node / scope) and were compared. ")
    verdict += ("All compared configurations saw identical batch fingerprints." if not rows else
                f"{len({tuple(r[:5]) for r in rows})} configuration(s) saw different batches: listed below.")
    return Table("Determinism check", ["input set", "batch size", "seed", "run", "step", "batch fingerprint",
                                       "where (cluster / node / scope)"], rows,
                 note=verdict, empty="no mismatches", extra={"ok": not rows, "compared": compared})


def failures(m: Merged) -> Table:
    c = m.cells[m.cells["status"] != "ok"].copy()
    c["_k"] = c["scope"].map(lambda x: scope_key(str(x)))
    rows = []
    for _, r in c.sort_values(["status", "cluster", "_k", "input_set", "run"]).iterrows():
        rows.append([Cell(str(r["status"]), "flag"), r["cluster"], scope_label(str(r["scope"])), r["input_set"],
                     num(r["run"], ".0f"), num(r["attempts"], ".0f"), r["hostname"] or r["node"] or "—",
                     r["error"] or "—"])
    ok = int((m.cells["status"] == "ok").sum())
    return Table("Failed and skipped cells", ["status", "cluster", "scope", "input set", "run", "attempts",
                                              "host", "reason"], rows,
                 note=f"{ok} of {len(m.cells)} recorded cells finished ok.", empty="none: every recorded cell finished ok")


def _date(v: pd.Series, how: str) -> str:
    v = pd.to_datetime(v, utc=True, errors="coerce").dropna()
    if v.empty:
        return "—"
    return (v.min() if how == "min" else v.max()).strftime("%Y-%m-%d %H:%M UTC")


def provenance(m: Merged) -> tuple[Table, Table]:
    """Where the numbers came from: the folders read, and per cluster the software and jobs."""
    src = Table("Results folders read", ["folder", "sweep", "sweep fingerprint", "schema version",
                                         "written by hrvs-ray", "cells", "step rows"],
                [[str(s.path), s.sweep, s.fingerprint, s.schema_version, s.hrvs_ray_version, str(s.cells),
                  str(s.step_rows)] for s in m.sources])
    rows = []
    for cluster in sorted(set(m.cells["cluster"].dropna())):
        c = m.cells[m.cells["cluster"] == cluster]
        digest = uniq(f"{i or '—'} @ {d}" if d else (i or None) for i, d in
                      zip(c["container_image"], c["container_digest"]))
        if digest == "—" and not c["in_container"].fillna(False).astype(bool).any():
            digest = "not in a container"
        llc = uniq(m.steps.loc[m.steps["cluster"] == cluster, "llc_event"])
        rows.append([cluster, uniq(c["sweep"]), uniq(c["hostname"]), llc, uniq(c["torch_version"]),
                     uniq(c["ray_version"]), uniq(c["hrvs_ray_version"]), uniq(c["python_version"]),
                     uniq(c["git_revision"]), digest, uniq(c["scheduler_job_id"]),
                     _date(c["started_at"], "min"), _date(c["finished_at"], "max")])
    prov = Table("Provenance per cluster", ["cluster", "sweep", "hosts", "LLC event", "torch", "ray", "hrvs-ray", "python",
                                            "git revision", "container image @ digest", "scheduler job ids",
                                            "first cell started", "last cell finished"], rows)
    return src, prov


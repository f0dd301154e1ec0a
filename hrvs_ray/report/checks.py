"""Checks and bookkeeping tables: batch determinism across clusters, failed and skipped
cells, provenance. Pure pandas; returns ``Table`` objects like tables.py."""
from __future__ import annotations

import pandas as pd

from ..metrics.data_parallel import is_data_parallel
from .fmt import Cell, Table, missing, num, uniq
from .load import Merged, scope_key, scope_label

# Everything that decides which images land in a batch: the same key must give the same
# fingerprint wherever it ran (cluster, node, scope), or the comparison is not like for like.
# The sweep name is part of it: two different sweeps may reuse an input-set name for
# different data or sizes, and are not expected to agree. So is the batching policy and its
# parameter: ``bucket`` regroups the images on purpose (precision, memory format and
# checkpointing do not touch the batches, so they are compared with each other).
CONFIG_KEY = ["sweep", "input_set", "batch_size", "seed", "run", "step", "batching", "window", "micro_batch"]


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
                cfg = dict(zip(CONFIG_KEY, key, strict=False))
                seed = "?" if pd.isna(cfg["seed"]) else str(int(cfg["seed"]))
                for fp, where in fps.items():
                    rows.append([cfg["input_set"], str(cfg["batch_size"]), seed, str(cfg["run"]),
                                 str(cfg["step"]), str(cfg["batching"]), Cell(str(fp), "flag"), where])
    configs = len(s.groupby(CONFIG_KEY, dropna=False)) if len(s) else 0
    verdict = (f"{configs} batch configurations (sweep, input set, batch size, seed, run, step, batching) recorded; "
               f"{compared} ran in more than one place (cluster / node / scope) and were compared. ")
    verdict += ("All compared configurations saw identical batch fingerprints." if not rows else
                f"{len({tuple(r[:6]) for r in rows})} configuration(s) saw different batches: listed below.")
    return Table("Determinism check", ["input set", "batch size", "seed", "run", "step", "batching",
                                       "batch fingerprint", "where (cluster / node / scope)"], rows,
                 note=verdict, empty="no mismatches", extra={"ok": not rows, "compared": compared})


def failures(m: Merged) -> Table:
    c = m.cells[m.cells["status"] != "ok"].copy()
    c["_k"] = c["scope"].map(lambda x: scope_key(str(x)))
    rows = []
    for _, r in c.sort_values(["status", "cluster", "_k", "input_set", "run"]).iterrows():
        rows.append([Cell(str(r["status"]), "flag"), r["cluster"], scope_label(str(r["scope"])), r["input_set"],
                     r["remedy"], num(r["run"], ".0f"), num(r["attempts"], ".0f"), _text(r["hostname"], r["node"]),
                     _text(r["error"])])
    ok = int((m.cells["status"] == "ok").sum())
    return Table("Failed and skipped cells", ["status", "cluster", "scope", "input set", "remedy", "run",
                                              "attempts", "host", "reason"], rows,
                 note=f"{ok} of {len(m.cells)} recorded cells finished ok.",
                 empty="none: every recorded cell finished ok")


def _text(*values: object, none: str = "—") -> str:
    """The first value that is recorded (never 'nan'), else ``none``."""
    return next((str(v) for v in values if not missing(v)), none)


def _date(v: pd.Series, how: str) -> str:
    v = pd.to_datetime(v, utc=True, errors="coerce").dropna()
    if v.empty:
        return "none"
    return (v.min() if how == "min" else v.max()).strftime("%Y-%m-%d %H:%M UTC")


# what data-parallel cells also ran on (schema 5): shown only where the results hold such cells
DP_STACK = ["Ray Train", "DDP backend"]
DP_STACK_NOTE = ("Ray Train and DDP backend: what the data-parallel cells (scopes N*SCOPE) ran on, from their own "
                 "rows (none: the cluster ran no data-parallel cell, or none of them got that far). The DDP "
                 "backend's version is torch's for gloo, which ships inside torch, and NCCL's for nccl.")


def _dp_stack(c: pd.DataFrame) -> list[str]:
    """A cluster's data-parallel stack over its data-parallel cells: Ray Train's version, and
    the DDP backend with its version."""
    dp = c[is_data_parallel(c)]
    none = pd.Series(None, index=dp.index, dtype=object)
    backend = (None if missing(b) else b if missing(v) else f"{b} {v}"
               for b, v in zip(dp.get("dp_backend", none), dp.get("dp_backend_version", none), strict=True))
    return [uniq(dp.get("ray_train_version", none), none="none"), uniq(backend, none="none")]


def provenance(m: Merged) -> tuple[Table, Table]:
    """Where the numbers came from: the folders read, and per cluster the software and jobs
    (with the data-parallel stack where the results hold data-parallel cells)."""
    src = Table("Results folders read", ["folder", "sweep", "sweep fingerprint", "schema version",
                                         "written by hrvs-ray", "cells", "step rows"],
                [[str(s.path), s.sweep, s.fingerprint, s.schema_version, s.hrvs_ray_version, str(s.cells),
                  str(s.step_rows)] for s in m.sources])
    dp = bool(is_data_parallel(m.cells).any())
    rows = []
    for cluster in sorted(set(m.cells["cluster"].dropna())):
        c = m.cells[m.cells["cluster"] == cluster]
        digest = uniq((f"{_text(i)} @ {d}" if not missing(d) else None if missing(i) else str(i))
                      for i, d in zip(c["container_image"], c["container_digest"], strict=False))
        if digest == "—":
            digest = "not in a container" if c["in_container"].eq(False).any() else "none"
        llc = uniq(m.steps.loc[m.steps["cluster"] == cluster, "llc_event"], none="none")
        rows.append([cluster, *(uniq(c[k], none="none") for k in ("sweep", "hostname")), llc,
                     *(uniq(c[k], none="none") for k in ("torch_version", "ray_version")),
                     *(_dp_stack(c) if dp else ()),
                     *(uniq(c[k], none="none") for k in ("hrvs_ray_version", "python_version", "git_revision")),
                     digest, uniq(c["scheduler_job_id"], none="none"),
                     _date(c["started_at"], "min"), _date(c["finished_at"], "max")])
    prov = Table("Provenance per cluster", ["cluster", "sweep", "hosts", "LLC event", "torch", "ray",
                                            *(DP_STACK if dp else ()), "hrvs-ray", "python",
                                            "git revision", "container image @ digest", "scheduler job ids",
                                            "first cell started", "last cell finished"], rows,
                 note=DP_STACK_NOTE if dp else "")
    return src, prov


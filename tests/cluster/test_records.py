"""``cluster.records``: the one place a ``cells`` row is assembled, the process facts it
carries, and the line a person reads per cell. Pure: no Ray is started."""
from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta, timezone

import pytest

from hrvs_ray.cluster.records import CellOutcome, CellSummary, NodeRef, ProcessFacts, cell_row, core_kinds_json, where
from hrvs_ray.config import parse_sweep
from hrvs_ray.plan.cells import CellSpec, plan_cells
from hrvs_ray.store import CELLS_SCHEMA, ResultStore, read_results

SWEEP = {"name": "rec", "dataset": {"kind": "synthetic", "path": "/nonexistent/rec"},
         "input_sets": {"HR&VS": {"resize": "none", "batch_size": 4}}, "scopes": ["node"],
         "training": {"warmup_steps": 1, "steps": 2, "runs": 1, "seed": 3},
         "remedies": {"batching": ["pad", "bucket", "accumulate"], "precision": ["float32", "bfloat16"],
                      "window": 5, "micro_batch": 2}}
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
FACTS = ProcessFacts(threads=4, cpus=(0, 1, 2, 3), numa_binding="membind 0", placement_warning=None,
                     core_kinds='{"performance": 4}', hostname="h1", pid=123, torch_version="2.x",
                     ray_version="2.y", hrvs_ray_version="0.1", python_version="3.11", git_revision="abc",
                     in_container=False, scheduler_job_id="77")


def _cells() -> dict[tuple[str, str], CellSpec]:
    cells = plan_cells(parse_sweep(SWEEP, "rec.yaml"), ["c1"])
    return {(c.remedy.batching, c.remedy.precision): c for c in cells}


def _outcome(**kw) -> CellOutcome:
    base = dict(status="ok", error=None, started_at=T0, finished_at=T0 + timedelta(seconds=9), wall_seconds=9.0,
                prepare_seconds=1.5, images_decoded=10, images_cached=2, baseline_rss_bytes=1 << 20, facts=FACTS)
    return CellOutcome(**{**base, **kw})


def test_a_row_carries_identity_remedy_outcome_and_facts():
    cell = _cells()[("bucket", "bfloat16")]
    row = cell_row(cell, NodeRef("n1", "ray-id", "host-1"), 2, _outcome())
    assert {k: row[k] for k in ("sweep", "cell_id", "cluster", "scope", "input_set", "run")} == {
        "sweep": "rec", "cell_id": cell.cell_id, "cluster": "c1", "scope": "node", "input_set": "HR&VS", "run": 0}
    assert (row["node"], row["ray_node_id"], row["attempts"]) == ("n1", "ray-id", 2)
    assert CellSpec.from_json(row["spec_json"]) == cell
    assert {k: row[k] for k in ("batching", "precision", "memory_format", "checkpointing", "remedy")} == {
        "batching": "bucket", "precision": "bfloat16", "memory_format": "contiguous", "checkpointing": "none",
        "remedy": "bucket(w5)+bf16+nchw"}
    assert (row["window"], row["micro_batch"]) == (5, None)
    assert (row["status"], row["started_at"], row["wall_seconds"], row["images_cached"]) == ("ok", T0, 9.0, 2)
    assert row["baseline_rss_bytes"] == 1 << 20
    # the process's own hostname wins over the node's (it is what actually ran the cell)
    assert (row["hostname"], row["pid"], row["cpus"], row["scheduler_job_id"]) == ("h1", 123, [0, 1, 2, 3], "77")


@pytest.mark.parametrize("batching, window, micro_batch", [("pad", None, None), ("bucket", 5, None),
                                                            ("accumulate", None, 2)])
def test_policy_parameters_only_where_the_policy_uses_them(batching, window, micro_batch):
    row = cell_row(_cells()[(batching, "float32")], None, 1, _outcome())
    assert (row["window"], row["micro_batch"]) == (window, micro_batch)


def test_every_key_of_a_row_is_a_column_and_survives_the_store(tmp_path):
    """``conform`` drops keys the schema lacks without a word: a key cell_row adds that the
    schema does not have would be lost from every results folder."""
    cell = _cells()[("accumulate", "bfloat16")]
    row = cell_row(cell, NodeRef("n1", "ray-id", "host-1"), 1, _outcome())
    assert set(row) <= set(CELLS_SCHEMA.names), set(row) - set(CELLS_SCHEMA.names)
    apart = {"facts", "steps", "data_parallel"}      # data_parallel: its own columns, next test
    missing = {f.name for f in fields(ProcessFacts)} | {f.name for f in fields(CellOutcome)} - apart
    assert missing <= set(row)
    st = ResultStore.open(tmp_path / "r", "rec", "fp", {})
    st.write_cell(row, None)
    back = read_results(tmp_path / "r").cells.to_pylist()[0]
    assert back == {**{k: None for k in CELLS_SCHEMA.names}, **row}


def test_a_cell_that_never_ran_has_no_node_and_no_facts():
    out = CellOutcome.not_run("skipped", "no node of cluster c1")
    assert out.started_at == out.finished_at and out.started_at.tzinfo is not None
    row = cell_row(_cells()[("pad", "float32")], None, 0, out)
    assert (row["node"], row["ray_node_id"], row["hostname"]) == (None, None, None)
    assert (row["status"], row["error"], row["attempts"]) == ("skipped", "no node of cluster c1", 0)
    assert "pid" not in row and "cpus" not in row and row["remedy"] == "pad+fp32+nchw"


def test_process_facts_keep_only_their_own_keys():
    given = {"hostname": "h", "pid": 1, "git_revision": None, "cuda": "12.4", "ray_address": "x"}
    assert ProcessFacts.known(given) == {"hostname": "h", "pid": 1, "git_revision": None}
    assert ProcessFacts.known({}) == {}


def test_the_line_a_person_reads_per_cell():
    assert CellSummary("id", "c1 n1 node HR&VS pad run 0", "ok", 1.23456, statistic="Σ s ÷ Σ MP").line() == \
        "c1 n1 node HR&VS pad run 0: ok, 1.235 s/MP (Σ s ÷ Σ MP of timed steps)"
    assert CellSummary("id", "w", "ok", None, statistic="median").line() == "w: ok, n/a s/MP (median of timed steps)"
    assert CellSummary("id", "w", "failed", first_error="OOM").line() == "w: FAILED: OOM"
    assert CellSummary("id", "w", "skipped").line() == "w: FAILED: "


def test_where_and_core_kinds():
    cell = _cells()[("accumulate", "float32")]
    assert where(cell, "n1") == "c1 n1 node HR&VS accum(mb2)+fp32+nchw run 0"
    assert where(cell, None).startswith("c1 - node ")
    assert core_kinds_json({"performance": 4, "efficiency": 8}) == '{"efficiency": 8, "performance": 4}'
    assert core_kinds_json({}) is None and core_kinds_json(None) is None


class _Lines:
    """A progress sink that keeps what the driver says (the CLI's bar, minus the bar)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kw) -> None:
        pass

    def write(self, line: str) -> None:
        self.lines.append(line)

    def close(self) -> None:
        pass


def test_a_result_that_cannot_be_written_fails_the_sweep_keeps_the_result_and_is_not_rerun(tmp_path):
    """A full disk after a cell ran: the driver's failure, not the cell's; nothing requeued."""
    import pickle
    import re
    from pathlib import Path

    from hrvs_ray.cluster.cell_loop import CellLoop, SweepSummary
    from hrvs_ray.cluster.scheduler import Pending, Scheduler

    sweep = parse_sweep(SWEEP)
    cell = plan_cells(sweep, ["c1"])[0]
    store = ResultStore.open(tmp_path / "r", sweep.name, sweep.fingerprint(), sweep.to_dict())
    (tmp_path / "r" / "cells.parquet").mkdir()        # a real write failure: the file cannot be replaced
    summary, bar, sched = SweepSummary(), _Lines(), Scheduler([], retries=3)
    loop = CellLoop(sweep, store, [], sched, summary, bar)
    loop.finish(Pending(cell, {"n1"}, tried=["n1"]), None, CellOutcome("ok", None, T0, T0, 1.0, facts=FACTS))
    assert summary.ok == 0 and summary.unwritten == 1 and len(sched) == 0
    (cid, why), = summary.failed
    assert cid == cell.cell_id and why.startswith("driver error: its result could not be written")
    kept = Path(re.search(r"kept in (\S+)\)", why).group(1))
    assert pickle.loads((kept / "cell.pickle").read_bytes())["row"]["cell_id"] == cell.cell_id
    assert oct(kept.stat().st_mode & 0o777) == "0o700"
    assert any("could not be written" in line for line in bar.lines)


def test_a_data_parallel_cells_own_columns_are_columns():
    """``CellOutcome.data_parallel`` (what ``train.data_parallel.summarise`` gives) lands in
    columns of its own; a single-rank cell's row says ranks 1 and leaves them null."""
    from dataclasses import replace

    cell = _cells()[("pad", "float32")]
    dp = {"ranks": 2, "dp_backend": "gloo", "dp_backend_version": "2.14.1", "ray_train_version": "2.60.0",
          "rank_layout": '[{"rank": 0}, {"rank": 1}]'}
    row = cell_row(replace(cell, scope="2*cores:1"), NodeRef("n1", "ray-id", "host-1"), 1,
                   replace(_outcome(), data_parallel=dp))
    assert set(dp) <= set(row) <= set(CELLS_SCHEMA.names) and row["ranks"] == 2
    one = cell_row(cell, NodeRef("n1", "ray-id", "host-1"), 1, _outcome())
    assert one["ranks"] == 1 and "dp_backend" not in one

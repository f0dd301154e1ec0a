"""The store's own read, resume, fill and version tests: ``store.migrate`` on schema-1 tables
built by hand (not through the report fixtures), ``check_version``, orphan step files, and a
results folder reopened by its own sweep or another."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hrvs_ray.store import CELLS_SCHEMA, SCHEMA_VERSION, STEPS_SCHEMA, ResultsError, ResultStore, conform, read_results
from hrvs_ray.store.migrate import check_version, fill_defaults

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)


def _v1_cells() -> pa.Table:
    """cells as schema 1 stored them: no remedy columns; precision only inside spec_json."""
    spec = lambda **model: json.dumps({"seed": 0, "run": 0, "model": model})  # noqa: E731
    return pa.table({
        "sweep": ["s"] * 4, "cell_id": ["a", "b", "c", "d"], "cluster": ["c1"] * 4, "status": ["ok"] * 4,
        "started_at": pa.array([T0] * 4, pa.timestamp("us", tz="UTC")),
        "spec_json": [spec(precision="bfloat16", memory_format="channels_last"), spec(precision="float32"),
                      spec(), None],
    })


def _v1_steps() -> pa.Table:
    return pa.table({
        "sweep": ["s"] * 3, "cell_id": ["a"] * 3, "cluster": ["c1"] * 3, "step": pa.array([0, 1, 2], pa.int32()),
        "total_px": pa.array([100, 200, 300], pa.int64()), "rss_start_bytes": pa.array([10, 20, None], pa.int64()),
        "peak_rss_bytes": pa.array([15, 60, 90], pa.int64()),
        "precision": ["bfloat16", "bfloat16", None], "memory_format": ["contiguous", "channels_last", None],
    })


def test_schema_1_cells_get_their_remedy_from_spec_json():
    t = fill_defaults(conform(_v1_cells(), CELLS_SCHEMA))
    assert t.schema == CELLS_SCHEMA
    got = {c: t.column(c).to_pylist() for c in ("batching", "precision", "memory_format", "checkpointing", "remedy")}
    assert got == {"batching": ["pad"] * 4,
                   "precision": ["bfloat16", "float32", "float32", "float32"],
                   "memory_format": ["channels_last", "contiguous", "contiguous", "contiguous"],
                   "checkpointing": ["none"] * 4,
                   "remedy": ["pad+bf16+nhwc", "pad+fp32+nchw", "pad+fp32+nchw", "pad+fp32+nchw"]}
    assert t.column("window").null_count == 4 and t.column("micro_batch").null_count == 4
    assert t.column("cell_id").to_pylist() == ["a", "b", "c", "d"]


def test_schema_1_steps_get_remedy_and_derived_memory_columns():
    t = fill_defaults(conform(_v1_steps(), STEPS_SCHEMA))
    assert t.schema == STEPS_SCHEMA
    assert t.column("remedy").to_pylist() == ["pad+bf16+nchw", "pad+bf16+nhwc", "pad+fp32+nchw"]
    assert t.column("micro_batches").to_pylist() == [1, 1, 1]
    assert t.column("growth_bytes").to_pylist() == [5, 40, None]        # peak - start; unknown start: null
    assert t.column("pass_px").to_pylist() == [100, 200, 300]            # one pass per step: the batch


def test_recorded_values_are_never_overwritten():
    rows = [{"cell_id": "a", "batching": "accumulate", "precision": "bfloat16", "memory_format": "contiguous",
             "checkpointing": "stages", "remedy": "keep-me", "micro_batch": 2, "micro_batches": 4,
             "total_px": 100, "pass_px": 25, "rss_start_bytes": 10, "peak_rss_bytes": 50, "growth_bytes": 7},
            {"cell_id": "b", "batching": "bucket", "window": 8, "precision": "float32", "memory_format": "contiguous",
             "checkpointing": "none", "total_px": 100, "rss_start_bytes": 10, "peak_rss_bytes": 50}]
    t = fill_defaults(conform(rows, STEPS_SCHEMA)).to_pylist()
    assert {k: t[0][k] for k in rows[0]} == rows[0]
    assert (t[1]["remedy"], t[1]["micro_batches"], t[1]["growth_bytes"], t[1]["pass_px"]) == \
        ("bucket(w8)+fp32+nchw", 1, 40, 100)


def test_a_table_without_gaps_or_rows_comes_back_as_is():
    empty = conform([], STEPS_SCHEMA)
    assert fill_defaults(empty) is empty
    full = fill_defaults(conform(_v1_steps(), STEPS_SCHEMA))
    assert fill_defaults(full).equals(full)


@pytest.mark.parametrize("version, words", [(None, "no schema_version"), (SCHEMA_VERSION + 1, "newer than"),
                                            (str(SCHEMA_VERSION + 5).encode(), "newer than"),
                                            (0, "older than any"), (b"-1", "older than any")])
def test_versions_this_hrvs_ray_cannot_read_are_refused_naming_the_file(version, words):
    with pytest.raises(ResultsError, match=f"^/x/cells.parquet: .*{words}"):
        check_version(Path("/x/cells.parquet"), version)


@pytest.mark.parametrize("version", [1, b"1", "2", SCHEMA_VERSION, str(SCHEMA_VERSION).encode()])
def test_readable_versions_are_returned_as_numbers(version):
    assert check_version(Path("f"), version) == int(version)


def _v1_folder(root: Path) -> Path:
    """A schema-1 results folder written by hand: sweep.json, cells and one steps file."""
    (root / "steps" / "c1").mkdir(parents=True)
    (root / "sweep.json").write_text(json.dumps({"sweep": "s", "fingerprint": "fp1", "schema_version": 1}))
    md = {b"schema_version": b"1"}
    pq.write_table(_v1_cells().replace_schema_metadata(md), root / "cells.parquet")
    pq.write_table(_v1_steps().replace_schema_metadata(md), root / "steps" / "c1" / "a.parquet")
    return root


def test_a_schema_1_folder_reads_in_the_current_schema(tmp_path):
    res = read_results(_v1_folder(tmp_path / "r"))
    assert res.cells.schema.names == CELLS_SCHEMA.names and res.steps.schema.names == STEPS_SCHEMA.names
    assert res.cells.column("remedy").to_pylist()[0] == "pad+bf16+nhwc"
    assert res.steps.column("growth_bytes").to_pylist() == [5, 40, None]
    # schema < 4 did not record how the cell's process started
    assert set(res.cells.column("process").to_pylist()) == {"unknown"}


def test_a_resumed_schema_1_folder_is_rewritten_whole_in_the_current_schema(tmp_path):
    root = _v1_folder(tmp_path / "r")
    st = ResultStore.open(root, "s", "fp1", {})
    assert st.finished() == {"a": "ok", "b": "ok", "c": "ok", "d": "ok"}
    st.write_cell({"sweep": "s", "cell_id": "e", "cluster": "c1", "status": "failed", "started_at": T0}, None)
    stored = pq.read_table(root / "cells.parquet")
    assert stored.schema.metadata[b"schema_version"] == str(SCHEMA_VERSION).encode()
    assert stored.column("cell_id").to_pylist() == ["a", "b", "c", "d", "e"]
    assert stored.column("precision").to_pylist()[:2] == ["bfloat16", "float32"]   # filled, not lost


def test_resume_keeps_what_is_recorded_and_a_retry_replaces_its_orphan(tmp_path):
    st = ResultStore.open(tmp_path / "r", "s", "fp1", {"definition": 1})
    st.write_cell({"sweep": "s", "cell_id": "a", "cluster": "c1", "status": "ok", "started_at": T0},
                  conform(_v1_steps(), STEPS_SCHEMA))
    # a crash after the steps file of cell b landed, before its row: an orphan readers ignore
    orphan = conform(_v1_steps(), STEPS_SCHEMA).set_column(1, "cell_id", pa.array(["b"] * 3))
    pq.write_table(orphan.replace_schema_metadata({b"schema_version": b"2"}), st.steps_path("c1", "b"))
    assert sorted(set(read_results(tmp_path / "r").steps.column("cell_id").to_pylist())) == ["a"]

    again = ResultStore.open(tmp_path / "r", "s", "fp1", {"definition": 2})
    assert again.finished() == {"a": "ok"}
    assert json.loads((tmp_path / "r" / "sweep.json").read_text())["definition"] == {"definition": 1}
    again.write_cell({"sweep": "s", "cell_id": "b", "cluster": "c1", "status": "ok", "started_at": T0},
                     conform(_v1_steps().slice(0, 2), STEPS_SCHEMA).set_column(1, "cell_id", pa.array(["b"] * 2)))
    res = read_results(tmp_path / "r")
    assert res.cells.column("cell_id").to_pylist() == ["a", "b"]
    assert res.steps.column("cell_id").to_pylist() == ["a"] * 3 + ["b"] * 2     # b's retry, not its orphan


@pytest.mark.parametrize("name, fp", [("s", "fp2"), ("other", "fp1")])
def test_a_folder_of_another_sweep_is_refused_and_left_alone(tmp_path, name, fp):
    st = ResultStore.open(tmp_path / "r", "s", "fp1", {})
    st.write_cell({"sweep": "s", "cell_id": "a", "cluster": "c1", "status": "ok", "started_at": T0}, None)
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    with pytest.raises(ResultsError, match=f"{tmp_path / 'r'}: holds results of a different sweep definition"):
        ResultStore.open(tmp_path / "r", name, fp, {})
    assert {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()} == before


def test_a_corrupt_sweep_json_is_refused_not_overwritten(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "sweep.json").write_text("{not json")
    with pytest.raises(ResultsError, match="sweep.json: unreadable"):
        ResultStore.open(tmp_path / "r", "s", "fp1", {})
    assert (tmp_path / "r" / "sweep.json").read_text() == "{not json"


# ---------------------------------------------------------------- schema 5 (issue 28): data-parallel cells

DP_STEP_COLUMNS = ("rank_compute_seconds", "rank_sync_seconds", "rank_px", "image_rank")
DP_CELL_COLUMNS = ("dp_backend", "dp_backend_version", "ray_train_version", "rank_layout")


def test_a_schema_1_folder_reads_as_single_rank_shard_cells(tmp_path):
    res = read_results(_v1_folder(tmp_path / "r"))
    for t in (res.steps, res.cells):
        assert set(t.column("ranks").to_pylist()) == {1} and set(t.column("split").to_pylist()) == {"shard"}
    assert all(res.steps.column(c).null_count == res.steps.num_rows for c in DP_STEP_COLUMNS)
    assert all(res.cells.column(c).null_count == res.cells.num_rows for c in DP_CELL_COLUMNS)


def _as_schema_4(root: Path) -> Path:
    """A folder rewritten as schema 4 stored it: without schema 5's columns, version 4."""
    new = set(STEPS_SCHEMA.names) - set(_SCHEMA_4_STEPS) | set(CELLS_SCHEMA.names) - set(_SCHEMA_4_CELLS)
    for f in [root / "cells.parquet", *sorted((root / "steps").rglob("*.parquet"))]:
        t = pq.read_table(f)
        keep = [c for c in t.column_names if c not in new]
        pq.write_table(t.select(keep).replace_schema_metadata({**t.schema.metadata, b"schema_version": b"4"}), f)
    return root


_SCHEMA_4_STEPS = [n for n in STEPS_SCHEMA.names if n not in ("ranks", "split", *DP_STEP_COLUMNS)]
_SCHEMA_4_CELLS = [n for n in CELLS_SCHEMA.names if n not in ("ranks", "split", *DP_CELL_COLUMNS)]


def test_a_schema_4_folder_written_by_todays_writer_reads_with_the_new_defaults(tmp_path):
    from tests.fixtures.report_results import make_results
    root = _as_schema_4(make_results(tmp_path / "r", scopes=("cores:1",), input_sets=("HR&VS",), runs=1, steps=2))
    assert "ranks" not in pq.read_table(root / "cells.parquet").column_names
    res = read_results(root)
    assert res.steps.schema == STEPS_SCHEMA and res.cells.schema == CELLS_SCHEMA
    assert res.steps.column("ranks").to_pylist() == [1, 1] and res.steps.column("split").to_pylist() == ["shard"] * 2
    assert res.cells.column("ranks").to_pylist() == [1] and res.cells.column("split").to_pylist() == ["shard"]
    assert res.steps.column("rank_px").null_count == 2 and res.cells.column("dp_backend").null_count == 1


def test_data_parallel_rows_keep_their_rank_lists_and_a_row_without_ranks_takes_its_scopes(tmp_path):
    st = ResultStore.open(tmp_path / "r", "s", "fp1", {})
    step = {"sweep": "s", "cell_id": "dp", "cluster": "c1", "scope": "2*cores:1", "run": 0, "step": 1, "ranks": 2,
            "split": "balanced", "seconds": 1.5, "total_px": 10, "rank_compute_seconds": [1.0, 1.4],
            "rank_sync_seconds": [0.5, 0.1], "rank_px": [6, 4], "image_ids": ["a.jpg", "b.jpg", "c.jpg"],
            "image_rank": [0, 1, 0]}
    st.write_cell({"sweep": "s", "cell_id": "dp", "cluster": "c1", "scope": "2*cores:1", "status": "ok",
                   "started_at": T0, "ranks": 2, "split": "balanced", "dp_backend": "gloo",
                   "dp_backend_version": "2.14.1", "ray_train_version": "2.60.0"}, conform([step], STEPS_SCHEMA))
    # a data-parallel cell the driver skipped before it ran: its row names the scope, not the ranks
    st.write_cell({"sweep": "s", "cell_id": "sk", "cluster": "c1", "scope": "4*node", "status": "skipped",
                   "started_at": T0}, None)
    res = read_results(tmp_path / "r")
    got = res.steps.to_pylist()[0]
    assert {k: got[k] for k in step} == step
    cells = {r["cell_id"]: r for r in res.cells.to_pylist()}
    assert (cells["dp"]["ranks"], cells["dp"]["split"], cells["dp"]["dp_backend"]) == (2, "balanced", "gloo")
    assert (cells["sk"]["ranks"], cells["sk"]["split"], cells["sk"]["dp_backend"]) == (4, "shard", None)

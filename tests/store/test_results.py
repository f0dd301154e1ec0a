from __future__ import annotations

from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from hrvs_ray.store import SCHEMA_VERSION, STEPS_SCHEMA, ResultsError, ResultStore, conform, read_results


def _cell(cid, status="ok", cluster="c1"):
    now = datetime.now(timezone.utc)
    return {"sweep": "s", "cell_id": cid, "cluster": cluster, "node": "n1", "scope": "node",
            "input_set": "LR&FS", "run": 0, "status": status, "started_at": now, "finished_at": now}


def _steps(cid, n=3):
    return conform([{"sweep": "s", "cell_id": cid, "cluster": "c1", "step": i, "warmup": i == 0,
                     "seconds": 0.1 * (i + 1), "total_px": 100, "informative_px": 80, "padding_px": 20}
                    for i in range(n)], STEPS_SCHEMA)


def test_cells_land_atomically_with_schema_version(tmp_path):
    st = ResultStore.open(tmp_path / "r", "s", "fp1", {"a": 1})
    st.write_cell(_cell("a"), _steps("a"))
    st.write_cell(_cell("b", "failed"), None)
    assert st.finished() == {"a": "ok", "b": "failed"}
    st.write_cell(_cell("b"), _steps("b"))                      # a retry replaces the row
    assert st.finished() == {"a": "ok", "b": "ok"}
    for f in [st.cells_path, st.steps_path("c1", "a")]:
        assert pq.read_schema(f).metadata[b"schema_version"] == str(SCHEMA_VERSION).encode()
    assert not list(tmp_path.rglob("*.tmp"))
    res = read_results(tmp_path / "r")
    assert res.steps.num_rows == 6 and res.cells.num_rows == 2


def test_orphan_steps_are_ignored(tmp_path):
    st = ResultStore.open(tmp_path / "r", "s", "fp1", {})
    st.write_cell(_cell("a"), _steps("a"))
    pq.write_table(_steps("ghost").replace_schema_metadata({b"schema_version": b"1"}), st.steps_path("c1", "ghost"))
    assert read_results(tmp_path / "r").steps.num_rows == 3


def test_other_sweep_is_refused_and_fresh_clears_own(tmp_path):
    ResultStore.open(tmp_path / "r", "s", "fp1", {}).write_cell(_cell("a"), _steps("a"))
    with pytest.raises(ResultsError, match="different sweep definition"):
        ResultStore.open(tmp_path / "r", "s", "fp2", {})
    with pytest.raises(ResultsError, match="--fresh only clears"):
        ResultStore.open(tmp_path / "r", "other", "fp2", {}, fresh=True)
    st = ResultStore.open(tmp_path / "r", "s", "fp2", {}, fresh=True)
    assert st.finished() == {}
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x").write_text("x")
    with pytest.raises(ResultsError, match="not an hrvs-ray"):
        ResultStore.open(tmp_path / "junk", "s", "fp", {})


def test_reader_errors_name_the_folder(tmp_path):
    with pytest.raises(ResultsError, match="no such results folder"):
        read_results(tmp_path / "missing")
    ResultStore.open(tmp_path / "empty", "s", "fp", {})
    with pytest.raises(ResultsError, match="empty results folder"):
        read_results(tmp_path / "empty")
    st = ResultStore.open(tmp_path / "bad", "s", "fp", {})
    st.write_cell(_cell("a"), _steps("a"))
    st.cells_path.write_bytes(b"PAR1 not really")
    with pytest.raises(ResultsError, match="corrupt"):
        read_results(tmp_path / "bad")
    st = ResultStore.open(tmp_path / "new", "s", "fp", {})
    st.write_cell(_cell("a"), _steps("a"))
    t = pq.read_table(st.cells_path)
    pq.write_table(t.replace_schema_metadata({b"schema_version": str(SCHEMA_VERSION + 1).encode()}), st.cells_path)
    with pytest.raises(ResultsError, match="newer than this hrvs-ray"):
        read_results(tmp_path / "new")


def test_a_folder_of_another_plan_version_is_refused_by_name(tmp_path):
    # a folder written before plan version 2 has no plan_version in sweep.json: version 1
    ResultStore.open(tmp_path / "r", "s", "fp1", {}).write_cell(_cell("a"), _steps("a"))
    import json
    ident = json.loads((tmp_path / "r" / "sweep.json").read_text())
    assert ident["plan_version"] == 1
    with pytest.raises(ResultsError, match=r"planned by plan version 1; this hrvs-ray plans it by version 2.*"
                                           r"Refusing to resume with two plans mixed"):
        ResultStore.open(tmp_path / "r", "s", "fp1", {}, plan_version=2)
    st = ResultStore.open(tmp_path / "r", "s", "fp2", {}, fresh=True, plan_version=2)
    assert st.finished() == {} and json.loads((tmp_path / "r" / "sweep.json").read_text())["plan_version"] == 2
    ResultStore.open(tmp_path / "r", "s", "fp2", {}, plan_version=2)        # same plan: resumes


def test_image_ids_round_trip_and_older_folders_read_null(tmp_path):
    st = ResultStore.open(tmp_path / "r", "s", "fp1", {})
    rows = [{"sweep": "s", "cell_id": "a", "cluster": "c1", "step": 0, "image_ids": ["b.jpg", "a.jpg"]}]
    st.write_cell(_cell("a"), conform(rows, STEPS_SCHEMA))
    old = _steps("b").drop(["image_ids"])                     # a schema-2 steps file
    pq.write_table(old.replace_schema_metadata({b"schema_version": b"2"}), st.steps_path("c1", "b"))
    st.write_cell(_cell("b"), None)
    steps = read_results(tmp_path / "r").steps.to_pandas().set_index("cell_id")
    assert list(steps.loc["a", "image_ids"]) == ["b.jpg", "a.jpg"]     # pass order, literal ids
    assert steps.loc["b", "image_ids"].isna().all()


def test_the_store_adds_the_nodes_library_baseline_to_a_cells_anonymous_memory(tmp_path):
    """peak_rss_bytes = library_bytes + peak_anon_bytes (probes.memory): added on write, from the
    node description written before; rows without an anonymous reading stay as the process read them."""

    from hrvs_ray.report.tables import _split
    from hrvs_ray.store.results import with_library

    rows = [dict(cell_id="a", node="n1", cluster="c1", step=i, peak_anon_bytes=700 + i, anon_start_bytes=400,
                 vmhwm_bytes=500 + i, file_start_bytes=30, baseline_anon_bytes=410) for i in range(2)]
    st = ResultStore.open(tmp_path / "r", "s", "fp", {})
    st.write_node({"node": "n1", "cluster": "c1", "library_bytes": 300})
    st.write_cell({"cell_id": "a", "cluster": "c1", "node": "n1", "status": "ok"}, conform(rows, STEPS_SCHEMA))
    res = read_results(tmp_path / "r")
    s, c = res.steps.to_pandas(), res.cells.to_pandas()
    assert s["peak_rss_bytes"].tolist() == [1000, 1001] and s["rss_start_bytes"].tolist() == [700, 700]
    assert (s["library_bytes"] == 300).all() and res.nodes.column("library_bytes").to_pylist() == [300]
    assert c[["baseline_rss_bytes", "baseline_anon_bytes", "library_bytes"]].iloc[0].tolist() == [710, 410, 300]
    old = conform([{k: v for k, v in rows[0].items() if k not in ("peak_anon_bytes",)} | {"peak_rss_bytes": 9}],
                  STEPS_SCHEMA)
    same, cell = with_library(old, {"node": "n1"}, 300)
    assert same.column("peak_rss_bytes").to_pylist() == [9] and cell == {"node": "n1"}
    assert [float(x) for x in _split(s)] == pytest.approx([3e-7, 7.005e-7], rel=5e-3)   # GB, 3 digits
    assert [x.text for x in _split(s.drop(columns="library_bytes"))] == ["not split", "not split"]

"""Node description (the paper's Table 3) and ``hrvs-ray node-info``, from recorded machines and this node."""
from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from hrvs_ray.node.description import NODE_KEYS, collect_node_info, flops_per_cycle_fp32
from hrvs_ray.node.node_info import describe_node, format_node_info
from hrvs_ray.node.topology import format_cpulist
from hrvs_ray.store import NODES_SCHEMA, conform, node_row
from tests.helpers import REPO, hrvs, snapshot


def _json_text_inside(value: Any, path: str = "") -> list[str]:
    """Paths of strings that are themselves JSON objects or arrays (JSON inside JSON)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _json_text_inside(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _json_text_inside(v, f"{path}[{i}]")]
    if isinstance(value, str) and value[:1] in "{[":
        try:
            json.loads(value)
            return [path]
        except ValueError:
            pass
    return []


def test_format_cpulist():
    assert format_cpulist((0, 1, 2, 3, 8, 10, 11)) == "0-3,8,10-11"
    assert format_cpulist(()) == ""


def test_xeon_silver_row(machine):
    info = collect_node_info(machine("32intel64-2p8co2t+8ve"))
    assert set(info) == set(NODE_KEYS)
    assert set(node_row(info)) >= set(NODES_SCHEMA.names)
    assert info["cpu_model"] == "Intel(R) Xeon(R) Silver 4108 CPU @ 1.80GHz" and info["vendor"] == "Intel"
    assert (info["sockets"], info["cores_per_socket"], info["threads_per_core"], info["logical_cpus"]) == (2, 8, 2, 32)
    assert (info["numa_nodes"], info["numa_node_ids"], info["physical_cores"]) == (2, [0, 1], 16)
    assert info["core_kinds"] == {"uniform": 16} and info["numa_warning"] is None
    assert (info["l1d_kib"], info["l2_kib"], info["l3_kib"]) == (32, 1024, 11264)
    assert info["memory_bytes"] == 97445600 * 1024
    assert {"avx2", "fma", "avx512f"} <= set(info["isa"]) and "amx_bf16" not in info["isa"]
    assert info["base_mhz"] == 1800.0
    # the model name's clock is no maximum /sys states: the theoretical peak is unknown
    assert info["peak_gflops_fp32"] is None and info["info"]["peak_assumption"].startswith("unknown")
    assert info["counters"] is None and info["hostname"] is None      # not probed on a snapshot
    d = info["info"]
    assert d["numa"] == {"0": "0-7,16-23", "1": "8-15,24-31"}
    l3 = [c for c in d["caches"] if c["level"] == 3][0]
    assert l3["instances"] == 2 and l3["shared_cpu_lists"] == ["0-7,16-23", "8-15,24-31"]
    row = conform([node_row(info)], NODES_SCHEMA).to_pylist()[0]
    assert json.loads(row["info_json"])["numa"] == d["numa"] and json.loads(row["core_kinds"]) == {"uniform": 16}
    assert row["numa_node_ids"] == [0, 1] and row["counters"] is None


@pytest.mark.slow
def test_opteron_row_counts_compute_units_once_for_the_peak(machine):
    info = collect_node_info(machine("64amd64-4s2n4ca2co"))
    assert info["vendor"] == "AMD" and info["cpu_model"] == "AMD Opteron(TM) Processor 6276"
    assert (info["sockets"], info["cores_per_socket"], info["numa_nodes"]) == (4, 16, 8)
    # no clock in the model name nor in /sys: /proc/cpuinfo's "cpu MHz" (2300, the current
    # clock) does not count, so the theoretical peak is unknown and says why
    assert info["base_mhz"] is None and info["peak_gflops_fp32"] is None
    assert "'cpu MHz' is the current clock, not a maximum" in info["info"]["peak_assumption"]


@pytest.mark.slow
def test_theoretical_peak_uses_the_maximum_clock_sys_states(machine, tmp_path):
    import shutil
    root = tmp_path / "m"
    shutil.copytree(machine("64amd64-4s2n4ca2co"), root)
    for cpu in range(64):
        f = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("2600000\n")
    info = collect_node_info(root)
    # two cores of a compute unit share one FPU: 32 FP units x 2.6 GHz x 16 FLOPs/cycle (AVX)
    assert info["peak_gflops_fp32"] == pytest.approx(32 * 2.6 * 16, rel=0.01)
    assert "32 FP units (64 cores sharing FPUs" in info["info"]["peak_assumption"]
    assert "maximum clocks from /sys" in info["info"]["peak_assumption"]


def test_flops_per_cycle_assumptions():
    assert flops_per_cycle_fp32(["avx2", "fma", "avx512f"], "Intel", "Intel(R) Xeon(R) Platinum 8480+") == 64
    assert flops_per_cycle_fp32(["avx2", "fma", "avx512f"], "AMD", "AMD EPYC 9654") == 32
    assert flops_per_cycle_fp32(["avx2", "fma"], "AMD", "AMD EPYC 7742") == 32
    assert flops_per_cycle_fp32(["sse4_2"], "Intel", "old") == 8


def test_this_node():
    doc = describe_node("/", ["cores:1", "node"])
    info = doc["node"]
    assert set(info) == set(NODE_KEYS)
    assert info["logical_cpus"] >= 1 and info["kernel"] and info["hostname"]
    assert info["counters"]["task-clock"].startswith("ok")
    assert set(info["counters"]) >= {"cycles", "instructions", "task-clock", "page-faults", "context-switches"}
    assert conform([node_row(info)], NODES_SCHEMA).num_rows == 1
    assert _json_text_inside(json.loads(json.dumps(doc, default=str))) == []
    assert doc["scopes"]["cores:1"]["threads"] == 1 and doc["cpus"] == sorted(doc["cpus"])
    text = format_node_info(doc)
    assert "counter task-clock" in text and "scope node" in text


def _cli(*args: str) -> subprocess.CompletedProcess:
    return hrvs("node-info", *args, cwd=REPO, timeout=120)


@pytest.mark.slow
def test_node_info_sysroot_json(tmp_path):
    """What cores:4 / socket / node will mean on a recorded machine, as plain nested JSON."""
    root, _ = snapshot("20em64t-hybrid-1p6c2t+2ca4co1t", tmp_path)
    out = _cli("--sysroot", str(root), "--scopes", "cores:4,cores:16,socket,node", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert _json_text_inside(doc) == []
    assert (doc["sockets"], doc["cores"], doc["numa_nodes"], doc["core_kinds"]) == (1, 14, [0],
                                                                                    ["performance", "efficiency"])
    c4 = doc["scopes"]["cores:4"]
    assert (c4["cpus"], c4["numa_nodes"], c4["core_kind"]) == ([0, 2, 4, 6], [0], "performance")
    assert doc["scopes"]["socket"]["core_kinds"] == {"performance": 6, "efficiency": 8}
    assert set(doc["scopes"]["cores:16"]) == {"unavailable"} and "one kind" in doc["scopes"]["cores:16"]["unavailable"]
    assert doc["node"]["counters"] is None and doc["node"]["hostname"] is None      # no live probes
    table = _cli("--sysroot", str(root), "--scopes", "cores:4")
    assert table.returncode == 0 and "scope cores:4" in table.stdout and "4 performance" in table.stdout


def test_node_info_sysroot_errors_are_one_line(tmp_path):
    out = _cli("--sysroot", str(tmp_path))
    assert out.returncode == 2 and out.stderr.startswith("hrvs-ray: error: cannot read topology: ")
    assert "Traceback" not in out.stderr
    out = _cli("--scopes", "cores:0")
    assert out.returncode == 2 and "unknown scope 'cores:0'" in out.stderr

"""Node description (the paper's Table 3) from recorded machines and from this node."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from hrvs_ray.probes.nodeinfo import collect_node_info, flops_per_cycle_fp32, format_cpulist, format_node_info
from hrvs_ray.store import NODES_SCHEMA, conform

FIXTURES = Path(__file__).parent / "fixtures" / "topologies"


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    def get(name: str) -> Path:
        dest = tmp_path_factory.mktemp(name.replace("+", "_"))
        with tarfile.open(FIXTURES / f"{name}.tar.gz") as tf:
            tf.extractall(dest, filter="data")
        return dest
    return get


def test_format_cpulist():
    assert format_cpulist((0, 1, 2, 3, 8, 10, 11)) == "0-3,8,10-11"
    assert format_cpulist(()) == ""


def test_xeon_silver_row(machine):
    info = collect_node_info(machine("32intel64-2p8co2t+8ve"))
    assert set(info) == set(NODES_SCHEMA.names)
    assert info["cpu_model"] == "Intel(R) Xeon(R) Silver 4108 CPU @ 1.80GHz" and info["vendor"] == "Intel"
    assert (info["sockets"], info["cores_per_socket"], info["threads_per_core"], info["logical_cpus"]) == (2, 8, 2, 32)
    assert info["numa_nodes"] == 2
    assert (info["l1d_kib"], info["l2_kib"], info["l3_kib"]) == (32, 1024, 11264)
    assert info["memory_bytes"] == 97445600 * 1024
    assert {"avx2", "fma", "avx512f"} <= set(info["isa"]) and "amx_bf16" not in info["isa"]
    assert info["base_mhz"] == 1800.0
    # Silver: one AVX-512 FMA unit -> 32 FP32 FLOPs/cycle; 16 cores x 1.8 GHz x 32
    assert info["peak_gflops_fp32"] == pytest.approx(921.6)
    assert info["counters"] is None and info["hostname"] is None      # not probed on a snapshot
    d = json.loads(info["info_json"])
    assert d["numa"] == {"0": "0-7,16-23", "1": "8-15,24-31"}
    l3 = [c for c in d["caches"] if c["level"] == 3][0]
    assert l3["instances"] == 2 and l3["shared_cpu_lists"] == ["0-7,16-23", "8-15,24-31"]
    assert conform([info], NODES_SCHEMA).num_rows == 1
    text = format_node_info(info)
    assert "2 x 8 x 2 = 32 logical CPUs" in text and "node 1" in text and "922 GFLOP/s" in text


def test_opteron_row(machine):
    info = collect_node_info(machine("64amd64-4s2n4ca2co"))
    assert info["vendor"] == "AMD" and info["cpu_model"] == "AMD Opteron(TM) Processor 6276"
    assert (info["sockets"], info["cores_per_socket"], info["numa_nodes"]) == (4, 8, 8)
    # the model name carries no clock: base stays unknown, the peak falls back to cpuinfo's
    # reported clock (2300 MHz here) and says so
    assert info["base_mhz"] is None
    assert info["peak_gflops_fp32"] == pytest.approx(32 * 2.3 * 16, rel=0.01)
    assert "cpuinfo 'cpu MHz'" in json.loads(info["info_json"])["peak_assumption"]
    assert "unknown" in format_node_info(info)


def test_flops_per_cycle_assumptions():
    assert flops_per_cycle_fp32(["avx2", "fma", "avx512f"], "Intel", "Intel(R) Xeon(R) Platinum 8480+") == 64
    assert flops_per_cycle_fp32(["avx2", "fma", "avx512f"], "AMD", "AMD EPYC 9654") == 32
    assert flops_per_cycle_fp32(["avx2", "fma"], "AMD", "AMD EPYC 7742") == 32
    assert flops_per_cycle_fp32(["sse4_2"], "Intel", "old") == 8


def test_this_node():
    info = collect_node_info("/")
    assert set(info) == set(NODES_SCHEMA.names)
    assert info["logical_cpus"] >= 1 and info["kernel"] and info["hostname"]
    counters = json.loads(info["counters"])
    assert counters["task-clock"].startswith("ok")
    assert set(counters) >= {"cycles", "instructions", "task-clock", "page-faults", "context-switches"}
    assert conform([info], NODES_SCHEMA).num_rows == 1
    assert "counter task-clock" in format_node_info(info)

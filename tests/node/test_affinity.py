"""Placement (thread env, affinity, NUMA binding), for real on this node (peak-RSS reset:
tests/probes/test_memory.py).

Placement changes process-wide state, so each check runs in a fresh interpreter.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPO


def _run(code: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, **(env or {})}, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_apply_placement_before_torch_overrides_inherited_env():
    cpu = min(os.sched_getaffinity(0))
    res = _run(f"""
        import json, os, sys
        from hrvs_ray.node.affinity import apply_placement, check_torch_threads
        from hrvs_ray.node.topology import ScopePlacement
        assert "torch" not in sys.modules
        a = apply_placement(ScopePlacement("cores:1", ({cpu},), 1, (), 0))
        import torch
        torch.set_num_threads(a.threads)
        n = check_torch_threads(a.threads)
        print(json.dumps(dict(cpus=a.cpus, threads=a.threads, numa=a.numa_binding, warnings=a.warnings,
                              torch_threads=n, env=[os.environ[v] for v in
                              ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")],
                              all_tasks=[sorted(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")])))
        """, env={"OMP_NUM_THREADS": "7", "MKL_NUM_THREADS": "7"})
    assert res["cpus"] == [cpu] and res["threads"] == 1 and res["torch_threads"] == 1
    assert res["env"] == ["1", "1", "1"] and res["warnings"] == []
    assert res["numa"] == "not bound: no NUMA node is known for these CPUs"
    assert all(mask == [cpu] for mask in res["all_tasks"])   # torch's threads inherited the mask


def test_apply_placement_node_scope_of_this_machine():
    if len(os.sched_getaffinity(0)) < (os.cpu_count() or 1):
        pytest.skip("this process may not use every CPU (taskset or a cpuset): the node scope is refused then, "
                    "as tests/node/test_topology.py::test_live_machine checks")
    res = _run("""
        import json
        from hrvs_ray.node.affinity import apply_placement
        from hrvs_ray.node.topology import read_topology, resolve_scope
        p = resolve_scope(read_topology("/"), "node")
        a = apply_placement(p)
        print(json.dumps(dict(want=p.cpus, got=a.cpus, nodes=p.numa_nodes, numa=a.numa_binding)))
        """)
    assert res["got"] == res["want"]
    nodes = sorted(int(d[4:]) for d in os.listdir("/sys/devices/system/node")
                   if d.startswith("node") and d[4:].isdigit())
    assert res["nodes"] == nodes                       # the node scope covers every node
    if len(nodes) == 1:                                # this development VM: nothing to bind
        assert res["numa"] == "not needed: 1 NUMA node"
        return
    if res["numa"].startswith("not bound: set_mempolicy failed: EPERM"):
        pytest.skip("set_mempolicy blocked here (seccomp): " + res["numa"])
    assert res["numa"] == "bind:" + ",".join(map(str, nodes))


def test_a_placement_that_refuses_binding_says_why():
    res = _run("""
        import json, os
        from hrvs_ray.node.affinity import apply_placement
        from hrvs_ray.node.topology import ScopePlacement
        cpu = min(os.sched_getaffinity(0))
        a = apply_placement(ScopePlacement("cores:1", (cpu,), 1, (), 0, numa_warning="NUMA data contradicts itself"))
        print(json.dumps(dict(numa=a.numa_binding, warnings=a.warnings)))
        """)
    assert res == {"numa": "not bound: NUMA data contradicts itself", "warnings": []}


@pytest.mark.slow
def test_torch_imported_first_is_flagged():
    res = _run("""
        import json, os, torch
        from hrvs_ray.node.affinity import apply_placement
        from hrvs_ray.node.topology import ScopePlacement
        cpus = tuple(sorted(os.sched_getaffinity(0)))
        a = apply_placement(ScopePlacement("node", cpus, len(cpus), (), None))
        print(json.dumps(dict(warnings=a.warnings)))
        """)
    assert res["warnings"] and "torch was imported before" in res["warnings"][0]


def test_bind_memory_syscall_for_real():
    """The set_mempolicy path itself, on node 0 of this machine, in a child (policy is per thread)."""
    res = _run("""
        import json
        from hrvs_ray.node.affinity import bind_memory
        print(json.dumps([bind_memory((0,)), bind_memory(()), bind_memory((4095,))]))
        """)
    if res[0].startswith("not bound: set_mempolicy failed: EPERM"):
        pytest.skip("set_mempolicy blocked here (seccomp): " + res[0])
    assert res[0] == "bind:0" and res[1] == "default"
    assert res[2].startswith("not bound: set_mempolicy failed: EINVAL")     # a node that does not exist


def test_unreachable_cpu_is_a_clear_error():
    res = _run("""
        import json
        from hrvs_ray.node.affinity import apply_placement, PlacementError
        from hrvs_ray.node.topology import ScopePlacement
        try:
            apply_placement(ScopePlacement("cores:1", (4000,), 1, (), 0))
        except PlacementError as e:
            print(json.dumps(str(e)))
        """)
    assert "cannot pin to CPUs [4000]" in res


def test_probes_that_run_before_torch_do_not_import_it():
    res = _run("""
        import json, sys
        import hrvs_ray.node.topology, hrvs_ray.node.affinity, hrvs_ray.probes.memory
        import hrvs_ray.probes.counters, hrvs_ray.node.description, hrvs_ray.probes.flops
        hrvs_ray.node.description.collect_node_info("/")
        print(json.dumps(sorted(m for m in ("torch", "ray") if m in sys.modules)))
        """)
    assert res == []

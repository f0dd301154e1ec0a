"""The node probe: what a node is and which CPUs each scope gets there. A plain function,
run on each node as a Ray task (``ray_io.discover_nodes``); no Ray import here."""
from __future__ import annotations

import os
import socket
from typing import Any

from ..node.placement import rank_placements
from ..node.topology import ScopeUnavailable, read_topology, resolve_scope
from ..scopes import ranks_of


def probe_node(scopes: list[str]) -> dict[str, Any]:
    """Describe this node and map each scope to CPUs (or say why it cannot be provided). A
    data-parallel ``N*SCOPE`` maps to the list of rank placements this node can hold
    (``node.placement.rank_placements``: disjoint CPU sets, one per rank)."""
    from ..node.description import collect_node_info
    from ..node.sysfs import TopologyError
    from .provenance import code_identity

    try:
        topo = read_topology("/")
        info = collect_node_info("/", topo=topo)
    except TopologyError as e:
        # The node is unusable, and every scope says why (the driver skips cells with the reason).
        reason = f"node unusable: {e}"
        return {"info": {"unusable": reason}, "placements": {s: reason for s in scopes},
                "hostname": socket.gethostname(), "pid": os.getpid(), "unusable": reason, "code": code_identity()}
    # Ray workers inherit the raylet's CPU mask: the node's cgroup cpuset or SLURM allocation.
    allowed = os.sched_getaffinity(0)
    placements: dict[str, Any] = {}
    for scope in scopes:
        try:
            placements[scope] = (rank_placements(topo, scope, allowed=allowed) if ranks_of(scope) > 1
                                 else resolve_scope(topo, scope, allowed=allowed))
        except ScopeUnavailable as e:
            placements[scope] = str(e)
    # the library baseline and each CPU set's ceiling, each in a short-lived process of its own
    from ..probes.ceiling import measure_node
    from ..train.library_baseline import measure_library
    # a rank's CPU set is its rank scope's: the ceilings are those of the single-rank scopes
    info.update(measure_node({s: p for s, p in placements.items() if not isinstance(p, list)}, measure_library))
    return {"info": info, "placements": placements, "hostname": socket.gethostname(), "pid": os.getpid(),
            "code": code_identity()}

"""Which node belongs to which cluster, and what each node can run. Pure: no ray import
(the driver passes in what ``ray.nodes()`` and the node probes returned)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..config import Sweep
from ..names import node_slug

CLUSTER_LABEL = "cluster"


@dataclass
class NodeView:
    ray_node_id: str
    hostname: str
    labels: dict[str, str]
    cpus: int
    memory_bytes: int
    info: dict[str, Any] = field(default_factory=dict)
    placements: dict[str, Any] = field(default_factory=dict)   # scope -> ScopePlacement | reason
    name: str = ""
    cluster: str | None = None
    gpus: int = 0                  # Ray's GPU resource on the node (cuda cells need one)
    code: dict[str, Any] = field(default_factory=dict)   # the hrvs-ray its workers import (provenance.code_identity)


_slug = node_slug  # a cluster name enters cell ids and folder names: the rule must not change


def name_nodes(nodes: list[NodeView]) -> None:
    """Hostnames where they are unique; several Ray nodes on one host get a node-id suffix."""
    counts = Counter(n.hostname for n in nodes)
    for n in nodes:
        n.name = n.hostname if counts[n.hostname] == 1 else f"{n.hostname}-{n.ray_node_id[:8]}"


def assign_clusters(nodes: list[NodeView], sweep: Sweep) -> list[str]:
    """Set ``node.cluster`` for every node; return notes about nodes left out.

    With ``clusters:`` in the sweep, a node joins the first cluster whose ``label`` equals its
    Ray label ``cluster`` or whose ``cpu_model`` is a substring of its CPU model; other nodes
    are not used. Without it, the label names the cluster and unlabelled nodes are grouped
    by CPU model."""
    notes = []
    for n in nodes:
        label = n.labels.get(CLUSTER_LABEL)
        model = str(n.info.get("cpu_model") or "")
        if sweep.clusters:
            for c in sweep.clusters:
                if (c.label is not None and label == c.label) or (c.cpu_model and c.cpu_model in model):
                    n.cluster = c.name
                    break
            else:
                notes.append(f"node {n.name} (label {label!r}, CPU {model!r}) "
                             "matches no cluster of the sweep; not used")
        else:
            n.cluster = label if label else _slug(model)
    return notes

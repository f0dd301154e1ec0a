"""What ``hrvs-ray node-info`` prints: what this node (or a recorded snapshot) offers and what
each scope would mean there -- the check a user makes before booking a machine.

Plain nested JSON throughout (no JSON text inside JSON). Top level: ``sockets``, ``cores``
(physical) and ``cpus`` that this job may use, ``numa_nodes`` (the ids of the memory nodes it may
use), ``core_kinds`` (names, fastest first) with ``core_kind_detail``, ``numa_warning``,
``allowed`` (the CPU / memory-node restrictions found and where), ``scopes`` (each scope ->
its placement, or ``{"unavailable": reason}``; a data-parallel scope ``R*SCOPE`` placed on this
node alone is the union of its ranks' CPUs, with ``ranks``: each rank's own placement) and
``node`` (the nodes-table description).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..scopes import parse_scope
from .description import collect_node_info
from .placement import rank_placements, resolve_scope, restrict
from .sysfs import format_cpulist
from .topology import read_topology
from .topology_types import ScopeUnavailable, Topology


def map_scope(topo: Topology, scope: str) -> dict[str, Any]:
    """One scope on this node: its placement as plain JSON (without the scope itself), or
    ``{"unavailable": reason}``; a data-parallel scope adds ``ranks``."""
    try:
        d = resolve_scope(topo, scope).to_dict()
        ranks = rank_placements(topo, scope) if parse_scope(scope).ranks > 1 else []
    except ScopeUnavailable as e:
        return {"unavailable": e.reason}
    d.pop("scope")
    if ranks:
        d["ranks"] = [{"rank": r, **p.to_dict()} for r, p in enumerate(ranks)]
    return d


def placement_text(p: dict[str, Any]) -> str:
    """A placement (``map_scope``'s form) in words: CPUs, core kinds, memory nodes."""
    kinds = ", ".join(f"{n} {k}" for k, n in p["core_kinds"].items())
    text = (f"CPUs {format_cpulist(p['cpus'])} ({kinds}), "
            f"memory nodes {format_cpulist(p['numa_nodes']) or 'not bound'}")
    return text + (f"; {p['numa_warning']}" if p.get("numa_warning") else "")


def describe_node(root: str | Path = "/", scopes: list[str] | tuple[str, ...] = ("socket", "node"),
                  llc_event: str = "generic") -> dict[str, Any]:
    """The node-info document. Live probes (perf events) run only for ``root="/"``; nothing is
    bound or pinned either way. Raises ValueError for a malformed scope and
    :class:`~.sysfs.TopologyError` when the topology cannot be read."""
    topo = read_topology(root)
    view = restrict(topo, topo.allowed_cpus) if topo.allowed_cpus is not None else topo
    mems = [n for n in topo.numa if topo.allowed_mems is None or n in topo.allowed_mems]
    used = {c.kind for c in view.cores}
    return {
        "root": str(root),
        "sockets": len(view.sockets), "cores": len(view.cores), "cpus": list(view.online),
        "numa_nodes": mems,
        "core_kinds": [k.name for k in topo.kinds if k.name in used],
        "core_kind_detail": [{"name": k.name, "cores": sum(1 for c in view.cores if c.kind == k.name),
                              "cpus": [c for c in k.cpus if c in set(view.online)], "basis": k.basis,
                              "evidence": k.evidence} for k in topo.kinds if k.name in used],
        "numa_warning": topo.numa_problem,
        "allowed": {"cpus": sorted(topo.allowed_cpus) if topo.allowed_cpus is not None else None,
                    "numa_nodes": sorted(topo.allowed_mems) if topo.allowed_mems is not None else None,
                    "sources": list(topo.allowed_sources)},
        "scopes": {s: map_scope(topo, s) for s in scopes},
        "node": collect_node_info(root, llc_event, topo=topo),
    }


def _gib(b: int | None) -> str:
    return f"{b / 2**30:.1f} GiB" if b else "unknown"


def _kib(k: int | None) -> str:
    return "-" if k is None else (f"{k // 1024} MiB" if k >= 1024 and k % 1024 == 0 else f"{k} KiB")


def _node_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    d = info.get("info") or {}
    rows = [
        ("host", info.get("hostname") or d.get("root") or "-"),
        ("CPU", f"{info.get('cpu_model') or 'unknown'} ({info.get('vendor') or 'unknown vendor'})"),
        ("sockets x cores x threads", f"{info.get('sockets')} x {info.get('cores_per_socket')} x "
                                      f"{info.get('threads_per_core')} = {info.get('logical_cpus')} logical CPUs"),
        ("base clock", f"{info['base_mhz']:.0f} MHz" if info.get("base_mhz") else "unknown"),
        ("ISA", " ".join(info.get("isa") or []) or "-"),
        ("caches", f"L1d {_kib(info.get('l1d_kib'))}, L2 {_kib(info.get('l2_kib'))}, L3 {_kib(info.get('l3_kib'))}"),
        ("memory", _gib(info.get("memory_bytes"))),
        ("NUMA nodes", str(info.get("numa_nodes") or "none reported")),
    ]
    rows += [(f"  node {n}", f"CPUs {cpus or '(none online)'}") for n, cpus in (d.get("numa") or {}).items()]
    rows += [(f"  L{c['level']} {c['type']}", f"{_kib(c['size_kib'])} x {c['instances']}, "
                                               f"shared by {c['cpus_per_instance']} CPU(s)")
             for c in d.get("caches") or []]
    rows += [(f"core kind {k['name']}", f"CPUs {k['cpus']} ({k['evidence']})") for k in d.get("core_kinds") or []]
    peak = info.get("peak_gflops_fp32")
    rows += [
        ("kernel", info.get("kernel") or "unknown"),
        ("perf_event_paranoid", "unknown" if info.get("perf_event_paranoid") is None
         else str(info["perf_event_paranoid"])),
        ("peak FP32 (theoretical estimate)", f"{peak:.0f} GFLOP/s ({d.get('peak_assumption', '')})" if peak
         else d.get("peak_assumption") or "unknown"),
    ]
    rows += [(f"counter {ev}", status) for ev, status in (info.get("counters") or {}).items()]
    return rows


def ceiling_text(c: dict[str, Any]) -> str:
    """One scope's measured ceiling (:mod:`.ceiling`) in words."""
    if "error" in c:
        return f"not measured: {c['error']}"
    return (f"fp32 {c['fp32_gflops']:.0f} GFLOP/s ({c['fp32_kernel']}), bf16 {c['bf16_gflops']:.0f} GFLOP/s "
            f"({c['bf16_kernel']}), {c['threads']} threads")


def format_node_info(doc: dict[str, Any]) -> str:
    """A readable table of :func:`describe_node`'s document."""
    rows = _node_rows(doc["node"])
    if doc.get("numa_warning"):
        rows.append(("NUMA warning", doc["numa_warning"]))
    allowed = doc.get("allowed") or {}
    if allowed.get("sources"):
        rows.append(("this job may use", f"CPUs {format_cpulist(doc['cpus'])}, memory nodes "
                                         f"{format_cpulist(doc['numa_nodes']) or '-'} "
                                         f"({'; '.join(allowed['sources'])})"))
    for scope, p in doc.get("scopes", {}).items():
        if "unavailable" in p:
            rows.append((f"scope {scope}", f"unavailable: {p['unavailable']}"))
            continue
        rows.append((f"scope {scope}", placement_text(p)))
        rows += [(f"  rank {r['rank']} ({r['scope']})", placement_text(r)) for r in p.get("ranks", [])]
        if scope in (doc.get("ceilings") or {}):
            rows.append(("  measured ceiling", ceiling_text(doc["ceilings"][scope])))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

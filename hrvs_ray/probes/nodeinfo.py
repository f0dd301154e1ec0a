"""This node's description (the paper's Table 3): one row of the ``nodes`` table.

Everything that comes from ``/sys`` and ``/proc`` is read under ``root``, so recorded
snapshots work too; the live-only parts (kernel release, hostname, which perf events open)
are filled only for ``root="/"``. No torch, no ray.

Peak FP32 estimate = physical cores x base GHz x FP32 FLOPs per cycle per core, where FLOPs
per cycle assume two FMA pipes of the widest vector ISA: AVX-512 = 2 x 16 lanes x 2 = 64,
AVX2+FMA = 2 x 8 x 2 = 32, AVX = 16 (8-wide add + 8-wide mul), otherwise SSE = 8. Known
exceptions from the vendors' data: Xeon Bronze/Silver have one AVX-512 FMA unit (32), and
AMD Zen 4 executes AVX-512 on 256-bit pipes (32). Turbo is ignored (base clock), so the real
peak under load is usually higher for few cores and lower for all-core AVX-512 runs. ``None``
when the base frequency is unknown.
"""
from __future__ import annotations

import json
import os
import re
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .topology import Topology, format_cpulist, read_topology

ISA_FLAGS = ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16", "asimd", "sve", "sve2", "bf16")

NODE_KEYS = ("node", "cluster", "hostname", "ray_node_id", "cpu_model", "vendor", "sockets", "cores_per_socket",
             "threads_per_core", "logical_cpus", "numa_nodes", "l1d_kib", "l2_kib", "l3_kib", "memory_bytes",
             "isa", "base_mhz", "kernel", "perf_event_paranoid", "counters", "peak_gflops_fp32", "collected_at",
             "info_json")

_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon", "CentaurHauls": "Centaur"}
_ARM_IMPLEMENTERS = {"0x41": "Arm", "0x46": "Fujitsu", "0x48": "HiSilicon", "0x4e": "NVIDIA", "0x51": "Qualcomm",
                     "0x61": "Apple", "0xc0": "Ampere"}



def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def base_mhz(root: Path, topo: Topology) -> float | None:
    """intel_pstate's ``base_frequency``, else the ``@ 2.10GHz`` in the model name. Not
    ``cpuinfo_max_freq`` (that is the turbo limit) nor ``cpu MHz`` (the current clock)."""
    cpu0 = topo.online[0] if topo.online else 0
    khz = _read(root / f"sys/devices/system/cpu/cpu{cpu0}/cpufreq/base_frequency")
    if khz and khz.isdigit():
        return int(khz) / 1000
    m = re.search(r"@\s*([0-9.]+)\s*GHz", topo.cpuinfo.get("model name", ""))
    return float(m.group(1)) * 1000 if m else None


def flops_per_cycle_fp32(isa: list[str], vendor: str | None, model: str) -> int:
    if "avx512f" in isa:
        if vendor == "AMD" or re.search(r"\b(Silver|Bronze)\b", model):
            return 32
        return 64
    if "avx2" in isa and "fma" in isa:
        return 32
    if "avx" in isa:
        return 16
    return 8


def _cache_summary(topo: Topology) -> tuple[dict[str, int | None], list[dict[str, Any]]]:
    sizes: dict[str, int | None] = {"l1d_kib": None, "l2_kib": None, "l3_kib": None}
    groups: dict[tuple[int, str, int], list[tuple[int, ...]]] = {}
    for c in topo.caches:
        groups.setdefault((c.level, c.type, c.size_kib), []).append(c.shared_cpus)
        key = {(1, "Data"): "l1d_kib", (2, "Unified"): "l2_kib", (3, "Unified"): "l3_kib"}.get((c.level, c.type))
        if key and sizes[key] is None:
            sizes[key] = c.size_kib               # size of one instance (per core for L1/L2)
    detail = [{"level": lvl, "type": typ, "size_kib": size, "instances": len(shared),
               "cpus_per_instance": max(len(s) for s in shared),
               "shared_cpu_lists": [format_cpulist(s) for s in shared]}
              for (lvl, typ, size), shared in sorted(groups.items())]
    return sizes, detail


def _kernel(root: Path) -> str | None:
    if root == Path("/"):
        return os.uname().release
    m = re.match(r"Linux version (\S+)", _read(root / "proc/version") or "")
    return m.group(1) if m else None


def _paranoid(root: Path) -> int | None:
    text = _read(root / "proc/sys/kernel/perf_event_paranoid")
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def collect_node_info(root: str | Path = "/", llc_event: str = "generic") -> dict[str, Any]:
    """One ``nodes`` row (keys of ``store.NODES_SCHEMA``); node/cluster/ray_node_id are left for
    the driver. ``llc_event`` is the cluster's LLC event, probed like the others."""
    root = Path(root)
    live = root == Path("/")
    topo = read_topology(root)
    ci = topo.cpuinfo
    vendor = _VENDORS.get(ci.get("vendor_id", ""), ci.get("vendor_id")) or \
        _ARM_IMPLEMENTERS.get(ci.get("CPU implementer", "").lower())
    model = ci.get("model name") or ci.get("Model name") or ci.get("cpu model") or ""
    model = re.sub(r"\s+", " ", model).strip() or None
    flags = set((ci.get("flags") or ci.get("Features") or "").split())
    isa = [f for f in ISA_FLAGS if f in flags]
    sockets = len(topo.sockets)
    per_socket = [len(topo.cores_of(s)) for s in topo.sockets]
    mhz = base_mhz(root, topo)
    fpc = flops_per_cycle_fp32(isa, vendor, model or "")
    clock, clock_source = mhz, "base clock"
    if clock is None:
        # VMs often expose no base frequency; the reported clock is then the best estimate
        # for a peak, and the assumption says so (base_mhz itself stays unknown).
        try:
            clock = float(topo.cpuinfo.get("cpu MHz", "")) or None
            clock_source = "cpuinfo 'cpu MHz' (reported clock; no base frequency exposed)"
        except ValueError:
            clock = None
    peak = len(topo.cores) * clock / 1000 * fpc if clock else None
    sizes, caches = _cache_summary(topo)
    counters = None
    if live:
        from .counters import probe_events  # noqa: PLC0415 - only the live node can be probed
        counters = probe_events(llc_event)

    info: dict[str, Any] = dict.fromkeys(NODE_KEYS)
    info.update(
        hostname=socket.gethostname() if live else None, cpu_model=model, vendor=vendor, sockets=sockets,
        cores_per_socket=max(per_socket, default=None), threads_per_core=topo.threads_per_core,
        logical_cpus=len(topo.online), numa_nodes=len(topo.numa) or None, **sizes,
        memory_bytes=topo.mem_total_bytes, isa=isa, base_mhz=mhz, kernel=_kernel(root),
        perf_event_paranoid=_paranoid(root), counters=json.dumps(counters) if counters is not None else None,
        peak_gflops_fp32=peak, collected_at=datetime.now(timezone.utc))
    detail = {k: v for k, v in info.items() if k not in ("info_json", "collected_at", "counters")}
    detail.update(
        root=str(root), counters=counters, collected_at=info["collected_at"].isoformat(),
        online_cpus=format_cpulist(topo.online), physical_cores=len(topo.cores),
        cores_by_socket={str(s): n for s, n in zip(topo.sockets, per_socket)},
        cpus_by_socket={str(s): format_cpulist([c for core in topo.cores_of(s) for c in core.cpus])
                        for s in topo.sockets},
        numa={str(n): format_cpulist(cpus) for n, cpus in topo.numa.items()},
        caches=caches, flops_per_cycle_fp32=fpc,
        peak_assumption=f"{len(topo.cores)} cores x {clock_source} x {fpc} FP32 FLOPs/cycle (widest ISA, "
                        f"2 FMA pipes unless known otherwise); turbo ignored")
    info["info_json"] = json.dumps(detail, sort_keys=True)
    return info


def format_node_info(info: dict[str, Any]) -> str:
    """A readable table for ``hrvs-ray node-info``."""
    d = json.loads(info["info_json"]) if info.get("info_json") else {}

    def gib(b: int | None) -> str:
        return f"{b / 2**30:.1f} GiB" if b else "unknown"

    def kib(k: int | None) -> str:
        return "-" if k is None else (f"{k // 1024} MiB" if k >= 1024 and k % 1024 == 0 else f"{k} KiB")
    rows = [
        ("host", info.get("hostname") or d.get("root") or "-"),
        ("CPU", f"{info.get('cpu_model') or 'unknown'} ({info.get('vendor') or 'unknown vendor'})"),
        ("sockets x cores x threads", f"{info.get('sockets')} x {info.get('cores_per_socket')} x "
                                      f"{info.get('threads_per_core')} = {info.get('logical_cpus')} logical CPUs"),
        ("base clock", f"{info['base_mhz']:.0f} MHz" if info.get("base_mhz") else "unknown"),
        ("ISA", " ".join(info.get("isa") or []) or "-"),
        ("caches", f"L1d {kib(info.get('l1d_kib'))}, L2 {kib(info.get('l2_kib'))}, L3 {kib(info.get('l3_kib'))}"),
        ("memory", gib(info.get("memory_bytes"))),
        ("NUMA nodes", str(info.get("numa_nodes") or "none reported")),
    ]
    for n, cpus in (d.get("numa") or {}).items():
        rows.append((f"  node {n}", f"CPUs {cpus or '(none online)'}"))
    for c in d.get("caches") or []:
        rows.append((f"  L{c['level']} {c['type']}", f"{kib(c['size_kib'])} x {c['instances']}, "
                                                      f"shared by {c['cpus_per_instance']} CPU(s)"))
    peak = info.get("peak_gflops_fp32")
    rows += [
        ("kernel", info.get("kernel") or "unknown"),
        ("perf_event_paranoid", "unknown" if info.get("perf_event_paranoid") is None
         else str(info["perf_event_paranoid"])),
        ("peak FP32 (estimate)", f"{peak:.0f} GFLOP/s ({d.get('peak_assumption', '')})" if peak else "unknown"),
    ]
    counters = json.loads(info["counters"]) if info.get("counters") else {}
    for ev, status in counters.items():
        rows.append((f"counter {ev}", status))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

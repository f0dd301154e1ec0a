"""This node's description (the paper's Table 3): one row of the ``nodes`` table.

Everything that comes from ``/sys`` and ``/proc`` is read under ``root``, so recorded
snapshots work too; the live-only parts (kernel release, hostname, which perf events open)
are filled only for ``root="/"``. No torch, no ray. The description holds plain nested values
(``counters`` and ``info`` are dicts); ``store.node_row`` turns them into JSON text columns.

Peak FP32 estimate (theoretical; "% of peak" uses the measured ceiling of :mod:`.ceiling`) =
sum over FP units of (GHz x FP32 FLOPs per cycle), where an FP unit is a physical core (or a
compute unit whose cores share one FPU, as the kernel's thread siblings say), the clock is each
unit's own maximum as /sys states it (``base_frequency``, else ``cpuinfo_max_freq``; unknown,
and the estimate with it, where /sys states none: VMs often do not), and FLOPs per cycle assume
two FMA pipes of the widest vector ISA: AVX-512 = 2 x 16 lanes x 2 = 64, AVX2+FMA = 2 x 8 x 2 = 32,
AVX = 16 (8-wide add + 8-wide mul), otherwise SSE = 8. Known exceptions from the vendors' data:
Xeon Bronze/Silver have one AVX-512 FMA unit (32), and AMD Zen 4 executes AVX-512 on 256-bit pipes (32).
``None`` when no clock is known.
"""
from __future__ import annotations

import os
import re
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .sysfs import optional_int, read_optional
from .topology import Topology, format_cpulist, read_topology

ISA_FLAGS = ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16", "asimd", "sve", "sve2", "bf16")

# The description's keys: store.NODES_SCHEMA's columns, with "info" (a dict) for "info_json".
NODE_KEYS = ("node", "cluster", "hostname", "ray_node_id", "cpu_model", "vendor", "sockets", "cores_per_socket",
             "threads_per_core", "logical_cpus", "numa_nodes", "l1d_kib", "l2_kib", "l3_kib", "memory_bytes",
             "isa", "base_mhz", "kernel", "perf_event_paranoid", "counters", "peak_gflops_fp32", "collected_at",
             "info", "physical_cores", "core_kinds", "numa_node_ids", "numa_warning", "unusable", "ceilings")

_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon", "CentaurHauls": "Centaur"}
_ARM_IMPLEMENTERS = {"0x41": "Arm", "0x46": "Fujitsu", "0x48": "HiSilicon", "0x4e": "NVIDIA", "0x51": "Qualcomm",
                     "0x61": "Apple", "0xc0": "Ampere"}


def _base_khz(root: Path, cpu: int) -> int | None:
    return optional_int(root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/base_frequency")


def base_mhz(root: Path, topo: Topology) -> float | None:
    """intel_pstate's ``base_frequency`` of the first CPU, else the ``@ 2.10GHz`` in the model
    name. Not ``cpuinfo_max_freq`` (the turbo limit) nor ``cpu MHz`` (the current clock)."""
    khz = _base_khz(root, topo.online[0]) if topo.online else None
    if khz:
        return khz / 1000
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


def _max_khz(root: Path, cpu: int) -> int | None:
    """The highest clock /sys states for ``cpu``: intel_pstate's base_frequency, else cpufreq's
    cpuinfo_max_freq. Never /proc/cpuinfo's "cpu MHz": that is the current clock, not a maximum."""
    return _base_khz(root, cpu) or optional_int(root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq")


def _peak(root: Path, topo: Topology, fpc: int) -> tuple[float | None, str]:
    """(GFLOP/s or None, how it was computed): a theoretical estimate, kept beside the measured
    ceiling (:mod:`.ceiling`), and only where /sys states every FP unit's maximum clock."""
    units = sorted({c.unit or c.cpus for c in topo.cores})
    khz = [_max_khz(root, u[0]) for u in units]
    shared = f" ({len(topo.cores)} cores sharing FPUs in pairs or more)" if len(units) < len(topo.cores) else ""
    what = f"{len(units)} FP units{shared} x "
    if units and all(khz):
        ghz = sum(k for k in khz if k) / 1e6
        return ghz * fpc, what + (f"their maximum clocks from /sys (base_frequency, else cpuinfo_max_freq; "
                                  f"sum {ghz:.1f} GHz) x {fpc} FP32 FLOPs/cycle")
    return None, ("unknown: /sys states no maximum clock (base_frequency, cpuinfo_max_freq) for every FP unit; "
                  "/proc/cpuinfo's 'cpu MHz' is the current clock, not a maximum")


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


def _torch_version() -> str | None:
    """From torch's package metadata: the probe must not import torch (it runs before placement)."""
    from importlib import metadata
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def _kernel(root: Path) -> str | None:
    if root == Path("/"):
        return os.uname().release
    m = re.match(r"Linux version (\S+)", read_optional(root / "proc/version") or "")
    return m.group(1) if m else None


def _identity(topo: Topology) -> tuple[str | None, str | None, list[str]]:
    """(vendor, model name, ISA flags of interest) from the first processor in cpuinfo."""
    ci = topo.cpuinfo
    vendor = _VENDORS.get(ci.get("vendor_id", ""), ci.get("vendor_id")) or \
        _ARM_IMPLEMENTERS.get(ci.get("CPU implementer", "").lower())
    model = ci.get("model name") or ci.get("Model name") or ci.get("cpu model") or ""
    flags = set((ci.get("flags") or ci.get("Features") or "").split())
    return vendor, re.sub(r"\s+", " ", model).strip() or None, [f for f in ISA_FLAGS if f in flags]


def _detail(root: Path, topo: Topology, caches: list[dict[str, Any]], fpc: int, assumption: str) -> dict[str, Any]:
    """The ``info`` part: what Table 3 has no column for."""
    return dict(
        root=str(root), online_cpus=format_cpulist(topo.online), physical_cores=len(topo.cores),
        cores_by_socket={str(s): len(topo.cores_of(s)) for s in topo.sockets},
        cpus_by_socket={str(s): format_cpulist([c for core in topo.cores_of(s) for c in core.cpus])
                        for s in topo.sockets},
        numa={str(n): format_cpulist(cpus) for n, cpus in topo.numa.items()}, numa_warning=topo.numa_problem,
        core_kinds=[{"name": k.name, "basis": k.basis, "evidence": k.evidence, "cpus": format_cpulist(k.cpus)}
                    for k in topo.kinds],
        allowed_cpus=format_cpulist(topo.allowed_cpus) if topo.allowed_cpus is not None else None,
        allowed_mems=format_cpulist(topo.allowed_mems) if topo.allowed_mems is not None else None,
        allowed_sources=list(topo.allowed_sources), caches=caches, flops_per_cycle_fp32=fpc,
        peak_assumption=f"{assumption} (widest ISA, 2 FMA pipes unless known otherwise)")


def collect_node_info(root: str | Path = "/", llc_event: str = "generic",
                      topo: Topology | None = None) -> dict[str, Any]:
    """One node description (:data:`NODE_KEYS`); node/cluster/ray_node_id are left for the driver.
    ``llc_event`` is the cluster's LLC event, probed like the others on the live node only.
    Raises :class:`~.sysfs.TopologyError` when the topology cannot be read."""
    root = Path(root)
    live = root == Path("/")
    topo = topo or read_topology(root)
    vendor, model, isa = _identity(topo)
    per_socket = [len(topo.cores_of(s)) for s in topo.sockets]
    mhz = base_mhz(root, topo)
    fpc = flops_per_cycle_fp32(isa, vendor, model or "")
    peak, assumption = _peak(root, topo, fpc)
    sizes, caches = _cache_summary(topo)
    counters = None
    detail = _detail(root, topo, caches, fpc, assumption)
    if live:
        from ..probes.counters import probe_events  # noqa: PLC0415 - only the live node can be probed
        counters = probe_events(llc_event)
        detail["torch_version"] = _torch_version()    # part of the node's identity for memory fits
    kinds: dict[str, int] = {}
    for c in topo.cores:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    info: dict[str, Any] = dict.fromkeys(NODE_KEYS)
    info.update(
        hostname=socket.gethostname() if live else None, cpu_model=model, vendor=vendor,
        sockets=len(topo.sockets), cores_per_socket=max(per_socket, default=None),
        threads_per_core=topo.threads_per_core, logical_cpus=len(topo.online), numa_nodes=len(topo.numa) or None,
        **sizes, memory_bytes=topo.mem_total_bytes, isa=isa, base_mhz=mhz, kernel=_kernel(root),
        perf_event_paranoid=optional_int(root / "proc/sys/kernel/perf_event_paranoid"), counters=counters,
        peak_gflops_fp32=peak, collected_at=datetime.now(timezone.utc),
        physical_cores=len(topo.cores), core_kinds=kinds, numa_node_ids=list(topo.numa),
        numa_warning=topo.numa_problem, info=detail)
    return info

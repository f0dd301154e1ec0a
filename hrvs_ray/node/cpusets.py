"""Which CPUs and which NUMA memory nodes this job may use.

Every source found is intersected:

* the cgroup cpuset: v2 (``cpuset.cpus.effective`` / ``cpuset.mems.effective``, from the job's
  cgroup up to the hierarchy root, the nearest that has them), v1 (``cpuset.effective_cpus``
  or ``cpuset.cpus``, same for mems; ``cpus`` / ``mems`` when mounted with ``noprefix``, as hwloc
  reads them) and the legacy ``cpuset`` filesystem (``cpus`` / ``mems``).
  The job's cgroup comes from ``/proc/self/cgroup`` (or ``/proc/self/cpuset``), the mount from
  ``/proc/self/mountinfo`` (whose root field handles a container that sees only its own
  sub-tree) or ``/proc/mounts``;
* ``/proc/self/status``: ``Cpus_allowed_list`` and ``Mems_allowed_list``;
* on the live node only, ``os.sched_getaffinity(0)`` (a SLURM or ``taskset`` mask).

Under a snapshot root every path is read inside the snapshot, so a recorded machine's cgroup
applies to it (hwloc's test snapshots carry theirs), and this machine's mask does not.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .sysfs import cpulist_at, format_cpulist, parse_cpulist, read_optional

# (cpus files, mems files) per hierarchy kind, the effective (most specific) name first
_V2 = (("cpuset.cpus.effective",), ("cpuset.mems.effective",))
_V1 = (("cpuset.effective_cpus", "cpuset.cpus"), ("cpuset.effective_mems", "cpuset.mems"))
_LEGACY = (("effective_cpus", "cpus"), ("effective_mems", "mems"))


@dataclass(frozen=True)
class Allowed:
    cpus: frozenset[int] | None          # None: nothing restricts them
    mems: frozenset[int] | None
    sources: tuple[str, ...]             # e.g. "cgroup v1 /sys/fs/cgroup/cpuset/job: cpus 0-3, mems 1"


@dataclass(frozen=True)
class _Mount:
    kind: str             # "v2" | "v1" | "v1-noprefix" | "legacy"
    point: str            # mount point, absolute inside the root
    base: str             # the hierarchy path mounted there ("/" unless a container sees a sub-tree)


def _mounts(root: Path) -> list[_Mount]:
    out = []
    info = read_optional(root / "proc/self/mountinfo")
    if info:
        for line in info.splitlines():
            pre, _, post = line.partition(" - ")
            f, g = pre.split(), post.split()
            # fields: id parent maj:min ROOT MOUNTPOINT options ... - FSTYPE source SUPEROPTIONS
            if len(f) >= 5 and len(g) >= 3 and (m := _mount(g[0], f[4], f[3], g[2])):
                out.append(m)
        return out
    for line in (read_optional(root / "proc/mounts") or "").splitlines():
        f = line.split()
        if len(f) >= 4 and (m := _mount(f[2], f[1], "/", f[3])):
            out.append(m)
    return out


def _mount(fstype: str, point: str, base: str, options: str) -> _Mount | None:
    if fstype == "cgroup2":
        return _Mount("v2", point, base)
    opts = options.split(",")
    if fstype == "cgroup" and "cpuset" in opts:
        # mounted with noprefix, a v1 cpuset hierarchy names its files as the legacy one did
        return _Mount("v1-noprefix" if "noprefix" in opts else "v1", point, base)
    if fstype == "cpuset":
        return _Mount("legacy", point, base)
    return None


def _own_cgroup(root: Path, kind: str) -> str | None:
    """This process's path in the v2 / v1-cpuset hierarchy."""
    for line in (read_optional(root / "proc/self/cgroup") or "").splitlines():
        hid, _, rest = line.partition(":")
        ctrls, _, path = rest.partition(":")
        if kind == "v2" and hid == "0" and ctrls == "":
            return path
        if kind != "v2" and "cpuset" in ctrls.split(","):
            return path
    if kind != "v2":
        return read_optional(root / "proc/self/cpuset")
    return None


def _cgroup_dir(root: Path, m: _Mount) -> Path | None:
    path = _own_cgroup(root, m.kind)
    if path is None:
        return None
    base = m.base.rstrip("/")
    rel = path[len(base):] if base and (path == base or path.startswith(base + "/")) else path
    return root / m.point.lstrip("/") / rel.lstrip("/")


def _first(d: Path, names: tuple[str, ...]) -> tuple[int, ...] | None:
    for name in names:
        cpus = cpulist_at(d / name)
        if cpus:              # an empty v1 file means "not configured here", not "nothing allowed"
            return cpus
    return None


def _from_cgroup(root: Path, m: _Mount) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None, str] | None:
    d = _cgroup_dir(root, m)
    if d is None:
        return None
    top = root / m.point.lstrip("/")
    names = {"v2": _V2, "v1": _V1, "v1-noprefix": _LEGACY, "legacy": _LEGACY}[m.kind]
    while True:       # v2: a cgroup without the cpuset controller inherits its parent's sets
        cpus, mems = _first(d, names[0]), _first(d, names[1])
        if cpus or mems or m.kind != "v2" or d == top or top not in d.parents:
            break
        d = d.parent
    if not cpus and not mems:
        return None
    shown = "/" + str(d.relative_to(root)) if d.is_relative_to(root) else str(d)
    what = ", ".join(f"{k} {format_cpulist(v)}" for k, v in (("cpus", cpus), ("mems", mems)) if v)
    return cpus, mems, f"cgroup {m.kind} {shown}: {what}"


def _status(root: Path) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    cpus = mems = None
    for line in (read_optional(root / "proc/self/status") or "").splitlines():
        key, _, value = line.partition(":")
        try:
            if key == "Cpus_allowed_list":
                cpus = parse_cpulist(value)
            elif key == "Mems_allowed_list":
                mems = parse_cpulist(value)
        except ValueError:
            continue
    return cpus, mems


def read_allowed(root: Path, live: bool) -> Allowed:
    """The intersection of every restriction found (see the module docstring)."""
    cpus: set[int] | None = None
    mems: set[int] | None = None
    sources: list[str] = []

    def narrow(c: tuple[int, ...] | set[int] | None, m: tuple[int, ...] | None, source: str) -> None:
        nonlocal cpus, mems
        if c:
            cpus = set(c) if cpus is None else cpus & set(c)
        if m:
            mems = set(m) if mems is None else mems & set(m)
        if c or m:
            sources.append(source)

    for m in _mounts(root):
        got = _from_cgroup(root, m)
        if got:
            narrow(got[0], got[1], got[2])
    c, m = _status(root)
    narrow(c, m, "/proc/self/status Cpus_allowed_list/Mems_allowed_list")
    if live and hasattr(os, "sched_getaffinity"):
        narrow(set(os.sched_getaffinity(0)), None, "sched_getaffinity")
    return Allowed(frozenset(cpus) if cpus is not None else None,
                   frozenset(mems) if mems is not None else None, tuple(sources))

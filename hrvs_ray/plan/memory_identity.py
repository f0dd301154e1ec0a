"""Which machine a memory fit belongs to, and whether it is this one. Pure: no torch, no ray.

A fit's bytes per pixel hold for the machine and software that measured them: another CPU
(caches, allocator behaviour), core count (torch's per-thread buffers), memory size or torch
version can change them. ``memory_fit.json`` therefore records each node's identity and a fit
is used only for a node whose identity matches: same CPU model (as ``/proc/cpuinfo``'s
"model name" gives it), same number of logical CPUs, same torch release (without a build label such as ``+cu130``),
memory within 5 %.
"""
from __future__ import annotations

import math
import os
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

IDENTITY_KEYS = ("cpu_model", "cores", "memory_bytes", "torch_version")
MEMORY_TOLERANCE = 0.05


def _clean(model: str | None) -> str | None:
    return re.sub(r"\s+", " ", model).strip() or None if model else None


def release(version: str | None) -> str | None:
    """A torch version without its local build label (``2.14.1+cu130`` -> ``2.14.1``): the
    package metadata read without importing torch does not always carry the label."""
    return version.split("+", 1)[0] if version else None


def torch_version() -> str | None:
    """The installed torch's release, read from its package metadata (torch is not imported)."""
    try:
        return release(metadata.version("torch"))
    except metadata.PackageNotFoundError:
        return None


def local_identity(root: Path = Path("/")) -> dict[str, Any]:
    """This machine's identity: /proc/cpuinfo's model name, online CPUs, MemTotal, torch."""
    model = None
    try:
        for line in (root / "proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model name", "cpu model"):
                model = _clean(value)
                break
    except OSError:
        pass
    mem = None
    try:
        m = re.search(r"^MemTotal:\s+(\d+)\s*kB", (root / "proc/meminfo").read_text(), re.M)
        mem = int(m.group(1)) * 1024 if m else None
    except OSError:
        pass
    return {"cpu_model": model, "cores": os.cpu_count(), "memory_bytes": mem, "torch_version": torch_version()}


def _value(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else v


def node_identity(info: dict[str, Any], torch: str | None = None) -> dict[str, Any]:
    """A node description's identity (``node.description``; a nodes.parquet row): torch from
    ``torch`` (the cells that ran there) or the description's ``info`` part."""
    detail = info.get("info") or {}
    cores, mem = _value(info.get("logical_cpus")), _value(info.get("memory_bytes"))
    return {"cpu_model": _clean(_value(info.get("cpu_model"))), "cores": None if cores is None else int(cores),
            "memory_bytes": None if mem is None else int(mem),
            "torch_version": release(torch or (detail.get("torch_version") if isinstance(detail, dict) else None))}


def results_identities(nodes: pd.DataFrame, cells: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """node -> identity, from a results folder's nodes and cells tables."""
    torch = {}
    if len(cells) and "torch_version" in cells:
        ok = cells.dropna(subset=["torch_version"])
        torch = ok.groupby("node")["torch_version"].agg(lambda v: sorted(set(v))[-1]).to_dict()
    return {str(r["node"]): node_identity(r.to_dict(), torch.get(r["node"])) for _, r in nodes.iterrows()}


def mismatch(fit: dict[str, Any] | None, here: dict[str, Any]) -> list[str]:
    """Why ``fit`` (a recorded identity) is not ``here``; empty when they match. An attribute
    unknown on either side is a mismatch: a fit is trusted only where it is known to apply."""
    if not fit:
        return ["no node identity recorded (a memory_fit.json from before identities were kept: delete it "
                "and plan --memory-from refits the folder's steps with them)"]
    why = []
    for key, name in (("cpu_model", "CPU model"), ("cores", "logical CPUs"), ("torch_version", "torch")):
        if fit.get(key) is None or here.get(key) is None:
            why.append(f"{name} unknown ({fit.get(key)!r} in the fit, {here.get(key)!r} here)")
        elif fit[key] != here[key]:
            why.append(f"{name} {fit[key]!r} in the fit, {here[key]!r} here")
    a, b = fit.get("memory_bytes"), here.get("memory_bytes")
    if not a or not b:
        why.append(f"memory unknown ({a!r} in the fit, {b!r} here)")
    elif abs(a - b) > MEMORY_TOLERANCE * b:
        why.append(f"memory {a / 2**30:.1f} GiB in the fit, {b / 2**30:.1f} GiB here (more than "
                   f"{MEMORY_TOLERANCE:.0%} apart)")
    return why

"""Running as (or beside) a Ray job: which cluster to use, where results may land, and whether
the driver and the cluster's workers run the same hrvs-ray.

Pure: no ray, no torch. ``ray job submit`` starts the entrypoint with ``RAY_ADDRESS`` set to
the job's cluster and with the job's runtime environment (``--working-dir`` becomes a
``gcs://_ray_pkg_<hash>.zip`` package in that cluster's GCS, unpacked on every node under
``<temp>/session_*/runtime_resources/working_dir_files/_ray_pkg_<hash>/``, the driver's
working directory) in ``RAY_JOB_CONFIG_JSON_ENV_VAR``. Ray deletes those folders with the
session, and every node has its own.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError

JOB_CONFIG_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"   # Ray's name for the job's injected config
PKG_PREFIX = "_ray_pkg_"


class JobPathError(UserError, ValueError):
    """A path the sweep would write sits inside a Ray job's temporary package directory."""


class VersionSkew(UserError, RuntimeError):
    """The cluster's workers would import another hrvs-ray than the driver runs."""


@dataclass(frozen=True)
class Address:
    """What ``ray_io.connect`` gets (None: start a private Ray) and why, in words."""
    target: str | None
    why: str


def choose_address(given: str | None, env: Mapping[str, str] | None = None) -> Address:
    """``--address`` wins ('local' always means a private Ray); without it, ``RAY_ADDRESS``
    names the cluster to join, as ``ray.init()`` reads it ('auto' makes Ray read it and
    switch token mode on as it does for ``ray.init()``); else a private Ray."""
    env = os.environ if env is None else env
    if given == "local":
        return Address(None, "--address local")
    if given:
        return Address(given, f"--address {given}")
    ray_address = env.get("RAY_ADDRESS", "").strip()
    if not ray_address:
        return Address(None, "no --address and RAY_ADDRESS is not set")
    if ray_address.startswith(("http://", "https://")):
        # `ray job submit` talks to the dashboard at such an address; ray.init cannot join it
        raise ConnectionError(f"RAY_ADDRESS={ray_address} names a Ray dashboard (what `ray job submit` talks to), "
                              f"not a cluster to join: set RAY_ADDRESS to the cluster's HOST:PORT (the GCS "
                              f"port, 6379 by default), or pass --address HOST:PORT or --address local")
    return Address("auto", f"RAY_ADDRESS={ray_address}")


def job_runtime_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The runtime environment of the Ray job this process is the entrypoint of ({} if none)."""
    env = os.environ if env is None else env
    try:
        cfg = json.loads(env.get(JOB_CONFIG_VAR) or "{}")
    except ValueError:
        return {}
    runtime_env = cfg.get("runtime_env") if isinstance(cfg, dict) else None
    return runtime_env if isinstance(runtime_env, dict) else {}


def job_package_dir(path: Path, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The Ray job package directory ``path`` lies in, or None. Two signs, either suffices:
    a folder ``runtime_resources/*/_ray_pkg_*`` above it (where Ray unpacks packages), or,
    for a job with a ``working_dir``, the working directory Ray started the entrypoint in."""
    path = _absolute(path, cwd)
    for parent in (path, *path.parents):
        if parent.name.startswith(PKG_PREFIX) and parent.parent.parent.name == "runtime_resources":
            return parent
    if job_runtime_env(env).get("working_dir"):
        here = _absolute(cwd or Path.cwd(), None)
        if path == here or here in path.parents:
            return here
    return None


def check_outside_job_package(out: Path, given: bool, cwd: Path | None = None,
                              env: Mapping[str, str] | None = None) -> None:
    """Refuse a results folder inside a job's temporary package directory: Ray deletes it
    with the session, and it exists on the job's node only."""
    pkg = job_package_dir(out, cwd, env)
    if pkg is None:
        return
    how = "--out" if given else "the default results folder (no --out given)"
    raise JobPathError(f"{how} {out} would land inside the Ray job's temporary package directory {pkg}, "
                       f"which Ray deletes when the session ends and which exists on one node only; "
                       f"pass --out on a shared path that outlives the job, e.g. --out /shared/hrvs/results/NAME")


def _absolute(p: Path, cwd: Path | None) -> Path:
    p = Path(p)
    if not p.is_absolute():
        p = (cwd or Path.cwd()) / p
    return Path(os.path.normpath(p))


def check_same_code(driver: Mapping[str, Any], workers: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise VersionSkew unless every node's workers import the hrvs-ray (version and
    revision) the driver runs. ``workers`` maps a node's name to what its probe reported:
    ``hrvs_ray_version``, ``git_revision``, ``package_dir``. A job's ``--working-dir`` that
    holds the source puts that copy first on the workers' path, whatever the driver imports."""
    want = (driver.get("hrvs_ray_version"), driver.get("git_revision"))
    bad = {name: w for name, w in workers.items() if (w.get("hrvs_ray_version"), w.get("git_revision")) != want}
    if not bad:
        return
    lines = "; ".join(f"node {name}: {_code(w)}" for name, w in sorted(bad.items()))
    raise VersionSkew(
        f"the cluster's workers would run another hrvs-ray than this driver ({_code(driver)}): {lines}. "
        f"Results would mix two codes; run the same hrvs-ray everywhere: submit with a --working-dir that "
        f"holds the source the driver imports (e.g. start it as `python -m hrvs_ray` from that folder), or "
        f"without the source in --working-dir, with the same version installed on every node")


def _code(w: Mapping[str, Any]) -> str:
    return (f"version {w.get('hrvs_ray_version')}, revision {w.get('git_revision') or 'unknown'}, "
            f"from {w.get('package_dir') or '?'}")

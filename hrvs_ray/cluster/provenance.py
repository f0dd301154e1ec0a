"""Where a result came from: container image and digest, scheduler job, source revision.

Pure (no torch, no ray). ``collect_provenance()`` returns a plain dict whose keys are
columns of ``store.CELLS_SCHEMA``; the cell runner merges it into every cell row, so a
number in a report can be traced back to the exact image, job and code that produced it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hrvs_ray import __version__
from hrvs_ray.fsutil import atomic_write_text, private_dir

PROVENANCE_KEYS = ("container_image", "container_digest", "in_container", "scheduler_job_id",
                   "scheduler_nodelist", "git_revision", "hrvs_ray_version", "python_version")

_PKG_DIR = Path(__file__).resolve().parents[1]   # the hrvs_ray package (this module lives in cluster/)
_CHUNK = 4 << 20


def collect_provenance(env: Mapping[str, str] | None = None, root: str | os.PathLike = "/") -> dict[str, Any]:
    """This process's provenance. ``env`` defaults to ``os.environ``; ``root`` is where
    ``/.singularity.d`` is looked for (a parameter so tests need not be inside a container)."""
    env = os.environ if env is None else env
    # Apptainer names its SIF itself; an OCI image cannot know its own name or digest, so
    # whoever starts it passes them in (apptainer/build-oci.sh, the KubeRay manifest)
    image = (env.get("APPTAINER_CONTAINER") or env.get("SINGULARITY_CONTAINER")
             or env.get("HRVS_CONTAINER_IMAGE") or None)
    return {
        "container_image": image,
        "container_digest": container_digest(image, env),
        "in_container": in_container(env, root),
        "scheduler_job_id": env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID") or env.get("PBS_JOBID") or None,
        "scheduler_nodelist": env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or None,
        "git_revision": git_revision(),
        "hrvs_ray_version": __version__,
        "python_version": platform.python_version(),
    }


def code_identity() -> dict[str, Any]:
    """Which hrvs-ray this process imports: version, revision, and the folder it comes from
    (a Ray job's --working-dir copy and an installed package may differ; see cluster/ray_job.py)."""
    return {"hrvs_ray_version": __version__, "git_revision": git_revision(), "package_dir": str(_PKG_DIR)}


def driver_identity() -> dict[str, Any]:
    """The ``driver_version`` and ``driver_revision`` columns of every cell the driver writes,
    next to the version and revision the cell's own process reported."""
    return {"driver_version": __version__, "driver_revision": git_revision()}


# Files an image of this tool carries: Apptainer's image metadata, and the file
# apptainer/Containerfile writes (Kubernetes runtimes leave no marker of their own). Not
# Docker's /.dockerenv or Podman's /run/.containerenv: a CI or development host that is itself
# a container has them, and a run there is not a run in the hrvs-ray image.
CONTAINER_MARKERS = (".singularity.d", "etc/hrvs-ray-image")


def in_container(env: Mapping[str, str] | None = None, root: str | os.PathLike = "/") -> bool:
    """True inside an hrvs-ray image: Apptainer/Singularity (it sets these variables) or a
    file of ``CONTAINER_MARKERS`` (which survive ``--cleanenv``)."""
    env = os.environ if env is None else env
    return bool(env.get("APPTAINER_CONTAINER") or env.get("SINGULARITY_CONTAINER")
                or any((Path(root) / m).exists() for m in CONTAINER_MARKERS))


def container_digest(image: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """``sha256:<hex>`` of the image file, or None when there is no image or it cannot be
    read from here (``APPTAINER_CONTAINER`` is a host path that may not be bound inside).

    The SLURM launcher hashes the SIF once per node on the host and passes the result as
    ``HRVS_CONTAINER_DIGEST``; that value wins. Otherwise the file is hashed here, at most
    once per node: an in-process cache plus a per-user cache file keyed by path, size,
    mtime and inode (a SIF is gigabytes; every cell asks)."""
    env = os.environ if env is None else env
    if not image:
        return None
    given = env.get("HRVS_CONTAINER_DIGEST")
    if given:
        return given
    if "@sha256:" in image:   # an OCI reference pinned by digest names its own digest
        return image.rsplit("@", 1)[1]
    try:
        st = os.stat(image)
    except OSError:
        return None
    return _digest_cached(os.path.abspath(image), st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=16)
def _digest_cached(path: str, size: int, mtime_ns: int, inode: int) -> str | None:
    key = hashlib.sha256(f"{path}\0{size}\0{mtime_ns}\0{inode}".encode()).hexdigest()[:32]
    cache = _cache_dir()
    cached = cache / f"{key}.sha256" if cache else None
    if cached is not None:
        try:
            text = cached.read_text().strip()
            if text.startswith("sha256:") and len(text) == 71:
                return text
        except OSError:
            pass
    try:
        digest = "sha256:" + sha256_file(path)
    except OSError:
        return None
    if cached is not None:
        try:
            atomic_write_text(cached, digest)  # concurrent cells on one node never see half a file
        except OSError:
            pass
    return digest


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks (images are gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _cache_dir() -> Path | None:
    """A per-user directory under the node's temp dir, or None if it is not ours alone."""
    return private_dir(os.environ.get("HRVS_DIGEST_CACHE_DIR") or tempfile.gettempdir(), "hrvs-ray-digests")


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """Revision of the hrvs-ray source that is running: ``git rev-parse HEAD`` (suffixed
    ``-dirty`` when tracked files differ) if the package sits in its own git checkout,
    else the revision apptainer/install.sh recorded in ``_build_info.json``, else None."""
    src = _PKG_DIR.parent
    # Only a checkout whose top level is the project itself: an installed copy under a
    # venv that happens to live inside some repository must not report that repository.
    if (src / "pyproject.toml").is_file() and (src / ".git").exists():
        rev = _git(src, "rev-parse", "HEAD")
        if rev:
            dirty = _git_status_dirty(src)
            return f"{rev}-dirty" if dirty else rev
        return None
    return build_info().get("git_revision")


def build_info(pkg_dir: str | os.PathLike = _PKG_DIR) -> dict[str, Any]:
    """What apptainer/install.sh recorded at install time ({} if nothing was)."""
    try:
        data = json.loads((Path(pkg_dir) / "_build_info.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _git_status_dirty(cwd: Path) -> bool:
    try:
        out = subprocess.run(["git", "-C", str(cwd), "diff", "--quiet", "HEAD", "--"],
                             capture_output=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 1

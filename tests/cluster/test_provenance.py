"""Provenance: container image + digest, scheduler job, source revision."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys

import pytest

import hrvs_ray
from hrvs_ray.cluster import provenance
from hrvs_ray.cluster.provenance import PROVENANCE_KEYS, collect_provenance, container_digest, in_container
from hrvs_ray.store import CELLS_SCHEMA
from tests.helpers import REPO


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HRVS_DIGEST_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    provenance._digest_cached.cache_clear()
    yield
    provenance._digest_cached.cache_clear()


@pytest.fixture
def fake_sif(tmp_path):
    p = tmp_path / "hrvs-ray.sif"
    p.write_bytes(b"SIF_MAGIC" + os.urandom(5 * 1024 * 1024))  # more than one 4 MiB read chunk
    return p


def test_keys_are_cells_schema_columns():
    prov = collect_provenance(env={}, root="/nonexistent")
    assert set(prov) == set(PROVENANCE_KEYS)
    assert set(PROVENANCE_KEYS) <= set(CELLS_SCHEMA.names)


def test_outside_container_and_scheduler(tmp_path):
    prov = collect_provenance(env={}, root=tmp_path)
    assert prov["in_container"] is False
    assert prov["container_image"] is None and prov["container_digest"] is None
    assert prov["scheduler_job_id"] is None and prov["scheduler_nodelist"] is None
    assert prov["hrvs_ray_version"] == hrvs_ray.__version__
    assert prov["python_version"] == platform.python_version()


def test_inside_apptainer_with_slurm(fake_sif, monkeypatch, tmp_path):
    monkeypatch.setenv("APPTAINER_CONTAINER", str(fake_sif))
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "node[01-04]")
    monkeypatch.delenv("HRVS_CONTAINER_DIGEST", raising=False)
    prov = collect_provenance(root=tmp_path)
    assert prov["in_container"] is True
    assert prov["container_image"] == str(fake_sif)
    assert prov["container_digest"] == "sha256:" + hashlib.sha256(fake_sif.read_bytes()).hexdigest()
    assert prov["scheduler_job_id"] == "4242"
    assert prov["scheduler_nodelist"] == "node[01-04]"


def test_singularity_variable_and_marker_directory(tmp_path):
    assert in_container({"SINGULARITY_CONTAINER": "/img.sif"}, root=tmp_path)
    assert not in_container({}, root=tmp_path)
    (tmp_path / ".singularity.d").mkdir()  # what --cleanenv cannot hide
    assert in_container({}, root=tmp_path)


def test_launcher_digest_wins_and_unreadable_image_is_none(tmp_path):
    env = {"APPTAINER_CONTAINER": "/not/bound/here.sif", "HRVS_CONTAINER_DIGEST": "sha256:" + "ab" * 32}
    assert container_digest(env["APPTAINER_CONTAINER"], env) == "sha256:" + "ab" * 32
    assert container_digest("/not/bound/here.sif", {}) is None
    assert container_digest(None, env) is None


def test_digest_computed_once_per_node(fake_sif, tmp_path):
    expected = "sha256:" + hashlib.sha256(fake_sif.read_bytes()).hexdigest()
    assert container_digest(str(fake_sif), {}) == expected
    cache_files = list((tmp_path / "cache").rglob("*.sha256"))
    assert len(cache_files) == 1 and cache_files[0].read_text() == expected
    assert (cache_files[0].parent.stat().st_mode & 0o777) == 0o700
    # A second process on the node (a fresh interpreter: no in-process cache) reads the
    # file instead of hashing: prove it by planting a different value in the cache file.
    planted = "sha256:" + "0" * 64
    cache_files[0].write_text(planted)
    code = ("from hrvs_ray.cluster.provenance import container_digest; import sys; "
            "print(container_digest(sys.argv[1], {}))")
    out = subprocess.run([sys.executable, "-c", code, str(fake_sif)], capture_output=True, text=True,
                         env={**os.environ, "HRVS_DIGEST_CACHE_DIR": str(tmp_path / "cache")}, cwd=REPO, check=True)
    assert out.stdout.strip() == planted


def test_changed_image_is_rehashed(fake_sif):
    first = container_digest(str(fake_sif), {})
    fake_sif.write_bytes(b"another image, another size")
    second = container_digest(str(fake_sif), {})
    assert second == "sha256:" + hashlib.sha256(b"another image, another size").hexdigest() != first


def test_cache_dir_owned_by_someone_else_is_not_trusted(tmp_path, monkeypatch):
    base = tmp_path / "shared"
    base.mkdir()
    d = base / f"hrvs-ray-digests-{os.getuid()}"
    d.mkdir(mode=0o777)
    os.chmod(d, 0o777)  # group/world writable: anyone could plant a digest
    monkeypatch.setenv("HRVS_DIGEST_CACHE_DIR", str(base))
    assert provenance._cache_dir() is None


def test_git_revision_from_build_info(tmp_path, monkeypatch):
    (tmp_path / "_build_info.json").write_text(json.dumps({"git_revision": "abc123-dirty"}))
    assert provenance.build_info(tmp_path)["git_revision"] == "abc123-dirty"
    assert provenance.build_info(tmp_path / "missing") == {}
    # An installed copy (no pyproject.toml / .git beside the package) reports the baked value.
    monkeypatch.setattr(provenance, "_PKG_DIR", tmp_path / "site-packages" / "hrvs_ray")
    monkeypatch.setattr(provenance, "build_info", lambda: {"git_revision": "abc123-dirty"})
    provenance.git_revision.cache_clear()
    try:
        assert provenance.git_revision() == "abc123-dirty"
    finally:
        provenance.git_revision.cache_clear()


def test_git_revision_of_a_checkout(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "hrvs_ray").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("[project]\nname='x'\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    try:
        subprocess.run([*git, "init", "-q"], check=True)
    except FileNotFoundError:
        pytest.skip("git not installed")
    subprocess.run([*git, "add", "pyproject.toml"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.setattr(provenance, "_PKG_DIR", repo / "hrvs_ray")
    provenance.git_revision.cache_clear()
    try:
        assert provenance.git_revision() == head
        (repo / "pyproject.toml").write_text("changed\n")
        provenance.git_revision.cache_clear()
        assert provenance.git_revision() == head + "-dirty"
    finally:
        provenance.git_revision.cache_clear()


def test_provenance_is_pure():
    code = ("import sys, hrvs_ray.cluster.provenance as p; p.collect_provenance(); "
            "bad = [m for m in ('torch', 'ray') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_the_oci_image_is_recognised_by_its_marker_not_by_any_container(tmp_path):
    for other in ("run/.containerenv", ".dockerenv"):   # a CI host may itself be a container
        (tmp_path / other).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / other).touch()
    assert not in_container({}, root=tmp_path)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hrvs-ray-image").write_text("written by apptainer/Containerfile")
    assert in_container({}, root=tmp_path)


def test_an_oci_image_identity_is_passed_in_at_run_time(tmp_path):
    ref = "registry.example.org/hrvs-ray@sha256:" + "cd" * 32
    prov = collect_provenance({"HRVS_CONTAINER_IMAGE": ref}, root=tmp_path)
    assert prov["container_image"] == ref and prov["container_digest"] == "sha256:" + "cd" * 32
    given = {"HRVS_CONTAINER_IMAGE": "localhost/hrvs-ray:ci", "HRVS_CONTAINER_DIGEST": "sha256:" + "ef" * 32}
    assert collect_provenance(given, root=tmp_path)["container_digest"] == "sha256:" + "ef" * 32
    assert collect_provenance({"HRVS_CONTAINER_IMAGE": "localhost/hrvs-ray:ci"}, root=tmp_path)[
        "container_digest"] is None   # a tag says nothing about the bits


def test_the_revision_is_read_for_the_package_not_the_module_folder():
    """provenance.py moved into cluster/: the package folder (where install.sh writes
    _build_info.json, and whose parent is the checkout) must still be hrvs_ray/ itself.
    Seen: every cell of an image recorded git_revision null after the move."""
    import subprocess
    from pathlib import Path

    import hrvs_ray
    from hrvs_ray.cluster.provenance import _PKG_DIR, git_revision
    assert _PKG_DIR == Path(hrvs_ray.__file__).resolve().parent
    repo = _PKG_DIR.parent
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0 or not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    git_revision.cache_clear()
    assert git_revision().removesuffix("-dirty") == head.stdout.strip()

"""Joining a token-protected Ray cluster: a missing or wrong token is named at once (exit 2),
not 20 s of Ray's InvalidAuthToken warning followed by 'cannot reach the Ray cluster'.

The slow tests start a real token-protected Ray head on 127.0.0.1 (its own temp dir, HOME and
ports; stopped by its process group, never by `ray stop`, which would stop every Ray of this
user on the machine) and run the CLI against it in a subprocess on the working-tree code."""
from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import yaml

from hrvs_ray.cluster import auth
from tests.helpers import (
    RAY_AUTH_VARS,
    free_port,
    hrvs,
    listening_sockets,
    process_group,
    ray_env,
    stop_group,
    tiny_sweep_dict,
)

RAY = Path(sys.executable).with_name("ray")
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


@pytest.fixture(scope="module")
def head():
    """A token-protected Ray head on 127.0.0.1; yields (address, token file, HOME)."""
    base = Path(tempfile.mkdtemp(prefix="hrvs-auth-", dir="/tmp"))  # short: Ray's socket paths
    home, token = base / "home", base / "token"
    home.mkdir()
    token.write_text(secrets.token_hex(32))
    port = free_port()
    cmd = [str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
           "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={base / 'ray'}",
           f"--ray-client-server-port={free_port()}", f"--dashboard-port={free_port()}",
           f"--dashboard-agent-listen-port={free_port()}"]
    env = ray_env(home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own group: the head's processes join it
    try:
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, out
        group = [p for p in psutil.process_iter() if process_group(p) == proc.pid]
        listening = {c.laddr.ip for p in group for c in listening_sockets(p)}
        assert listening and listening <= LOOPBACK, listening
        yield f"127.0.0.1:{port}", token, home
    finally:
        stop_group(proc.pid, str(base))
        shutil.rmtree(base, ignore_errors=True)


def _sweep(tmp_path: Path, address: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(tiny_sweep_dict(tmp_path), sort_keys=False))
    t0 = time.monotonic()
    r = hrvs("sweep", str(sweep), "--address", address, "--out", str(tmp_path / "r"), "--no-progress", "--no-report",
             cwd=tmp_path, env=env, timeout=60)
    return r, time.monotonic() - t0


def _assert_named_at_once(r: subprocess.CompletedProcess, elapsed: float, *words: str) -> None:
    assert r.returncode == 2, r.stderr
    for w in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN=", *words):
        assert w in r.stderr, (w, r.stderr)
    assert "cannot reach" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("InvalidAuthToken") <= 1, r.stderr  # Ray alone logs it 20 times
    assert elapsed < 15, elapsed  # Ray alone retries for 20 s


@pytest.mark.slow
def test_no_token_is_named_at_once(head, tmp_path):
    address, _, home = head
    r, elapsed = _sweep(tmp_path, address, ray_env(home))
    _assert_named_at_once(r, elapsed, "requires an authentication token", "RAY_AUTH_MODE is not set")


@pytest.mark.slow
def test_wrong_token_is_named_at_once(head, tmp_path):
    address, _, home = head
    wrong = tmp_path / "wrong-token"
    wrong.write_text(secrets.token_hex(32))
    r, elapsed = _sweep(tmp_path, address, ray_env(home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(wrong)))
    _assert_named_at_once(r, elapsed, "rejected the authentication token", str(wrong))


@pytest.mark.slow
def test_token_mode_with_no_token_file_is_named_at_once(head, tmp_path):
    address, _, home = head
    missing = tmp_path / "no-such-token"
    r, elapsed = _sweep(tmp_path, address, ray_env(home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(missing)))
    _assert_named_at_once(r, elapsed, "no Ray authentication token", str(missing))


JOIN = """
import sys, ray
from hrvs_ray.cluster import ray_io
ray_io.connect(sys.argv[1])
print(int(ray.cluster_resources()["CPU"]))
ray_io.shutdown()
"""


@pytest.mark.slow
def test_right_token_joins(head, tmp_path):
    address, token, home = head
    r = subprocess.run([sys.executable, "-c", JOIN, address], capture_output=True, text=True, cwd=tmp_path,
                       env=ray_env(home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token)), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "1"
    assert "InvalidAuthToken" not in r.stderr


@pytest.mark.slow
def test_unreachable_address_says_cannot_reach_quickly(tmp_path):
    r, elapsed = _sweep(tmp_path, f"127.0.0.1:{free_port()}", ray_env(tmp_path))
    assert r.returncode == 2, r.stderr
    assert "cannot reach the Ray cluster at" in r.stderr and "nothing accepts connections" in r.stderr, r.stderr
    assert elapsed < 20, elapsed  # Ray alone spends minutes on a closed port


# --- the pure parts, no Ray head ---------------------------------------------------------

@pytest.fixture
def clean_auth_env(monkeypatch, tmp_path):
    for k in RAY_AUTH_VARS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_token_source_follows_rays_lookup_order(clean_auth_env, monkeypatch):
    home = clean_auth_env
    assert auth.token_source("h:1") == (None, "RAY_AUTH_MODE is not set")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert auth.token_source("h:1") == (None, "RAY_AUTH_MODE is 'disabled', not 'token'")
    monkeypatch.setenv("RAY_AUTH_MODE", "TOKEN")  # Ray compares case-insensitively
    src, why = auth.token_source("h:1")
    assert src is None and "~/.ray/auth_token is missing or empty" in why
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("t0\n")
    assert auth.token_source("h:1")[0] == str(home / ".ray" / "auth_token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(home / "absent"))
    src, why = auth.token_source("h:1")
    assert src is None and "absent is not a readable, non-empty file" in why
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t1")  # the variable wins over the file, as in Ray
    assert auth.token_source("h:1")[0] == "the RAY_AUTH_TOKEN variable, which overrides RAY_AUTH_TOKEN_PATH"


def test_auto_uses_a_token_on_hand_without_auth_mode(clean_auth_env, monkeypatch):
    (clean_auth_env / ".ray").mkdir()
    (clean_auth_env / ".ray" / "auth_token").write_text("t0")
    assert auth.token_source("auto")[0] == str(clean_auth_env / ".ray" / "auth_token")
    assert auth.token_source("h:1")[0] is None  # an explicit address never turns token mode on


def test_split_address_and_closed_port():
    assert auth.split_address("10.0.0.1:6379") == ("10.0.0.1", 6379)
    assert auth.split_address("[::1]:6379") == ("::1", 6379)
    for bad in ("nohost", ":6379", "h:port"):
        with pytest.raises(ConnectionError, match="not HOST:PORT"):
            auth.split_address(bad)
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match="nothing accepts connections"):
        auth.check_reachable("127.0.0.1", free_port(), wait_s=1.0)
    assert time.monotonic() - t0 < 5

"""What the tests share, in one place: the checkout's paths, a tiny sweep, running the CLI on
this checkout, free ports, recorded machines, reading the report's HTML tables, a Ray head's
processes and the Apptainer definition. Fixtures are in conftest.py (fixtures only); the
generated inputs (results folders, bad datasets) and hwloc's independent answer are in
tests/fixtures/. Import as ``from tests.helpers import ...`` (the repository root is on
sys.path: pyproject's ``pythonpath``). tests/test_layout.py checks that no test file defines
one of these names again."""
from __future__ import annotations

import html as html_lib
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
from functools import cache
from pathlib import Path

import psutil
import pytest

# --- paths -------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]        # this checkout: what the tests test
SHARED = REPO.parent / "shared"                   # data too large for the repository, when present
MAME_CSV = SHARED / "data" / "mame" / "MAMe_dataset.csv"
FIXTURES = REPO / "tests" / "fixtures"
TOPOLOGIES = FIXTURES / "topologies"              # recorded machines (NAME.tar.gz) and hwloc's extras
HWLOC_DIR = TOPOLOGIES / "hwloc"


# --- a sweep ------------------------------------------------------------------------------------

def tiny_sweep_dict(tmp: Path, name: str = "tiny", **over) -> dict:
    """A sweep small enough for a unit test to train for real in seconds."""
    d = {
        "name": name,
        "dataset": {"kind": "synthetic", "path": str(tmp / "ds"), "subset": "train",
                    "synthetic": {"count": 24, "scale": 0.02, "seed": 1, "quality": 85},
                    "cache": str(tmp / "cache")},
        "input_sets": {"LR&FS": {"resize": "fixed", "size": [32, 32], "batch_size": 4},
                       "MR&VS": {"resize": "shorter_side", "size": 32, "batch_size": 2},
                       "HR&VS": {"resize": "none", "batch_size": 2}},
        "training": {"warmup_steps": 1, "steps": 2, "runs": 1, "seed": 7},
        "scopes": ["node"],
        "execution": {"cell_timeout_s": 300, "retries": 1},
    }
    for k, v in over.items():
        d[k] = v
    return d


# --- the command line, on this checkout ----------------------------------------------------------

def cli_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``base`` (default: this process's environment) with this checkout first on PYTHONPATH, so
    a subprocess imports the tree under test, not a copy of hrvs_ray installed in the venv."""
    env = dict(os.environ if base is None else base, **extra)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(REPO)]
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *rest])
    return env


def hrvs(*args: str, cwd: Path, timeout: float = 420, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess:
    """``python -m hrvs_ray.cli ARGS`` in ``cwd`` on this checkout (see ``cli_env``); output captured."""
    return subprocess.run([sys.executable, "-m", "hrvs_ray.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=cli_env(env))


def free_port() -> int:
    """A port no socket holds on any address: bound on the wildcard, which conflicts with a
    socket on any one address (a port free on 127.0.0.1 may be held on the host's address,
    where a Ray node that is not on loopback binds)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


# --- recorded machines -------------------------------------------------------------------------

def unpack_machine(name: str, dest: Path) -> Path:
    """tests/fixtures/topologies/NAME.tar.gz (a /sys + /proc snapshot) unpacked into ``dest``,
    which is its root."""
    with tarfile.open(TOPOLOGIES / f"{name}.tar.gz") as tf:
        tf.extractall(dest, filter="data")
    return dest


def snapshots(shared: Path = SHARED) -> list[tuple[str, Path, Path | None]]:
    """(name, archive, hwloc's answer or None) for every hwloc snapshot found: each
    ``*.tar.bz2`` of the shared ``data/topologies`` and ``data/topologies-more`` folders, plus the
    extra machines in ``fixtures/topologies/hwloc``; the answer is ``NAME.console`` beside the
    archive, else in ``fixtures/topologies/hwloc``, or ``NAME.xml``."""
    archives = [p for sub in ("topologies", "topologies-more")
                for p in sorted((shared / "data" / sub).glob("*.tar.bz2"))]
    archives += sorted(HWLOC_DIR.glob("*.tar.bz2"))
    out = []
    for a in archives:
        name = a.name[: -len(".tar.bz2")]
        answers = [d / f"{name}{ext}" for d in (a.parent, HWLOC_DIR) for ext in (".console", ".xml")]
        out.append((name, a, next((p for p in answers if p.is_file()), None)))
    return out


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack and return the snapshot root: the folder holding ``sys/`` (archives wrap it in a
    folder whose name need not match the archive's)."""
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="data")
    roots = [p.parent for p in dest.glob("*/sys")] + ([dest] if (dest / "sys").is_dir() else [])
    assert len(roots) == 1, f"{archive}: expected one folder holding sys/, found {roots}"
    return roots[0]


def snapshot(name: str, tmp: Path) -> tuple[Path, Path | None]:
    """(root of a fresh, editable copy of hwloc snapshot NAME, unpacked under ``tmp / NAME``,
    hwloc's answer); skips the test where the shared data is not present."""
    found = {n: (archive, answer) for n, archive, answer in snapshots()}
    if name not in found:
        pytest.skip(f"snapshot {name} not present (shared data under {SHARED / 'data'})")
    archive, answer = found[name]
    return unpack(archive, tmp / name), answer


# --- the report's HTML ------------------------------------------------------------------------

def section(html: str, title: str) -> str:
    """The HTML of one <section> by its h2 title."""
    m = re.search(rf'<section>\s*<h2 id="[^"]*">{re.escape(title)}</h2>(.*?)</section>', html, flags=re.S)
    assert m, title
    return m.group(1)


def table_rows(html: str, title: str, *, decode: bool = True) -> list[list[str]]:
    """The body rows of the first table under the h3 ``title``: each cell with its tags removed
    and its entities decoded (``decode=False`` keeps them, to check what the report escapes)."""
    m = re.search(rf'<h3 id="[^"]*">{re.escape(title)}</h3>.*?<tbody>(.*?)</tbody>', html, flags=re.S)
    assert m, title
    rows = [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
            for tr in re.findall(r"<tr>(.*?)</tr>", m.group(1), flags=re.S)]
    return [[html_lib.unescape(c) for c in r] for r in rows] if decode else rows


# --- a Ray head's processes ---------------------------------------------------------------------

RAY_AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def ray_env(home: Path, **auth_vars: str) -> dict[str, str]:
    """A clean environment: no auth variable but ``auth_vars``, a HOME without the
    machine's ~/.ray/auth_token, loopback-only Ray, the working-tree hrvs_ray first."""
    env = {k: v for k, v in os.environ.items() if k not in RAY_AUTH_VARS}
    env.update(HOME=str(home), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", PYTHONPATH=str(REPO), **auth_vars)
    return env


def stop_group(pgid: int, marker: str) -> None:
    """Stop a Ray node's processes: its process group, then any process naming its temp dir
    (never ``ray stop``, which would stop every Ray of this user on the machine)."""
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):  # nothing to flush
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
    for p in psutil.process_iter(["cmdline"]):  # a process that left the group still names the dir
        if any(marker in a for a in p.info["cmdline"] or []):
            p.kill()


def process_group(p: psutil.Process) -> int | None:
    try:
        return os.getpgid(p.pid)
    except OSError:
        return None


def listening_sockets(p: psutil.Process) -> list:
    try:
        return [c for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        return []


# --- the Apptainer definition -------------------------------------------------------------------

APPTAINER_DEF = REPO / "apptainer" / "hrvs-ray.def"
REQUIREMENTS = REPO / "apptainer" / "requirements.txt"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def parse_def(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(header keywords, section name -> body) of an Apptainer definition file."""
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = re.match(r"^%(\w+)\s*$", line)
        if m:
            assert m.group(1) not in sections, f"section %{m.group(1)} twice"
            current = sections.setdefault(m.group(1), [])
        elif current is not None:
            current.append(line)
        elif line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition(":")
            header[key.strip()] = value.strip()
    return header, {k: "\n".join(v) for k, v in sections.items()}


@cache
def apptainer_def() -> tuple[dict[str, str], dict[str, str]]:
    """(header, sections) of apptainer/hrvs-ray.def."""
    return parse_def(APPTAINER_DEF.read_text())


def code_lines(body: str) -> list[str]:
    return [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def pins() -> dict[str, str]:
    out = {}
    for line in REQUIREMENTS.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)$", line.strip())
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out

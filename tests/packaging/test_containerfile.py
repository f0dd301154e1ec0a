"""apptainer/Containerfile agrees with apptainer/hrvs-ray.def (same base, same install
script, same files, same pins) and CI builds and smoke-tests it. The build itself runs in CI
(.ci/run -> apptainer/build-oci.sh); it takes minutes and gigabytes, so not in pytest."""
from __future__ import annotations

import re

from tests.helpers import APPTAINER_DEF, REPO, THREAD_VARS, apptainer_def, code_lines, pins

HEADER, SECTIONS = apptainer_def()

CONTAINERFILE = REPO / "apptainer" / "Containerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_base_is_an_arg_defaulting_to_the_defs_pinned_base():
    ins = instructions()
    assert ins[0] == ("ARG", f"BASE_IMAGE={HEADER['From']}")
    assert ("FROM", "${BASE_IMAGE}") in ins
    assert "@sha256:" in HEADER["From"]


def test_it_copies_what_the_def_copies_and_runs_the_same_install_script():
    ins = instructions()
    copied = {w for k, v in ins if k == "COPY" for w in v.split()[:-1]}
    def_files = {ln.split()[0] for ln in code_lines(SECTIONS["files"])}
    assert copied == def_files, (copied, def_files)
    (run,) = [v for k, v in ins if k == "RUN"]
    assert re.search(r"bash /opt/hrvs-ray-src/apptainer/install\.sh /opt/hrvs-ray\b", run)
    assert 'HRVS_RAY_GIT_REVISION="$GIT_REVISION"' in run
    assert "linux-perf" in run and "pip install" not in run
    assert "/etc/hrvs-ray-image" in run   # what provenance.in_container recognises


def test_environment_and_labels():
    ins = instructions()
    env = " ".join(v for k, v in ins if k == "ENV")
    assert "PATH=/opt/hrvs-ray/bin:" in env
    for var in THREAD_VARS:
        assert var not in env
    labels = dict(re.findall(r"(\S+)=(\S+)", " ".join(v for k, v in ins if k == "LABEL")))
    p = pins()
    assert labels["hrvs-ray.torch"] == p["torch"] and labels["hrvs-ray.ray"] == p["ray"]
    def_labels = dict(ln.split(None, 1) for ln in code_lines(SECTIONS["labels"]))
    assert labels["hrvs-ray.version"] == def_labels["hrvs-ray.version"]


def test_ci_installs_the_tools_and_builds_and_smoke_tests_the_image():
    deps = (REPO / "apptainer" / "ci-system-deps.sh").read_text()
    assert re.search(r"^packages=\(.*\bbuildah\b.*\bdebootstrap\b.*\)$", deps, re.M)
    ci = code_lines((REPO / ".ci" / "run").read_text())
    build = [ln for ln in ci if "apptainer/build-oci.sh" in ln]
    assert build and "--debootstrap-base" in build[0] and "--no-smoke" not in build[0]
    assert not any("|| true" in ln for ln in build)   # a failed build or smoke test fails CI
    script = (REPO / "apptainer" / "build-oci.sh").read_text()
    assert "buildah bud --isolation chroot" in script and "hrvs-ray sweep smoke.yaml" in script
    assert str(APPTAINER_DEF.name) in CONTAINERFILE.read_text()

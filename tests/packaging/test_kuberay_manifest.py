"""apptainer/kuberay-rayjob.yaml is a RayJob KubeRay accepts, and its entrypoint is a command
hrvs-ray accepts. No Kubernetes here: the manifest is checked against KubeRay's RayJob CRD
(../shared/data/kuberay/, an OpenAPI v3 schema) with jsonschema, plus a walk that rejects
every key the schema does not name (a real API server prunes unknown keys silently, so a
misspelt one would be lost without an error)."""
from __future__ import annotations

import copy
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from hrvs_ray.cli import build_parser
from tests.helpers import REPO, SHARED

# report rendering / torch training: seconds per test, so out of the fast lane (README)
pytestmark = pytest.mark.slow

MANIFEST = REPO / "apptainer" / "kuberay-rayjob.yaml"
CRD = SHARED / "data" / "kuberay" / "ray.io_rayjobs.yaml"
IMAGE_SRC = "/opt/hrvs-ray-src"   # where the Containerfile puts the repository's sweeps


def _docs() -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}


@pytest.fixture(scope="module")
def schema() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


def unknown_keys(doc: Any, schema: dict, path: str = "") -> list[str]:
    """Every key in ``doc`` that ``schema`` does not declare, as a dotted path."""
    if isinstance(doc, list):
        return [k for i, item in enumerate(doc) for k in unknown_keys(item, schema.get("items", {}), f"{path}[{i}]")]
    if not isinstance(doc, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    props, extra = schema.get("properties"), schema.get("additionalProperties")
    bad = []
    for key, value in doc.items():
        if props is not None and key in props:
            bad += unknown_keys(value, props[key], f"{path}.{key}")
        elif isinstance(extra, dict):
            bad += unknown_keys(value, extra, f"{path}.{key}")
        elif props is not None or extra is False:
            bad.append(f"{path}.{key}")
    return bad


def check_rayjob(doc: dict, schema: dict) -> None:
    jsonschema.validate(doc, schema, cls=jsonschema.Draft7Validator)
    bad = unknown_keys(doc, schema)
    if bad:
        raise jsonschema.ValidationError(f"keys the RayJob CRD does not know: {', '.join(bad)}")


def test_the_manifest_is_a_valid_rayjob(schema):
    job = _docs()["RayJob"]
    assert job["apiVersion"] == "ray.io/v1"
    check_rayjob(job, schema)


@pytest.mark.parametrize("where", ["spec", "head_container", "worker_affinity"])
def test_a_misspelt_key_fails(schema, where):
    job = copy.deepcopy(_docs()["RayJob"])
    cluster = job["spec"]["rayClusterSpec"]
    if where == "spec":
        job["spec"]["shutdownAfterJobFinish"] = job["spec"].pop("shutdownAfterJobFinishes")
    elif where == "head_container":
        c = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
        c["volumeMount"] = c.pop("volumeMounts")
    else:
        aff = cluster["workerGroupSpecs"][0]["template"]["spec"]["affinity"]
        aff["podAntiAfinity"] = aff.pop("podAntiAffinity")
    with pytest.raises(jsonschema.ValidationError, match="Finish\\b|volumeMount\\b|podAntiAfinity"):
        check_rayjob(job, schema)


def test_a_wrong_type_fails(schema):
    job = copy.deepcopy(_docs()["RayJob"])
    job["spec"]["shutdownAfterJobFinishes"] = "yes"
    with pytest.raises(jsonschema.ValidationError):
        check_rayjob(job, schema)


def _hrvs_command() -> list[str]:
    """The hrvs-ray command of the entrypoint (a shell line: `cd DIR && hrvs-ray ...`)."""
    words = shlex.split(_docs()["RayJob"]["spec"]["entrypoint"])
    assert words[:3] == ["cd", "/hrvs", "&&"] and "&&" not in words[3:], words
    assert words[3] == "hrvs-ray", words
    return words[4:]


def _mounts(container: dict) -> dict[str, dict]:
    return {m["mountPath"]: m for m in container["volumeMounts"]}


def test_the_entrypoint_is_a_command_hrvs_ray_accepts():
    args = build_parser().parse_args(_hrvs_command())   # argparse exits on anything it rejects
    assert args.command == "sweep"
    assert args.sweep.startswith(IMAGE_SRC + "/")
    sweep_file = REPO / Path(args.sweep).relative_to(IMAGE_SRC)
    assert sweep_file.name == "full.yaml" and sweep_file.is_file()
    assert args.address is None   # joins the job's cluster (RAY_ADDRESS), not a private Ray
    cluster = _docs()["RayJob"]["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    mounts = _mounts(head)
    assert mounts[args.data]["readOnly"] is True                      # the dataset, read-only
    assert Path(args.out).is_relative_to("/hrvs") and "readOnly" not in mounts["/hrvs"]


def test_the_cluster_is_laid_out_for_the_node_scope():
    docs = _docs()
    spec = docs["RayJob"]["spec"]
    cluster = spec["rayClusterSpec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert cluster["authOptions"] == {"mode": "token", "secretName": "hrvs-ray-auth"}
    (workers,) = cluster["workerGroupSpecs"]
    pod = workers["template"]
    anti = pod["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert anti[0]["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    claims = {d["metadata"]["name"] for k, d in docs.items() if k == "PersistentVolumeClaim"}
    assert volumes["work"]["persistentVolumeClaim"]["claimName"] in claims
    assert volumes["mame"]["persistentVolumeClaim"]["readOnly"] is True
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    for group in (cluster["headGroupSpec"], workers):
        (c,) = group["template"]["spec"]["containers"]
        res = c["resources"]
        assert res["requests"] == res["limits"]                      # Guaranteed QoS
        assert str(res["limits"]["cpu"]).isdigit()                   # whole CPUs
        assert {m: _mounts(c)[m].get("readOnly", False) for m in ("/data/mame", "/hrvs", "/dev/shm")} == {
            "/data/mame": True, "/hrvs": False, "/dev/shm": False}
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["HRVS_CONTAINER_IMAGE"] == c["image"]             # what runs is what cells record

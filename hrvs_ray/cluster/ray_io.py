"""Everything the driver asks Ray: connect, discover and probe nodes, liveness, kill, and
what a Ray exception means. The only module of the driver that talks to Ray's runtime
(actors.py holds the code that runs on the nodes).
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any

from .failures import Failure, FailureKind, shorten
from .nodes import NodeView, name_nodes

log = logging.getLogger("hrvs_ray")

PROBE_TIMEOUT_S = 180.0


def _forbid_local_clustering() -> None:
    """Make a fresh local Ray bind to loopback only.

    Ray picks a loopback node IP only where it believes clustering is unsupported; it reads
    this switch when imported, so it is set in the environment before the import (it also
    reaches the raylet, GCS and workers we start) and, if Ray is already loaded, on the
    constant itself. Ray exposes no public setting for this: the private constant is touched
    here and nowhere else.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if "ray" in sys.modules:
        import ray._private.ray_constants as rc

        rc.ENABLE_RAY_CLUSTER = False


def connect(address: str | None) -> str:
    """Local default (None): a fresh, private Ray on loopback only, no dashboard, token
    authentication as Ray 2.60 enables it by default. With ``address`` (``auto`` or
    HOST:PORT) join that cluster. Returns the GCS address of the Ray now connected."""
    if address is None:
        _forbid_local_clustering()
        _leave_job_runtime_env()
    import ray

    if address is None:
        # "local" always starts a fresh Ray: never join a stray cluster left on this host.
        ray.init(address="local", include_dashboard=False, log_to_driver=False, num_cpus=os.cpu_count(),
                 logging_level=logging.WARNING, configure_logging=True)
    else:
        _join(ray, address)
    return str(ray.get_runtime_context().gcs_address)


def _leave_job_runtime_env() -> None:
    """A private Ray started inside a Ray job must not inherit the job's runtime environment.

    ``ray.init`` merges the job's runtime env (from the variable below, which ``ray job
    submit`` sets for its entrypoint) into every job it starts, even on a fresh local Ray.
    A ``--working-dir`` there is a ``gcs://_ray_pkg_<hash>.zip`` package that lives in the
    job's cluster, not in the private one: every worker of the private Ray then fails with
    "Failed to download runtime_env file package". RAY_ADDRESS would make the private Ray's
    own workers' ``ray.init`` calls look at the job's cluster. This process is ours: drop both.
    """
    from .ray_job import JOB_CONFIG_VAR

    for var in (JOB_CONFIG_VAR, "RAY_ADDRESS"):
        os.environ.pop(var, None)


def nodes_alive() -> int:
    import ray

    return sum(1 for n in ray.nodes() if n.get("Alive"))


def _join(ray: Any, address: str) -> None:
    """Join the cluster at ``address``; a missing or refused token, or an address where
    nothing listens, is a ConnectionError naming its cause at once (see auth.py), not 20 s of
    Ray retrying with a warning a second and then a generic "Failed to connect"."""
    from .auth import auth_error, is_auth_failure, precheck

    precheck(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as e:  # anything else propagates unchanged
        # The precheck passed but Ray still refused (a token changed in between, or an 'auto'
        # address Ray resolved differently): its ConnectionError hides the cause in a
        # traceback text, and its own AuthenticationError (no token at all) is no
        # ConnectionError, so the CLI would print a traceback.
        if is_auth_failure(e):
            raise auth_error(address, rejected=isinstance(e, ConnectionError)) from None
        raise


def shutdown() -> None:
    import ray

    ray.shutdown()


def discover_nodes(scopes: set[str]) -> list[NodeView]:
    """Alive nodes with CPUs, each probed on itself (hard affinity) for hardware and scopes."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .actors import probe_node

    alive = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
    probe = ray.remote(num_cpus=0, max_retries=0)(probe_node)
    refs = {n["NodeID"]: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(sorted(scopes)) for n in alive}
    # one deadline for all probes: k unreachable nodes cost one timeout, not k
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
    ready = set(ready)
    nodes = []
    for n in alive:
        ref = refs[n["NodeID"]]
        try:
            if ref not in ready:
                raise TimeoutError(f"no answer within {PROBE_TIMEOUT_S:.0f} s")
            got = ray.get(ref, timeout=10)
        except Exception as e:  # a node that cannot be probed is not used, and we say so
            log.warning("node %s: probe failed (%s); not used", n["NodeID"][:8], e)
            continue
        if got.get("unusable"):
            log.warning("node %s (%s): %s; not used", n["NodeID"][:8], got.get("hostname"), got["unusable"])
            continue
        nodes.append(NodeView(ray_node_id=n["NodeID"], hostname=got["hostname"], code=got.get("code", {}),
                              labels=dict(n.get("Labels") or {}), cpus=int(n["Resources"]["CPU"]),
                              memory_bytes=int(got["info"].get("memory_bytes") or 0),
                              info=got["info"], placements=got["placements"],
                              gpus=int(n["Resources"].get("GPU", 0))))
    name_nodes(nodes)
    return nodes


def alive_node_ids() -> set[str] | None:
    """Ids of the nodes Ray reports alive; None when the GCS itself does not answer."""
    import ray

    try:
        return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    except Exception:  # the GCS is unreachable: the caller treats its nodes as gone
        return None


def node_alive(node_id: str) -> bool:
    """False only when the GCS answers without the node: a GCS that misses one reply says
    nothing about the node, and declaring it lost would fail every cell queued for it."""
    alive = alive_node_ids()
    return alive is None or node_id in alive


def kill(actor: Any) -> None:
    import ray

    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already dead: nothing to free
        pass


def classify(exc: BaseException) -> Failure:
    """A failure cause in words a user can act on. Ray's generic actor-death text lists OOM
    among possible reasons, so only Ray's own OOM error (its memory monitor) counts as
    'out of memory'; a SIGKILL from elsewhere stays 'process died' with Ray's detail line."""
    import ray.exceptions as rex

    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    detail = next((ln for ln in lines if any(w in ln for w in ("exit", "SIG", "kill", "Kill", "crash"))),
                  lines[0] if lines else type(exc).__name__)
    if isinstance(exc, rex.OutOfMemoryError) or "memory monitor" in str(exc):
        return Failure(FailureKind.OUT_OF_MEMORY, detail)
    detail = shorten(detail)
    if isinstance(exc, (rex.NodeDiedError, rex.LocalRayletDiedError)):
        return Failure(FailureKind.NODE_LOST, detail)
    if isinstance(exc, (rex.ActorDiedError, rex.RayActorError, rex.WorkerCrashedError)):
        return Failure(FailureKind.PROCESS_DIED, detail)
    return Failure(FailureKind.DRIVER_ERROR, f"{type(exc).__name__}: {detail}")

"""The one module that talks to Ray: connect, discover and probe nodes, start the cell
hosts (actors), wait for and fetch their results, liveness, kill, and what a Ray exception
means. Every other module is plain Python: ``node_probe.probe_node`` and
``zygote_client.CellHost`` run on the nodes, and this module turns them into a Ray task and
Ray actors. Only this module and the token
probe (``auth.py``, for Ray's public exception type) import ``ray``; a test checks it.

Ray-private names: Ray has no public form for three things this tool needs. Each is used
in one function below, says why, and was checked against ``RAY_CHECKED_VERSION``; a test
fails when the installed Ray differs from the pinned one, so an upgrade re-checks them.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from .auth import auth_error, is_auth_failure, precheck
from .failures import Failure, FailureKind, shorten
from .nodes import NodeView, name_nodes
from .zygote_client import CellProcessDied, ZygoteError

log = logging.getLogger("hrvs_ray")

PROBE_TIMEOUT_S = 180.0
RAY_CHECKED_VERSION = "2.60.0"   # the private names below were read in this version's source


# --- Ray-private names (see the module docstring) ---------------------------------------

def _private_forbid_local_clustering() -> None:
    """Make a fresh local Ray bind to loopback only.

    Ray picks a loopback node IP only where it believes clustering is unsupported; it reads
    this switch when imported, so it is set in the environment before the import (it also
    reaches the raylet, GCS and workers we start) and, if Ray is already loaded, on the
    private constant ``ray._private.ray_constants.ENABLE_RAY_CLUSTER`` itself.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if "ray" in sys.modules:
        import ray._private.ray_constants as rc

        rc.ENABLE_RAY_CLUSTER = False


def _private_resolve_auto(address: str) -> str | None:
    """HOST:PORT that 'auto' names, as ``ray.init`` resolves it: Ray's own lookup (RAY_ADDRESS,
    then the last cluster started on this host) after Ray's own switch to token mode when
    RAY_AUTH_MODE is unset and a token is on hand, so the token probe sends what ``ray.init``
    will send. Private: ``ray._private.services.canonicalize_bootstrap_address`` and
    ``ray._private.authentication...maybe_enable_token_auth_if_token_available``."""
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    from ray._private.services import canonicalize_bootstrap_address

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    return canonicalize_bootstrap_address(address)


def _private_gcs_handshake(address: str) -> bool:
    """One GCS handshake, as ``ray.init`` makes, without its 20 retries: True when the cluster
    accepts this client, False when it refuses the client's token (or its lack of one),
    ConnectionError for any other failure. Ray has no public call that connects once; this
    uses the private ``ray._raylet.GcsClient`` (what Ray's own CLI uses to reach a cluster).
    A refusal logs Ray's InvalidAuthToken warning once, where ``ray.init`` logs it 20 times."""
    import ray._raylet
    from ray.exceptions import AuthenticationError

    try:
        client = ray._raylet.GcsClient(address=address)
    except AuthenticationError:
        return False
    except Exception as e:  # no GCS answers there within Ray's own timeouts
        first = str(e).splitlines()[0] if str(e) else repr(e)
        raise ConnectionError(f"no Ray GCS answered at {address}: {first}") from None
    del client  # the handshake was all we needed; ray.init opens its own
    return True


# --- connecting ---------------------------------------------------------------------------

def connect(address: str | None) -> str:
    """Local default (None): a fresh, private Ray on loopback only, no dashboard, token
    authentication as Ray 2.60 enables it by default. With ``address`` (``auto`` or
    HOST:PORT) join that cluster. Returns the GCS address of the Ray now connected."""
    if address is None:
        _private_forbid_local_clustering()
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
    precheck(address, _private_resolve_auto, _private_gcs_handshake)
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


def discover_nodes(scopes: set[str], failed: list[str] | None = None) -> list[NodeView]:
    """Alive nodes with CPUs, each probed on itself (hard affinity) for hardware and scopes;
    each probe that failed or timed out is added to ``failed``, in words."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .node_probe import probe_node

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
            if failed is not None:
                failed.append(f"node {n['NodeID'][:8]}: probe failed ({type(e).__name__}: {e}); not used")
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


def start_host(node_id: str, num_cpus: int, num_gpus: int, placement: Any, kernel_cache: str,
               process: str) -> Any:
    """A cell host (``zygote_client.CellHost``) as a Ray actor pinned to ``node_id`` (hard
    affinity: Ray's ``num_cpus`` is bookkeeping, the pin is what keeps cells on their node).
    It books the CPUs its cells run on for its lifetime, so Ray places nothing beside them.
    Never restarted by Ray: the driver decides. Two calls may run at once: ``stop_cell``
    must reach it while ``run`` waits for a cell."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .zygote_client import CellHost

    return (ray.remote(CellHost)
            .options(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0, max_task_retries=0, max_concurrency=2,
                     scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
            .remote(placement, kernel_cache, process))


def run_cell(host: Any, args: Sequence[Any]) -> Any:
    """Ask a host for one cell (``CellHost.run``); returns its ref."""
    return host.run.remote(*args)


def stop_cell(host: Any) -> None:
    """Ask a host to stop its running cell (a timeout); its ``run`` then ends once the
    cell's process is gone. Not waited for here: the driver waits for that ``run``."""
    host.stop_cell.remote()


def close_hosts(hosts: Sequence[Any], timeout_s: float = 60.0) -> None:
    """End hosts and wait for their zygotes to exit, then end the actors themselves (a host
    that does not answer in time is killed: Ray ends its worker's children with it)."""
    import ray

    refs = [h.close.remote() for h in hosts]
    if refs:
        try:
            ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        except Exception:  # a dead or lost host: killing it below is all that is left to do
            pass
    for h in hosts:
        kill_host(h)


def kill_host(host: Any) -> None:
    """End a host's actor now (its zygote and cells end with it)."""
    import ray

    try:
        ray.kill(host, no_restart=True)
    except Exception:  # already dead
        pass


def wait_one(refs: Sequence[Any], timeout_s: float) -> list[Any]:
    """Those of ``refs`` that are done: at most one, waiting at most ``timeout_s``."""
    import ray

    ready, _ = ray.wait(list(refs), num_returns=1, timeout=timeout_s)
    return ready


def fetch(ref: Any, timeout_s: float = 60.0) -> Any:
    """The result of a finished call (raises what the call or Ray raised)."""
    import ray

    return ray.get(ref, timeout=timeout_s)


def recheck_ceilings(ceilings: dict[str, dict], timeout_s: float = 180.0) -> dict[str, dict]:
    """Each node's ceilings measured again on the node (``probes.ceiling.recheck``: stored beside
    the first as ``after``, with their drift), by node id; nodes that do not answer in time are
    left out."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from ..probes.ceiling import recheck

    task = ray.remote(num_cpus=0, max_retries=0)(recheck)
    refs = {task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(c): n
            for n, c in ceilings.items()}
    try:
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        return {refs[r]: ray.get(r, timeout=10) for r in ready}
    except Exception as e:  # the sweep's results are written; the first ceilings stand alone
        log.warning("ceilings not re-measured after the sweep: %s", e)
        return {}


def classify(exc: BaseException) -> Failure:
    """A failure cause in words a user can act on. Ray's generic actor-death text lists OOM
    among possible reasons, so only Ray's own OOM error (its memory monitor) counts as
    'out of memory'; a SIGKILL from elsewhere stays 'process died' with Ray's detail line."""
    import ray.exceptions as rex

    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    detail = next((ln for ln in lines if any(w in ln for w in ("exit", "SIG", "kill", "Kill", "crash"))),
                  lines[0] if lines else type(exc).__name__)
    # Ray re-raises a call's exception as RayTaskError(<its class>): the words are in .cause
    cause = getattr(exc, "cause", None) or (exc if isinstance(exc, CellProcessDied) else None)
    if isinstance(cause, CellProcessDied):     # the forked cell died; its monitor said how
        return Failure(FailureKind.PROCESS_DIED, shorten(str(cause)))
    if isinstance(cause, ZygoteError):         # the host's zygote refused or could not start
        return Failure(FailureKind.PROCESS_DIED, shorten(f"the cell's zygote: {cause}"))
    if isinstance(exc, rex.OutOfMemoryError) or "memory monitor" in str(exc):
        return Failure(FailureKind.OUT_OF_MEMORY, detail)
    detail = shorten(detail)
    if isinstance(exc, (rex.NodeDiedError, rex.LocalRayletDiedError)):
        return Failure(FailureKind.NODE_LOST, detail)
    if isinstance(exc, (rex.ActorDiedError, rex.RayActorError, rex.WorkerCrashedError)):
        return Failure(FailureKind.PROCESS_DIED, detail)
    if cause is not None:     # an exception in the host's own code: its own words, not Ray's header
        return Failure(FailureKind.DRIVER_ERROR, shorten(f"{type(cause).__name__} in the cell's host: {cause}"))
    return Failure(FailureKind.DRIVER_ERROR, f"{type(exc).__name__}: {detail}")

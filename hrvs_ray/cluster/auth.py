"""Why joining a running Ray cluster fails, said at once.

``ray.init(address=...)`` retries a failed GCS handshake 20 times a second apart, and a token
the cluster rejects (or none at all) fails every try the same way: 20 s of Ray's C++
"InvalidAuthToken" warning, then a generic "Failed to connect". An address where nothing
listens costs far longer (each try waits for Ray's own connect timeouts). So before
``ray.init`` we check the address once: a plain TCP connect, then a single GCS handshake, and
turn a refusal into a message naming the cause and the variables that fix it.

Ray's client side of token authentication (Ray >= 2.52) reads, with an explicit address:
RAY_AUTH_MODE (a token is sent only when it is "token"), then the token from RAY_AUTH_TOKEN,
else the file named by RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token (checked against Ray 2.60).

The probe's two calls into Ray's private API (resolving 'auto', one GCS handshake) live in
``ray_io`` with every other private name; ``ray_io`` passes them to ``precheck``.
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError

REACH_WAIT_S = 5.0  # a head that is still starting gets this long to accept connections

FIX = ("set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH=FILE, the cluster's token file "
       "(or RAY_AUTH_TOKEN=TOKEN, which takes precedence over the file)")


class ClusterAuthError(UserError, ConnectionError):
    """The cluster demands a token this client does not send, or rejected the one it sent.
    A ConnectionError, so callers that only know 'could not join' still catch it; its text is
    complete and meant to be shown as is."""


def token_source(address: str | None) -> tuple[str | None, str]:
    """Where the token this client would send comes from, mirroring Ray's lookup order, as
    ``(source, why_none)``: ``source`` is None when no token will be sent, and ``why_none``
    then says why. ``address`` matters because Ray turns token mode on by itself for 'auto'
    when a token is on hand and RAY_AUTH_MODE is unset, never for an explicit HOST:PORT."""
    mode = os.environ.get("RAY_AUTH_MODE")
    env_token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    default = Path.home() / ".ray" / "auth_token"
    if env_token:
        found: str | None = "the RAY_AUTH_TOKEN variable" + (", which overrides RAY_AUTH_TOKEN_PATH" if path else "")
        missing = ""
    elif path:
        found, missing = (f"RAY_AUTH_TOKEN_PATH={path}", "") if _readable_token(Path(path)) else (
            None, f"RAY_AUTH_TOKEN_PATH={path} is not a readable, non-empty file")
    else:
        found, missing = (str(default), "") if _readable_token(default) else (
            None, "neither RAY_AUTH_TOKEN nor RAY_AUTH_TOKEN_PATH is set and ~/.ray/auth_token is missing or empty")
    if mode is None and address == "auto" and found:
        return found, ""
    if (mode or "").lower() != "token":
        return None, f"RAY_AUTH_MODE is {mode!r}, not 'token'" if mode else "RAY_AUTH_MODE is not set"
    return found, missing


def _readable_token(path: Path) -> bool:
    try:
        return bool(path.read_text().strip())
    except (OSError, UnicodeDecodeError):
        return False


def auth_error(address: str, rejected: bool, shown: str | None = None) -> ClusterAuthError:
    """The message for a token problem joining ``address`` (as the user gave it; ``shown``:
    the HOST:PORT it resolved to): ``rejected`` when the cluster refused the handshake, else
    the client has no token to send (found before contacting anyone)."""
    shown = shown or address
    source, why_none = token_source(address)
    if source is None:
        head = (f"the Ray cluster at {shown} requires an authentication token and this client sends none"
                if rejected else f"no Ray authentication token to join the cluster at {shown}")
        return ClusterAuthError(f"{head} ({why_none}); {FIX}")
    return ClusterAuthError(
        f"the Ray cluster at {shown} rejected the authentication token this client sent (from {source}): "
        f"it is not the cluster's token; {FIX}")


def check_reachable(host: str, port: int, wait_s: float = REACH_WAIT_S) -> None:
    """Raise ConnectionError unless something accepts TCP connections at ``host:port``
    within ``wait_s`` (Ray itself would spend many minutes on an address that is down)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.5, deadline - time.monotonic())):
                return
        except OSError as e:
            if time.monotonic() + 0.5 >= deadline:
                raise ConnectionError(f"nothing accepts connections at {host}:{port} "
                                      f"(tried for {wait_s:.0f} s: {e.strerror or e})") from None
            time.sleep(0.5)


def split_address(address: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [HOST]:PORT) into its parts; ConnectionError when malformed."""
    host, sep, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit():
        raise ConnectionError(f"{address!r} is not HOST:PORT")
    return host, int(port)


def precheck(address: str, resolve: Callable[[str], str | None], handshake: Callable[[str], bool]) -> None:
    """Fail fast, with the cause, before ``ray.init(address=...)`` would retry for 20 s:
    no token to send, nothing listening, or a token the cluster refuses.

    ``resolve`` ('auto' -> HOST:PORT as ``ray.init`` would resolve it, None when no cluster)
    and ``handshake`` (one GCS handshake: True accepted, False token refused, ConnectionError
    otherwise) need Ray's private API, which lives in ``ray_io`` alone; it passes them in."""
    if address.startswith("ray://"):
        return  # Ray Client speaks another protocol; ray.init reports its own errors
    target = address if address != "auto" else resolve(address)
    if target is None:
        return
    source, _ = token_source(address)
    if source is None and (os.environ.get("RAY_AUTH_MODE") or "").lower() == "token":
        raise auth_error(address, rejected=False, shown=target)  # Ray would refuse to try
    check_reachable(*split_address(target))
    if not handshake(target):
        raise auth_error(address, rejected=True, shown=target)


def is_auth_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (what ``ray.init`` raised) was caused by token authentication: Ray
    wraps the typed error in a RuntimeError carrying only its traceback as text."""
    from ray.exceptions import AuthenticationError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AuthenticationError) or "InvalidAuthToken" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False

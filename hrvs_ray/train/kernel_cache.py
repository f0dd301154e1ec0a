"""PyTorch's CPU kernel caches, set for a cell's process before torch is imported.

No torch import here: the variables are read once, when oneDNN and ideep start, so they
must be in the environment before ``import torch``. oneDNN keeps a compiled primitive per
new input shape (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, default 1024) and ideep keeps its
own (``LRU_CACHE_CAPACITY``); with varied shapes both grow RSS step after step (PyTorch
issue 32037). ``off`` sets them as the MAMe authors' HR&VS launcher does.
"""
from __future__ import annotations

import os
import sys

from ..errors import InternalError

CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")
SETTINGS = {"off": {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0", "LRU_CACHE_CAPACITY": "1"}}


class KernelCacheError(InternalError):
    """The setting cannot take effect in this process."""


def apply_kernel_cache(setting: str) -> dict[str, str]:
    """Set the environment of ``setting`` (``default``: both variables removed, so torch's
    own defaults hold even where the launching shell set them). Refused once torch is
    loaded: the caches are configured at its start, and a later change would be recorded
    but never take effect. Returns the variables now set."""
    if setting not in ("default", *SETTINGS):
        raise KernelCacheError(f"unknown kernel_cache setting {setting!r} (default | off)")
    wanted = SETTINGS.get(setting, {})
    if "torch" in sys.modules and kernel_cache_mismatch(setting):
        current = {k: os.environ.get(k) for k in CACHE_VARIABLES}
        raise KernelCacheError(f"kernel_cache {setting!r} needs a process that has not imported torch yet "
                               f"(torch is loaded; its caches were configured with {current})")
    for k in CACHE_VARIABLES:
        if k in wanted:
            os.environ[k] = wanted[k]
        else:
            os.environ.pop(k, None)
    return dict(wanted)


def kernel_cache_mismatch(setting: str) -> str | None:
    """Why this process's environment is not ``setting``'s (None when it is). A cell forked
    from a zygote checks it: the zygote set the variables before torch started, and the
    fork must carry exactly them."""
    wanted = SETTINGS.get(setting, {})
    current = {k: os.environ.get(k) for k in CACHE_VARIABLES}
    expected = {k: wanted.get(k) for k in CACHE_VARIABLES}
    if current == expected:
        return None
    return f"kernel_cache {setting!r} wants {expected}, but this process's torch started with {current}"

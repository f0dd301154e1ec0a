"""The node's library baseline: the file-backed pages a fresh process holds once it has
imported the training code and run one small step of it (the kernels' code pages are mapped
on first use). Measured once per node, in a fresh interpreter, by the node probe; the store
adds it to every step's anonymous peak (``probes.memory``), so a forked and a fresh cell of
the same spec read the same ``peak_rss_bytes``.

It lives with the training code, not with the probes, because the child imports the model,
the optimizer and the data code: the probes stay below them in the import layers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from ..probes.memory import file_backed, status_bytes

_LIBRARY_CHILD = "hrvs_ray.train.library_baseline"


def measure_library(timeout_s: float = 120.0) -> dict[str, Any]:
    """The node's library baseline, measured in a fresh interpreter: ``{"library_bytes",
    "anon_bytes", "seconds"}``, or ``{"error": why}``. Once per node (``probe_node``)."""
    cmd = [sys.executable, "-m", _LIBRARY_CHILD]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": f"library probe failed: {type(e).__name__}: {e}"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"library probe exited {done.returncode}: {tail}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _library_child() -> dict[str, Any]:
    """In a fresh interpreter: import what a cell imports, run one small step, read memory.
    fp32 and bf16, contiguous and channels-last: each maps its own kernels' code."""
    import time
    t0 = time.perf_counter()
    import torch

    from ..config.specs import NetworkSpec, OptimizerSpec

    # what a cell imports beside the model (mapped too): parquet rows, image decoding, the data code
    from ..data import inputs  # noqa: F401
    from ..store import schema  # noqa: F401
    from ..train.model import build_model, build_optimizer, train_step

    torch.set_num_threads(1)
    for precision, fmt in (("float32", "contiguous"), ("bfloat16", "channels_last")):
        model = build_model(NetworkSpec(), 0, "none", fmt).train()
        opt = build_optimizer(OptimizerSpec(), model)
        x = torch.zeros(2, 3, 64, 64)
        x = x.to(memory_format=torch.channels_last) if fmt == "channels_last" else x
        train_step(model, opt, [(x, torch.zeros(2, dtype=torch.long))], precision)
    st = status_bytes()
    return {"library_bytes": file_backed(st), "anon_bytes": st["RssAnon"],
            "seconds": round(time.perf_counter() - t0, 2), "torch_version": torch.__version__}


if __name__ == "__main__":
    print(json.dumps(_library_child()))

"""A measured compute ceiling: the GFLOP/s dense kernels reach on a scope's CPUs and threads.

"% of peak" against a theoretical estimate overclaims where the clock is unknown (VMs expose
none) and a step can read above 100 %. So, once per node per sweep and scope, fp32 and bf16
dense kernels run on the scope's CPU set with its thread count, with operands well beyond the
last-level cache: a plain matmul (MKL's path) and a 1x1 convolution in channels-last (oneDNN's
path; one library can be far from the other), each for a share of a time budget; the faster
is the ceiling, and which kernel it was is recorded. A 3x3 convolution is no ceiling: Winograd
style algorithms do fewer multiplications than the FLOPs counted for it.

Each scope runs in a short-lived process of its own (``python -m hrvs_ray.probes.ceiling``),
never inside a cell's process: it imports torch, sets its threads and affinity, and exits.
:func:`measure_scope` starts it; :func:`main` is the child.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

BUDGET_S = 2.5            # per scope, all four kernels together (the issue allows ~10 s)
# Operand sizes, largest first: the first is well beyond any LLC (matmul: 3 x 36 MiB fp32;
# conv: a 32 MiB fp32 input). A precision the CPU has no fast path for (bf16 without AVX512-BF16
# or AMX runs below 1 GFLOP/s) cannot do one large call within the budget: the largest size whose
# predicted time fits is used, and recorded.
MATMUL_SIZES = (3072, 2048, 1024, 512, 256)
CONV_SIZES = ((4, 512, 64, 64), (1, 512, 64, 64), (1, 512, 32, 32), (1, 256, 16, 16))
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def _rate(run: Callable[[], Any], flops: float, seconds: float) -> float:
    """GFLOP/s of ``run`` repeated for ``seconds`` after one untimed warm-up call (at least one
    timed call whatever the budget)."""
    run()
    n, t0 = 0, time.perf_counter()
    while True:
        run()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return flops * n / elapsed / 1e9


def _matmul(torch: Any, dtype: Any, n: int) -> tuple[str, Callable[[], Any], float]:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return f"matmul {n}x{n}", lambda: torch.mm(a, b), 2.0 * n ** 3


def _conv(torch: Any, dtype: Any, shape: tuple[int, int, int, int]) -> tuple[str, Callable[[], Any], float]:
    n, c, h, w = shape
    x = torch.randn(n, c, h, w).to(dtype).to(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(c, c, 1, bias=False).to(dtype).to(memory_format=torch.channels_last)
    return f"conv1x1 channels_last {n}x{c}x{h}x{w}", lambda: conv(x), 2.0 * n * h * w * c * c


def _fitted(build: Callable[[Any], tuple[str, Callable[[], Any], float]], sizes: tuple, seconds: float):
    """The kernel at the largest size one call of which is predicted to take at most half of
    ``seconds``: sizes are tried from the smallest up, each predicted from the last one timed."""
    chosen = build(sizes[-1])
    chosen[1]()                                   # first call: allocation and library set-up
    for size in reversed(sizes[:-1]):
        took = []
        for _ in range(2):                        # the faster of two: one may be preempted
            t0 = time.perf_counter()
            chosen[1]()
            took.append(time.perf_counter() - t0)
        rate = chosen[2] / max(min(took), 1e-9)
        candidate = build(size)
        if candidate[2] / rate > seconds / 2:
            break
        chosen = candidate
    return chosen


def run_kernels(threads: int, budget_s: float) -> dict[str, Any]:
    """In this process: the best kernel per precision (``{fp32_gflops, fp32_kernel, ...}``)."""
    import torch
    torch.set_num_threads(threads)
    out: dict[str, Any] = {"threads": threads, "affinity": sorted(os.sched_getaffinity(0))}
    share = budget_s / (2 * len(DTYPES))
    with torch.inference_mode():
        for short, name in DTYPES.items():
            dtype = getattr(torch, name)
            rates = {}
            for build, sizes in ((lambda n, dt=dtype: _matmul(torch, dt, n), MATMUL_SIZES),
                                 (lambda s, dt=dtype: _conv(torch, dt, s), CONV_SIZES)):
                kernel, run, flops = _fitted(build, sizes, share)
                rates[kernel] = _rate(run, flops, share)
            best = max(rates, key=rates.get)
            out[f"{short}_gflops"], out[f"{short}_kernel"] = round(rates[best], 1), best
            out[f"{short}_all"] = {k: round(v, 1) for k, v in rates.items()}
    return out


def measure_scope(cpus: list[int], threads: int, budget_s: float = BUDGET_S,
                  timeout_s: float = 120.0) -> dict[str, Any]:
    """Run the kernels in a fresh process pinned to ``cpus``; ``{"error": why}`` when it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "hrvs_ray.probes.ceiling", "--threads", str(threads), "--budget", str(budget_s)]
    try:
        # pinned before exec, so torch's pools start on the scope's CPUs only
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env,
                              preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": f"ceiling probe failed: {type(e).__name__}: {e}", "cpus": list(cpus)}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"ceiling probe exited {done.returncode}: {tail}", "cpus": list(cpus)}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "cpus": list(cpus)}


def measure_placements(placements: dict[str, Any], budget_s: float = BUDGET_S) -> dict[str, dict[str, Any]]:
    """scope -> ceiling, for every scope that has a placement (a ScopePlacement, not a reason)."""
    return {scope: measure_scope(list(p.cpus), p.threads, budget_s)
            for scope, p in sorted(placements.items()) if hasattr(p, "cpus")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="one compute-ceiling measurement (run by measure_scope)")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--budget", type=float, default=BUDGET_S)
    args = ap.parse_args(argv)
    print(json.dumps(run_kernels(args.threads, args.budget)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

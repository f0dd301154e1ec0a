"""A measured compute ceiling: the best counted rate of the network's own kernels on a CPU set.

"% of peak" against a theoretical estimate overclaims where the clock is unknown (VMs expose
none), and a ceiling of other kernels than the network's is no ceiling: ResNet18 spends most of
its time in 3x3 convolutions, which run faster than a matmul or a 1x1 convolution on oneDNN
(measured on a 2-vCPU EPYC VM: 3x3 conv 217, matmul 179, 1x1 conv 181 GFLOP/s), so steps read
124-139 % of a ceiling that left them out. Here the kernels are the network's: 3x3
convolutions at ResNet18's four channel counts and feature-map sizes (contiguous, as the
paper's setup runs, and one in channels-last), a 1x1 convolution in channels-last and a plain
matmul (MKL's path), in fp32 and bf16. Each kernel's rate is counted as a step's FLOPs are
(``2 x N x H x W x Cin x Cout x k x k``: a Winograd-style algorithm that does fewer
multiplications shows as a higher counted rate, in the ceiling as in the steps), forward only,
and the fastest kernel of each precision is the ceiling, named.

Stable, not lucky: each kernel is timed in runs of ``RUN_S`` until its best three runs agree
within ``AGREE`` (3 %) or its time cap ends; the spread of the best three is recorded. Quiet:
the CPU time other processes took on the CPU set meanwhile (``/proc/stat`` per CPU less this
process's own CPU time) is recorded, and scopes on the same CPUs share one measurement
(:func:`measure_placements`); measurements on one host take turns (a host-wide lock), so nodes
sharing a host never measure beside each other. bf16 without a fast path (no AVX512-BF16 or
AMX) is emulated ~10x slower: its operands shrink to fit a run and its caps are shorter.

Each CPU set runs in a short-lived process of its own (``python -m hrvs_ray.probes.ceiling``),
never inside a cell's process: it imports torch, sets its threads and affinity, and exits.
:func:`measure_scope` starts it; :func:`main` is the child. :func:`recheck` measures again after
the node's last cell and :func:`drift` compares the two.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

RUN_S = 0.08              # one timed run: calls repeated for at least this long
AGREE = 0.03              # best three runs within 3 %: the kernel's rate is stable
CAP_S = {"fp32": 0.8, "bf16": 0.35}        # per kernel, once its operand size is chosen
TOTAL_CAP_S = {"fp32": 7.0, "bf16": 2.5}   # per precision: kernels past it are skipped, and say so
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}
# ResNet18's 3x3 convolutions: channels and the feature map of a 224x224 image times two (the
# HR&VS and MR&VS inputs are larger than 224: their maps are larger still); sizes to try,
# largest first (batch, then a smaller map for emulated bf16): the largest whose call fits
# half a run is used
CONV3_SHAPES = ((64, 112), (128, 56), (256, 28), (512, 14))
SIZES = ((8, 1), (4, 1), (2, 1), (1, 1), (1, 2), (1, 4))     # (batch, map divisor)
MATMUL_SIZES = (2048, 1024, 512, 256, 128)


def _matmul(torch: Any, dtype: Any, n: int) -> tuple[str, Callable[[], Any], float]:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return f"matmul {n}x{n}", lambda: torch.mm(a, b), 2.0 * n ** 3


def _conv(torch: Any, dtype: Any, k: int, c: int, hw: int, n: int,
          channels_last: bool) -> tuple[str, Callable[[], Any], float]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(n, c, hw, hw).to(dtype).to(memory_format=fmt)
    conv = torch.nn.Conv2d(c, c, k, padding=k // 2, bias=False).to(dtype).to(memory_format=fmt)
    name = f"conv{k}x{k}{' channels_last' if channels_last else ''} {n}x{c}x{hw}x{hw}"
    return name, lambda: conv(x), 2.0 * n * hw * hw * c * c * k * k


def kernels(torch: Any, dtype: Any) -> list[tuple[str, list[Callable[[], tuple[str, Callable[[], Any], float]]]]]:
    """Each kernel family with its sizes, largest first (built lazily: operands only when tried)."""
    def conv(k: int, c: int, hw: int, cl: bool) -> list[Callable[[], tuple[str, Callable[[], Any], float]]]:
        return [lambda n=n, d=d: _conv(torch, dtype, k, c, hw // d, n, cl) for n, d in SIZES]

    # likeliest winners first: a precision's time cap skips the last ones (and says which)
    fams = [("conv3x3 channels_last 128ch", conv(3, 128, 56, True))]
    fams += [(f"conv3x3 {c}ch", conv(3, c, hw, False)) for c, hw in CONV3_SHAPES]
    fams.append(("matmul", [lambda s=s: _matmul(torch, dtype, s) for s in MATMUL_SIZES]))
    fams.append(("conv1x1 channels_last 256ch", conv(1, 256, 56, True)))
    return fams


def _call_s(run: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def _fitted(sizes: list[Callable[[], tuple[str, Callable[[], Any], float]]]) -> tuple[str, Callable[[], Any], float]:
    """The largest size whose one call is predicted to take at most half a run: from the
    smallest up, each predicted from the one before (the faster of two calls: one may be
    preempted). bf16 without a fast path thus runs small operands instead of one huge call."""
    chosen = sizes[-1]()
    chosen[1]()                                   # first call: allocation and library set-up
    for build in reversed(sizes[:-1]):
        rate = chosen[2] / max(min(_call_s(chosen[1]) for _ in range(2)), 1e-9)
        candidate = build()
        if candidate[2] / rate > RUN_S / 2:
            break
        chosen = candidate
        chosen[1]()                               # its own set-up, untimed
    return chosen


def best_three_spread(rates: list[float]) -> float:
    """(max - min) / max over the three highest rates (all of them when fewer)."""
    top = sorted(rates)[-3:]
    return (top[-1] - top[0]) / top[-1] if top and top[-1] > 0 else float("nan")


def stable_rate(run: Callable[[], Any], flops: float, cap_s: float) -> dict[str, Any]:
    """Timed runs of ``run`` until the best three agree within AGREE or ``cap_s`` ends: the best
    run's GFLOP/s, the best three's spread, how many runs, and whether they agreed."""
    rates: list[float] = []
    t_end = time.perf_counter() + cap_s
    while True:
        n, t0 = 0, time.perf_counter()
        while True:
            run()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= RUN_S:
                break
        rates.append(flops * n / elapsed / 1e9)
        stable = len(rates) >= 3 and best_three_spread(rates) <= AGREE
        if stable or time.perf_counter() >= t_end:
            return {"gflops": round(max(rates), 1), "spread": round(best_three_spread(rates), 4),
                    "runs": len(rates), "stable": stable}


def run_kernels(threads: int, cap_scale: float = 1.0) -> dict[str, Any]:
    """In this process: every kernel per precision, and the fastest of each (``fp32_gflops``,
    ``fp32_kernel``, ``fp32_spread``, ``fp32_all``, ``fp32_detail``, the same for bf16), with the
    other processes' CPU time on this CPU set meanwhile. ``cap_scale`` scales the time caps
    (tests use short ones)."""
    import torch

    from .steal import cpu_use, read_cpu_ticks

    torch.set_num_threads(threads)
    cpus = sorted(os.sched_getaffinity(0))
    out: dict[str, Any] = {"threads": threads, "affinity": cpus}
    if cap_scale != 1.0:
        out["cap_scale"] = cap_scale
    t0, own0, ticks0 = time.perf_counter(), time.process_time(), read_cpu_ticks(cpus)
    with torch.inference_mode():
        for short, name in DTYPES.items():
            dtype = getattr(torch, name)
            detail: dict[str, dict[str, Any]] = {}
            skipped = []
            t_dtype = time.perf_counter()
            for family, sizes in kernels(torch, dtype):
                if time.perf_counter() - t_dtype > TOTAL_CAP_S[short] * cap_scale:
                    skipped.append(family)
                    continue
                kernel, run, flops = _fitted(sizes)
                detail[kernel] = stable_rate(run, flops, CAP_S[short] * cap_scale)
            best = max(detail, key=lambda k: detail[k]["gflops"])
            out[f"{short}_gflops"], out[f"{short}_kernel"] = detail[best]["gflops"], best
            out[f"{short}_spread"] = detail[best]["spread"]
            out[f"{short}_all"] = {k: v["gflops"] for k, v in detail.items()}
            out[f"{short}_detail"] = detail
            if skipped:
                out[f"{short}_skipped"] = skipped
    wall = time.perf_counter() - t0
    use = cpu_use(ticks0, read_cpu_ticks(cpus), time.process_time() - own0)
    other, steal = use["other_cpu_seconds"], use["steal_seconds"]
    out.update(seconds=round(wall, 2), other_cpu_seconds=None if other is None else round(other, 2),
               other_cpu_share=None if other is None else round(other / (wall * len(cpus)), 4),
               steal_seconds=None if steal is None else round(steal, 2),
               own_cpu_share=round((time.process_time() - own0) / (wall * len(cpus)), 4))
    return out


@contextlib.contextmanager
def host_turn() -> Iterator[None]:
    """One ceiling measurement at a time on this host: nodes that share a host (several Ray
    nodes on one machine) would otherwise measure beside each other."""
    from ..fsutil import private_dir

    d = private_dir(tempfile.gettempdir(), "hrvs-ceiling")
    if d is None:           # no private folder: measure without the turn, and the record says so
        yield
        return
    with open(d / "turn.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


CAP_SCALE_ENV = "HRVS_CEILING_CAP_SCALE"   # scales every time cap; the test suite shortens them


def measure_scope(cpus: list[int], threads: int, timeout_s: float = 90.0,
                  cap_scale: float | None = None) -> dict[str, Any]:
    """Run the kernels in a fresh process pinned to ``cpus``; ``{"error": why}`` when it fails.
    ``cap_scale`` (default: ``$HRVS_CEILING_CAP_SCALE``, else 1) scales the time caps; a scaled
    measurement records its scale, so it is never mistaken for a full one."""
    if cap_scale is None:
        try:
            cap_scale = float(os.environ.get(CAP_SCALE_ENV, "1"))
        except ValueError:
            cap_scale = 1.0
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "hrvs_ray.probes.ceiling", "--threads", str(threads), "--cap-scale", str(cap_scale)]
    t0 = time.perf_counter()
    try:
        with host_turn():
            waited = time.perf_counter() - t0
            # pinned before exec, so torch's pools start on the scope's CPUs only
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env,
                                  preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": f"ceiling probe failed: {type(e).__name__}: {e}", "cpus": list(cpus)}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"ceiling probe exited {done.returncode}: {tail}", "cpus": list(cpus)}
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return {**got, "cpus": list(cpus), "turn_wait_seconds": round(waited, 2),
            "process_seconds": round(time.perf_counter() - t0 - waited, 2)}


def cpu_sets(placements: dict[str, Any]) -> dict[tuple[tuple[int, ...], int], list[str]]:
    """(CPUs, threads) -> the scopes placed there: scopes on the same CPUs share a ceiling."""
    sets: dict[tuple[tuple[int, ...], int], list[str]] = {}
    for scope, p in sorted(placements.items()):
        if hasattr(p, "cpus"):
            sets.setdefault((tuple(sorted(p.cpus)), p.threads), []).append(scope)
    return sets


def measure_placements(placements: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """scope -> ceiling, for every scope that has a placement (a ScopePlacement, not a reason),
    measured once per distinct CPU set and thread count (each entry names the scopes it serves)."""
    out = {}
    for (cpus, threads), scopes in cpu_sets(placements).items():
        c = {**measure_scope(list(cpus), threads), "scopes": scopes}
        out.update({s: c for s in scopes})
    return out


def drift(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """after ÷ before per precision, and whether either moved more than DRIFT_LIMIT (10 %)."""
    from ..metrics.flags import DRIFT_LIMIT
    got: dict[str, Any] = {}
    for p in DTYPES:
        b, a = before.get(f"{p}_gflops"), after.get(f"{p}_gflops")
        got[p] = round(a / b, 4) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0 else None
    got["flagged"] = any(v is not None and abs(v - 1) > DRIFT_LIMIT for v in (got["fp32"], got["bf16"]))
    return got


def recheck(ceilings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ceilings measured again (after the node's last cell): each CPU set once more, stored
    beside the first as ``after``, with their ``drift``. Run where the first ran (the node)."""
    done: dict[tuple[tuple[int, ...], int], dict[str, Any]] = {}
    out = {}
    for scope, c in ceilings.items():
        if "error" in c or "cpus" not in c:
            out[scope] = c
            continue
        key = (tuple(sorted(c["cpus"])), int(c["threads"]))
        if key not in done:
            done[key] = measure_scope(list(key[0]), key[1])
        out[scope] = {**c, "after": done[key], "drift": drift(c, done[key])}
    return out


NODE_LIMIT_S = 150.0   # below the driver's 180 s probe timeout (ray_io.PROBE_TIMEOUT_S), with room for Ray


def measure_node(placements: dict[str, Any], library: Callable[[float], dict[str, Any]],
                 limit_s: float = NODE_LIMIT_S) -> dict[str, Any]:
    """What a node probe measures besides its description, within one time limit:
    ``{"library": ..., "library_bytes": int | None, "ceilings": {scope: ...}}``. The library
    baseline (``library``: ``train.library_baseline.measure_library``, passed in so the probes
    import nothing above them) first, then each distinct CPU set's ceiling, each in
    a short-lived process of its own, one after the other, before any cell runs on the node. The
    limit keeps a busy node's probe inside the driver's probe timeout: a CPU set it cannot reach
    is recorded as not measured, with the reason, and the node is still used."""
    deadline = time.monotonic() + limit_s
    library = library(min(60.0, limit_s / 2))
    ceilings: dict[str, dict[str, Any]] = {}
    for (cpus, threads), scopes in cpu_sets(placements).items():
        left = deadline - time.monotonic()
        c = (measure_scope(list(cpus), threads, timeout_s=left) if left > 10 else
             {"error": f"not measured: the node probe's {limit_s:.0f} s were spent", "cpus": list(cpus)})
        ceilings.update({s: {**c, "scopes": scopes} for s in scopes})
    return {"library": library, "library_bytes": library.get("library_bytes"), "ceilings": ceilings}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="one compute-ceiling measurement (run by measure_scope)")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--cap-scale", type=float, default=1.0)
    args = ap.parse_args(argv)
    print(json.dumps(run_kernels(args.threads, args.cap_scale)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which convolution kernels each compile mode's forward and backward call, and its step time.

    python -m tools.compile_kernels [--modes eager static auto dynamic] [--shape 16 3 100 136]
                                    [--threads 2] [--steps 5] [--out FILE.json] [--code-dir DIR]

ResNet18 (torchvision, 29 classes, train mode) with Adam, built, compiled and trained by the
functions a sweep cell uses (``train.model.build_model`` / ``build_optimizer`` /
``train_step``, ``train.compiling.open_caches`` / ``compile_model`` / ``CompileProbe``), on one
MR&VS-like float32 batch (default 16x3x100x136, random pixels and labels, seeded), at
``--threads`` torch threads. Each mode runs in a fresh subprocess with a cold Inductor cache
of its own (``open_caches``, ``compile_cache: cold``), so nothing compiled carries over.

Per mode:

1. warm-up: the compile. ``auto`` first trains one step on the transposed batch
   (16x3x136x100) and then on the measured one: its recompile turns the sizes symbolic, which
   is the graph ``auto`` runs on variable shapes (on one shape only it would be ``static``'s).
   Then one more step at the measured shape, which must compile nothing.
2. step time: the median (and min-max) of ``--steps`` steps at the measured shape.
3. one step under ``torch.profiler`` (CPU): every convolution-related op (name contains
   ``conv`` or ``mkldnn``; the ``autograd::engine::evaluate_function`` wrappers left out,
   eager's ``ConvolutionBackward0`` nodes kept), with its calls and self and
   total CPU time, split into forward and backward by its ancestors (an op under an
   ``autograd::engine::evaluate_function`` or a compiled backward is backward; under the
   optimizer's step, optimizer; else forward).
4. Inductor's generated output code (the ``.py`` modules in the cell's cache folder, read
   before it is removed): per forward / backward module, the call sites of convolution extern
   kernels (``extern_kernels.convolution``, ``aten.convolution_backward``, ...), the memory
   layout of their 4-D results (channels_last when the channel stride is 1, from Inductor's
   ``assert_tensor_metadata`` lines), oneDNN weight prepack (``mkldnn._convolution_pointwise``,
   ``_reorder_convolution_weight``, ``mkldnn._linear_pointwise``, ``mkl._mkl_linear``), the
   generated C++ kernels and how many are named after a convolution op (Inductor names a
   fused kernel after the ATen ops of its nodes: a batch-norm backward fused beside an extern
   ``convolution_backward`` carries its name without computing a convolution). ``--code-dir``
   keeps the modules to read.

Prints one compact table per part and, with ``--out``, writes every figure, the output-code
scan and the run's provenance as JSON.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODES = ("eager", "static", "auto", "dynamic")
CONV = re.compile(r"conv|mkldnn", re.I)
BACKWARD_MARKS = ("autograd::engine::evaluate_function", "CompiledFunctionBackward")
# call sites in Inductor's output code: convolution extern kernels, and oneDNN weight prepack
CODE_PATTERNS = {
    "extern_kernels.convolution": r"extern_kernels\.convolution\(",
    "aten.convolution_backward": r"aten\.convolution_backward\.default\(",
    "aten.convolution": r"aten\.convolution\.default\(",
    "aten.mkldnn_convolution": r"aten\.mkldnn_convolution",
    "mkldnn._convolution_pointwise": r"mkldnn\._convolution_pointwise",
    "mkldnn._reorder_convolution_weight": r"_reorder_convolution_weight",
    "mkldnn._linear_pointwise": r"mkldnn\._linear_pointwise",
    "mkl._mkl_linear": r"mkl\._mkl_linear",
}
PREPACK = ("mkldnn._convolution_pointwise", "mkldnn._reorder_convolution_weight", "mkldnn._linear_pointwise",
           "mkl._mkl_linear")


def _phase(event: Any) -> str:
    p = event.cpu_parent
    while p is not None:
        if p.name.startswith(BACKWARD_MARKS):
            return "backward"
        if p.name.startswith("Optimizer.step"):
            return "optimizer"
        p = p.cpu_parent
    return "forward"


def conv_ops(prof: Any) -> dict[str, dict[str, dict[str, float]]]:
    """Per phase, per convolution-related op: calls, self and total CPU ms (one step)."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for e in prof.events():
        if not CONV.search(e.name) or e.name.startswith("autograd::"):
            continue
        row = out[_phase(e)].setdefault(e.name, {"calls": 0, "self_ms": 0.0, "total_ms": 0.0})
        row["calls"] += 1
        row["self_ms"] += e.self_cpu_time_total / 1e3
        row["total_ms"] += e.cpu_time_total / 1e3
    return dict(out)


def phase_totals(prof: Any) -> dict[str, float]:
    """Per phase, the self CPU ms of every op: the step's CPU time as the profiler splits it."""
    out: dict[str, float] = defaultdict(float)
    for e in prof.events():
        out[_phase(e)] += e.self_cpu_time_total / 1e3
    return dict(out)


def _last_tuple(text: str) -> list[str]:
    """The items of the last parenthesised tuple in ``text`` (sizes may be symbolic
    expressions with parentheses of their own)."""
    end = text.rstrip().rindex(")")
    depth, items, cur = 0, [], ""
    for ch in reversed(text[:end]):
        if ch == ")":
            depth += 1
        elif ch == "(":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur.strip()[::-1])
            cur = ""
        else:
            cur += ch
    return [*items, cur.strip()[::-1]][::-1]


def conv_layouts(text: str) -> dict[str, int]:
    """Layouts of the 4-D tensors the convolution extern kernels return, from Inductor's
    ``assert_tensor_metadata`` lines: channels_last when the channel stride is 1."""
    out: dict[str, int] = defaultdict(int)
    for line in text.splitlines():
        m = re.search(r"assert_tensor_metadata\((.*), torch\.\w+, 'torch\.ops\.aten\.convolution(_backward)?\.default'",
                      line)
        if m:
            strides = _last_tuple(m.group(1))
            if len(strides) == 4:
                out["channels_last" if strides[1] == "1" else "contiguous"] += 1
    return dict(out)


def scan_output_code(folder: Path) -> list[dict[str, Any]]:
    """Inductor's generated modules (``def call(``) in a cache folder, each with its call sites
    of the :data:`CODE_PATTERNS`, its generated C++ kernels and those named after a convolution."""
    modules = []
    for path in sorted(folder.rglob("*.py"), key=lambda p: p.stat().st_mtime):
        text = path.read_text(errors="replace")
        if "def call(" not in text:
            continue
        kernels = sorted(set(re.findall(r"\b(cpp_fused_\w+)\s*=\s*async_compile\.cpp", text)))
        modules.append({
            "file": str(path.relative_to(folder)),
            "graph": "backward" if "tangents_" in text else "forward",
            "symbolic": bool(re.search(r"\bks?\d+\b|\bs\d+\b", text)),
            "calls": {k: len(re.findall(p, text)) for k, p in CODE_PATTERNS.items()},
            "conv_layouts": conv_layouts(text),
            "cpp_kernels": len(kernels),
            "conv_cpp_kernels": [k for k in kernels if "conv" in k],
        })
    return modules


def child(mode: str, shape: tuple[int, ...], threads: int, steps: int, code_dir: Path | None) -> dict[str, Any]:
    """One mode, in this (fresh) process."""
    import torch

    torch.set_num_threads(threads)
    from hrvs_ray.config import NetworkSpec, OptimizerSpec
    from hrvs_ray.remedy_axes import Remedy
    from hrvs_ray.train.cell import configure_determinism
    from hrvs_ray.train.model import build_model, build_optimizer, train_step

    configure_determinism("cpu")
    remedy = Remedy(compile=mode)   # compile_cache: cold, recompile_limit: PyTorch's default
    caches = probe = None
    if mode != "eager":
        from hrvs_ray.train.compiling import CompileProbe, open_caches

        caches = open_caches(remedy, "compile-kernels", "cpu")
        probe = CompileProbe()
    try:
        model = build_model(NetworkSpec(), seed=0).train()
        optimizer = build_optimizer(OptimizerSpec(), model)
        if probe is not None:
            from hrvs_ray.train.compiling import compile_model

            forward = compile_model(model, remedy, probe)
        else:
            forward = model
        g = torch.Generator().manual_seed(2021)
        batch = lambda s: [(torch.randn(s, generator=g), torch.randint(0, 29, (s[0],), generator=g))]  # noqa: E731
        target = batch(shape)
        transposed = (*shape[:2], shape[3], shape[2])
        warm = ([("transposed", batch(transposed))] if mode == "auto" else []) + [("measured", target)] * 2
        warmup = []
        for name, passes in warm:
            if probe is not None:
                probe.begin()
            t0 = time.perf_counter()
            loss = train_step(forward, optimizer, passes, "float32")
            row = {"batch": name, "seconds": time.perf_counter() - t0, "loss": float(loss)}
            if probe is not None:
                c = probe.end()
                row |= {"compiles": c["compiles"], "compile_seconds": c["compile_seconds"],
                        "reasons": json.loads(c["compile_reasons"] or "[]")}
            warmup.append(row)
        if probe is not None:
            probe.begin()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            train_step(forward, optimizer, target, "float32")
            times.append(time.perf_counter() - t0)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            train_step(forward, optimizer, target, "float32")
        late = probe.end()["compiles"] if probe is not None else 0
        code = scan_output_code(caches.path) if caches is not None else []
        if code_dir is not None:
            for m in code:
                dest = code_dir / mode / f"{m['graph']}-{Path(m['file']).name}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(caches.path / m["file"], dest)
    finally:
        if caches is not None:
            caches.close()
    return {"mode": mode, "shape": list(shape), "threads": threads, "torch": torch.__version__,
            "warmup": warmup, "compiles_after_warmup": late, "step_seconds": times,
            "median_step_seconds": statistics.median(times), "conv_ops": conv_ops(prof),
            "phase_self_ms": phase_totals(prof), "output_code": code}


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """:func:`child` in a fresh interpreter (nothing compiled or cached carries over)."""
    with tempfile.TemporaryDirectory(prefix="compile-kernels-") as tmp:
        out = Path(tmp) / "mode.json"
        cmd = [sys.executable, "-m", "tools.compile_kernels", "--child", mode, "--child-out", str(out),
               "--shape", *map(str, args.shape), "--threads", str(args.threads), "--steps", str(args.steps),
               *(["--code-dir", str(args.code_dir)] if args.code_dir else [])]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True)
        result = json.loads(out.read_text())
        result["process_seconds"] = time.perf_counter() - t0
        return result


def _prepack(r: dict[str, Any]) -> str:
    if r["mode"] == "eager":
        return "-"
    hits = sum(m["calls"][k] for m in r["output_code"] for k in PREPACK)
    return f"yes ({hits} call sites)" if hits else f"no ({len(r['output_code'])} modules)"


def report(results: list[dict[str, Any]]) -> None:
    eager = next((r["median_step_seconds"] for r in results if r["mode"] == "eager"), None)
    shape = "x".join(map(str, results[0]["shape"]))
    print(f"\nResNet18, batch {shape} float32, {results[0]['threads']} threads, torch {results[0]['torch']}: "
          f"step time (median of {len(results[0]['step_seconds'])} steps after warm-up)")
    print(f"{'mode':<8} {'compiles':>8} {'compile s':>9} {'step s':>7} {'min-max s':>13} {'÷ eager':>8}  "
          f"{'prepack':<18} {'process s':>9}")
    for r in results:
        compiles = sum(w.get("compiles", 0) for w in r["warmup"])
        cs = sum(w.get("compile_seconds", 0.0) for w in r["warmup"])
        ratio = f"{r['median_step_seconds'] / eager:.2f}x" if eager else "-"
        print(f"{r['mode']:<8} {compiles:>8} {cs:>9.1f} {r['median_step_seconds']:>7.3f} "
              f"{min(r['step_seconds']):>6.3f}-{max(r['step_seconds']):<6.3f} {ratio:>8}  {_prepack(r):<18} "
              f"{r['process_seconds']:>9.1f}")
        if r["compiles_after_warmup"]:
            print(f"  !! {r['mode']} compiled {r['compiles_after_warmup']} more graph(s) after its warm-up")

    print("\nconvolution-related ops in one profiled training step (calls, self CPU ms; total ms in brackets)")
    for r in results:
        for phase in ("forward", "backward", "optimizer"):
            ops = r["conv_ops"].get(phase, {})
            total = r["phase_self_ms"].get(phase, 0.0)
            conv = sum(o["self_ms"] for o in ops.values())
            print(f"{r['mode']:<8} {phase:<9} all ops {total:8.1f} ms self, convolution ops {conv:8.1f} ms")
            for name, o in sorted(ops.items(), key=lambda kv: -kv[1]["total_ms"]):
                print(f"{'':<18} {o['calls']:>4} x {name:<44} {o['self_ms']:8.1f} ({o['total_ms']:.1f})")

    print("\nInductor output code (cold cache per mode): call sites per generated module")
    for r in results:
        for m in r["output_code"]:
            calls = ", ".join(f"{k} {v}" for k, v in m["calls"].items() if v) or "no convolution call sites"
            layouts = ", ".join(f"{v} {k}" for k, v in sorted(m["conv_layouts"].items())) or "none recorded"
            print(f"{r['mode']:<8} {m['graph']:<8} {'symbolic' if m['symbolic'] else 'static':<8} {calls}; "
                  f"4-D convolution results: {layouts}; {m['cpp_kernels']} C++ kernels, "
                  f"{len(m['conv_cpp_kernels'])} named after a convolution op")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--shape", nargs=4, type=int, default=[16, 3, 100, 136], metavar=("N", "C", "H", "W"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per mode (median)")
    ap.add_argument("--out", type=Path, help="write every figure and the provenance here as JSON")
    ap.add_argument("--code-dir", type=Path, help="copy Inductor's generated modules here (MODE/GRAPH-FILE.py)")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        args.child_out.write_text(json.dumps(child(args.child, tuple(args.shape), args.threads, args.steps,
                                                      args.code_dir)))
        return 0
    t0 = time.perf_counter()
    results = []
    for mode in args.modes:
        print(f"[{mode}] fresh process, cold compiler cache ...", flush=True)
        results.append(run_mode(mode, args))
    report(results)
    wall = time.perf_counter() - t0
    print(f"\nwall time {wall:.0f} s")
    if args.out:
        from hrvs_ray.cluster.provenance import collect_provenance

        args.out.write_text(json.dumps({"options": {k: v for k, v in vars(args).items() if not k.startswith("child")
                                                    and k not in ("out", "code_dir")}, "wall_seconds": wall,
                                        "provenance": collect_provenance(), "modes": results},
                                       indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``torch.compile`` as a remedy: what is compiled, where its caches live, and what the
compiler did during each step, read from Dynamo's own counters.

What is compiled: the model's forward, ``torch.compile(model, dynamic=...)`` with the
Inductor backend. Its backward follows through AOTAutograd (compiled lazily, at the first
backward of each graph); the loss (cross-entropy) and the optimizer (Adam, ``foreach=False``)
stay the eager code every other cell runs, so a compiled cell trains the same maths.

| setting | call | sizes |
|---|---|---|
| static  | ``dynamic=False`` | every new pass shape is a recompile, up to the recompile limit |
| auto    | ``dynamic=None`` (PyTorch's default) | the first recompile turns changed sizes symbolic |
| dynamic | ``dynamic=True`` (not ``mark_dynamic``) | every size symbolic from the first compile |

Caches: each cell gets its own compiler cache folder (``TORCHINDUCTOR_CACHE_DIR``, holding
Inductor's FX-graph, AOTAutograd and C++ kernel caches, and ``TRITON_CACHE_DIR`` for CUDA),
set before the first compile: Inductor reads the variable when it first needs the folder,
not at ``import torch``. ``cold`` makes an empty folder per cell and removes it after;
``warm`` names one folder per sweep and setting that an earlier cell of the sweep filled.
Dynamo's in-memory caches are reset at the start of every compiled cell.

Compile workers: ``compile_threads = 1`` keeps Inductor's compilation in the cell's own
process. Its default would start a pool of worker processes that outlive the step, sit
outside the cell's memory figures and compete for the cell's pinned CPUs; in-process, the
compile's memory is the cell's, and nothing outlives the cell. The C++ compiler Inductor runs
for each kernel is still a short-lived child: the largest RSS of the cell's children is
recorded apart (``compiler_child_peak_bytes``, from ``RUSAGE_CHILDREN``). It is an upper bound:
a child started by fork counts the parent's pages it shares until it execs.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch._dynamo
from torch._dynamo.utils import compilation_time_metrics, counters, get_compilation_metrics

from ..errors import InternalError
from ..fsutil import private_dir
from ..names import id_part
from ..remedy_axes import Remedy

DYNAMIC = {"static": False, "auto": None, "dynamic": True}
CACHE_VARIABLES = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
# Dynamo's compile-time metrics (seconds per call) that hold a compile: the frame's compile
# (tracing, AOTAutograd, the forward's Inductor compile) and the lazy compile of the backward
# at its first run, which happens outside the frame's compile and so is never counted twice.
COMPILE_TIMERS = ("_compile.compile_inner", "backward._backward_impl")
LIMIT_GB = "Dynamo recompile limit exceeded"   # the graph-break type Dynamo records at the limit


class CompileSetupError(InternalError):
    """The compiler cannot be set up as the cell asks."""


@dataclass
class CompilerCaches:
    """A cell's compiler cache folder: ``state`` says whether it held anything at the start
    (``empty`` for every cold cell; a warm cell finds what earlier cells left)."""
    path: Path
    setting: str          # cold | warm
    state: str            # empty | filled (N files)
    _previous: dict[str, str | None]

    def close(self) -> None:
        """Put the variables back; a cold folder is the cell's alone and goes with it."""
        for k, v in self._previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if self.setting == "cold":
            shutil.rmtree(self.path, ignore_errors=True)


def warm_key(sweep: str, remedy: Remedy, device: str) -> str:
    """The warm folder of a sweep and compiled setting: the cells that could reuse each
    other's kernels (same compile setting, precision, memory format, checkpointing, device,
    torch) share one; the rest never meet."""
    parts = (torch.__version__, remedy.compile, remedy.precision, remedy.memory_format, remedy.checkpointing,
             remedy.recompile_limit, device)
    return f"{id_part(sweep)}-{hashlib.sha256(repr(parts).encode()).hexdigest()[:12]}"


def open_caches(remedy: Remedy, sweep: str, device: str, base: str | os.PathLike | None = None) -> CompilerCaches:
    """Point Inductor (and Triton) at this cell's cache folder, keep compilation in-process,
    and forget what Dynamo compiled earlier in this process. Call before the first compile."""
    root = private_dir(base or tempfile.gettempdir(), "hrvs-ray-compile")
    if root is None:
        raise CompileSetupError("no private folder for compiler caches under "
                                f"{base or tempfile.gettempdir()} (exists and is not ours alone)")
    if remedy.compile_cache == "cold":
        path = Path(tempfile.mkdtemp(prefix="cell-", dir=root))
    elif remedy.compile_cache == "warm":
        path = root / f"warm-{warm_key(sweep, remedy, device)}"
        path.mkdir(mode=0o700, exist_ok=True)
    else:
        raise CompileSetupError(f"unknown compile_cache {remedy.compile_cache!r} (cold | warm)")
    files = sum(len(f) for _, _, f in os.walk(path))
    previous = {k: os.environ.get(k) for k in (*CACHE_VARIABLES, "TORCHINDUCTOR_COMPILE_THREADS")}
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    os.environ["TRITON_CACHE_DIR"] = str(path / "triton")
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
    import torch._inductor.config as inductor_config

    # the variable is read once, when the config module is first imported (maybe already)
    inductor_config.compile_threads = 1
    torch._dynamo.reset()
    return CompilerCaches(path, remedy.compile_cache, "empty" if not files else f"filled ({files} files)", previous)


class CompileProbe:
    """Counts what the compiler did between ``begin`` and ``end`` (one step), from Dynamo's
    counters and compile metrics, plus how often a compiled graph actually ran: the step ran
    eager when none did (after the recompile limit, a shape without a graph runs eager)."""

    def __init__(self) -> None:
        self.graph_calls = 0
        self._start: dict[str, Any] = {}

    def backend(self, dynamic: bool | None) -> Callable:
        """Inductor as ``torch.compile(backend="inductor")`` builds it, whose compiled graphs
        count their calls."""
        probe = self

        class CountingInductor(torch._TorchCompileInductorWrapper):
            def __call__(self, model_: Any, inputs_: Any) -> Any:
                return probe._counted(super().__call__(model_, inputs_))

        return CountingInductor(None, None, dynamic)

    def _counted(self, fn: Callable) -> Callable:
        @functools.wraps(fn)   # keeps attributes such as _boxed_call, which Dynamo reads
        def run(*args: Any, **kwargs: Any) -> Any:
            self.graph_calls += 1
            return fn(*args, **kwargs)
        return run

    def _snapshot(self) -> dict[str, Any]:
        return {"graphs": counters["stats"]["unique_graphs"],
                "breaks": dict(counters["graph_break"]),
                "limit": sum(v for k, v in counters["unimplemented"].items() if k.startswith(LIMIT_GB)),
                "seconds": sum(sum(compilation_time_metrics.get(k, ())) for k in COMPILE_TIMERS),
                "metrics": {id(m) for m in get_compilation_metrics()},
                "calls": self.graph_calls}

    def begin(self) -> None:
        self._start = self._snapshot()

    def end(self) -> dict[str, Any]:
        """The step's compile columns (see ``store.schema``: schema 4)."""
        s0, s1 = self._start, self._snapshot()
        reasons = []
        for m in get_compilation_metrics():
            # a graph's backward, compiled lazily at its first run, belongs to its forward's compile
            if id(m) in s0["metrics"] or m.is_forward is False:
                continue
            if m.fail_reason:
                reasons.append(("recompile limit hit: " if LIMIT_GB in m.fail_reason else "failed: ")
                               + (m.recompile_reason or m.fail_reason.splitlines()[0]))
            else:
                reasons.append(m.recompile_reason or "first compile")
        breaks = {k: v - s0["breaks"].get(k, 0) for k, v in s1["breaks"].items() if v > s0["breaks"].get(k, 0)}
        reasons += [f"graph break: {k.splitlines()[0]}" for k in breaks]
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024   # KiB on Linux
        return {"compiles": s1["graphs"] - s0["graphs"], "compile_seconds": s1["seconds"] - s0["seconds"],
                "recompile_limit_hit": s1["limit"] > s0["limit"], "ran_eager": s1["calls"] == s0["calls"],
                "graph_breaks": sum(breaks.values()), "compile_reasons": json.dumps(reasons) if reasons else None,
                "compiler_child_peak_bytes": child or None}


def compile_model(model: torch.nn.Module, remedy: Remedy, probe: CompileProbe) -> torch.nn.Module:
    """The model whose forward runs compiled as ``remedy.compile`` says (eager: ``model``)."""
    if remedy.compile == "eager":
        return model
    if remedy.compile not in DYNAMIC:
        raise CompileSetupError(f"unknown compile setting {remedy.compile!r} (eager | static | auto | dynamic)")
    torch._dynamo.config.recompile_limit = remedy.recompile_limit
    dynamic = DYNAMIC[remedy.compile]
    return torch.compile(model, backend=probe.backend(dynamic), dynamic=dynamic)


def compiler_version(device: str = "cpu") -> str | None:
    """The C++ compiler Inductor runs (``--version``'s first line), plus Triton's version on
    CUDA; None when none is found (a compiled cell then fails with Inductor's own error)."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        cc = get_cpp_compiler()
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
        version = out.splitlines()[0].strip() if out else cc
    except (Exception, SystemExit):   # noqa: BLE001 - no compiler is a fact to record, not a crash
        version = None
    if device == "cuda":
        try:
            import triton

            version = f"{version or 'no C++ compiler'}; triton {triton.__version__}"
        except ImportError:
            pass
    return version

"""The sweep file's ``remedies:`` section (what a user can change to pay less for padding).

Pure: imports neither torch nor ray. Each axis takes one value or a non-empty list without
duplicates; the sweep runs their cartesian product (``RemediesSpec.combinations``).
``model.precision`` and ``model.memory_format`` (the older, single-value spelling) set an
axis that ``remedies`` does not list; given in both places they must agree.

``split`` (shard | balanced | uniform, or a list) says how a data-parallel scope (``N*SCOPE``)
deals each optimizer step's images to its ranks (``plan.rank_split``); single-rank scopes run
``shard`` only, whatever it lists (``RemediesSpec.combinations(ranks=1)``).
"""
from __future__ import annotations

from typing import Any

from ..remedy_axes import (
    BATCHING,
    CHECKPOINTING,
    COMPILE,
    COMPILE_CACHE,
    COMPILE_PARAM_DEFAULTS,
    KERNEL_CACHE,
    MEMORY_FORMAT,
    NO_ROUND,
    PARAM_DEFAULTS,
    POLICY_PARAMS,
    PRECISION,
    SPLIT,
    RemediesSpec,
    uses,
)
from .check import Validator, at_least, preview
from .specs import InputSetSpec, ModelSpec

AXIS_VALUES = {"batching": BATCHING, "precision": PRECISION, "memory_format": MEMORY_FORMAT,
               "checkpointing": CHECKPOINTING}
_MODEL_KEYS = ("precision", "memory_format")   # axes the model section may also set


def remedy_problem(axis: str, value: str, model: ModelSpec) -> str | None:
    """Why ``model`` cannot run ``value`` of ``axis``, or None. Every value runs on
    ``device: cuda`` and on CPU (bfloat16 autocast and channels_last exist for both);
    activation checkpointing of stages needs a network built of ResNet's four stages."""
    if axis == "checkpointing" and value == "stages" and not model.arch.startswith("resnet"):
        return f"'stages' checkpoints ResNet's four stages; model.arch {model.arch!r} has none"
    return None


def parse_remedies(v: Validator, value: Any, model: ModelSpec, model_keys: set[str],
                   input_sets: tuple[InputSetSpec, ...]) -> RemediesSpec:
    """``value`` is the raw section ({} when absent); ``model_keys`` the keys the model
    section spelled out (a default must not conflict with an explicit remedies list)."""
    k = "remedies"
    m = v.mapping(value, k, {*AXIS_VALUES, "window", "micro_batch", "kernel_cache", "shape_round",
                                    "compile", "compile_cache", "recompile_limit", "split"})
    axes: dict[str, tuple[str, ...]] = {}
    for axis, allowed in AXIS_VALUES.items():
        if axis in m:
            axes[axis] = v.choices(m[axis], f"{k}.{axis}", allowed)
            for i, val in enumerate(axes[axis]):
                problem = remedy_problem(axis, val, model)
                if problem:
                    v.fail(f"{k}.{axis}[{i}]" if isinstance(m[axis], list) else f"{k}.{axis}", problem)
    for axis in _MODEL_KEYS:
        from_model = (getattr(model, axis),)
        if axis in axes and axis in model_keys and axes[axis] != from_model:
            v.fail(f"model.{axis}", f"{preview(from_model[0])} disagrees with {k}.{axis} "
                                    f"({', '.join(axes[axis])}): set it in {k}.{axis} only "
                                    f"(model.{axis} is the older, single-value spelling)")
        axes.setdefault(axis, from_model)
    batching = axes.get("batching", ("pad",))
    window = _policy_param(v, m, "window", batching)
    micro = _policy_param(v, m, "micro_batch", batching)
    if "accumulate" in batching:
        for s in input_sets:
            if micro > s.batch_size:
                v.fail(f"{k}.micro_batch", f"{micro} exceeds the batch_size {s.batch_size} of input set "
                                           f"{s.name!r} (a micro-batch is part of one batch)")
    return RemediesSpec(**axes, window=window, micro_batch=micro, kernel_cache=_kernel_cache(v, m, model),
                        shape_round=_shape_round(v, m), **_compile(v, m),
                        split=v.choices(m["split"], f"{k}.split", SPLIT) if "split" in m else ("shard",))


def _compile(v: Validator, m: dict) -> dict[str, Any]:
    """``compile`` (eager | static | auto | dynamic, or a list) and its parameters
    ``compile_cache`` (cold | warm) and ``recompile_limit`` (>= 1), which mean nothing to eager
    and are refused there rather than recorded as if they had an effect. The same axis serves
    ``model.device: cuda`` (Inductor then emits Triton kernels instead of C++)."""
    key = "remedies.compile"
    values = v.choices(m["compile"], key, COMPILE) if "compile" in m else ("eager",)
    out: dict[str, Any] = {"compile": values}
    for name in ("compile_cache", "recompile_limit"):
        if name not in m:
            continue
        if values == ("eager",):
            v.fail(f"remedies.{name}", "only used with a compiled setting (remedies.compile: static, auto or "
                                       "dynamic); compile is eager, which compiles nothing")
        if name == "compile_cache":
            out[name] = v.choices(m[name], f"remedies.{name}", COMPILE_CACHE)
            if len(out[name]) != 1:
                v.fail(f"remedies.{name}", "one value: cold (an empty cache folder per cell) or warm")
            out[name] = out[name][0]
        else:
            out[name] = v.get(m, "remedies", name, int, COMPILE_PARAM_DEFAULTS[name], at_least(1))
    return out


def _kernel_cache(v: Validator, m: dict, model: ModelSpec) -> tuple[str, ...]:
    """``default`` | ``off`` or a list. YAML 1.1 reads a bare ``off`` as false: taken as
    ``off``; a bare ``on``/``true`` is refused (the caches are on by default: say ``default``)."""
    key = "remedies.kernel_cache"
    if "kernel_cache" not in m:
        return ("default",)
    raw = m["kernel_cache"]
    items = raw if isinstance(raw, list) else [raw]
    for i, item in enumerate(items):
        if item is True:
            v.fail(f"{key}[{i}]" if isinstance(raw, list) else key,
                   "true/on is not a value: the caches are on by default, say 'default' (or 'off')")
    named = [("off" if item is False else item) for item in items]
    values = v.choices(named if isinstance(raw, list) else named[0], key, KERNEL_CACHE)
    if model.device == "cuda" and values != ("default",):
        v.fail(key, "'off' empties PyTorch's CPU kernel caches (oneDNN primitives, ideep LRU); on device: cuda "
                    "the kernels are cuDNN's and these caches do not apply (see benchmarks/gpu_check.sh for "
                    "cudnn.benchmark autotuning per shape)")
    return values


def _shape_round(v: Validator, m: dict) -> tuple[int, ...]:
    """``none`` or a multiple in pixels (>= 2), or a non-empty list of them without duplicates."""
    key = "remedies.shape_round"
    if "shape_round" not in m:
        return (NO_ROUND,)
    raw = m["shape_round"]
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        v.fail(key, "must be none, a multiple in pixels (e.g. 32), or a non-empty list of them")
    out: list[int] = []
    for i, item in enumerate(items):
        path = f"{key}[{i}]" if isinstance(raw, list) else key
        if isinstance(item, str) and item != "none":
            v.fail(path, f"must be none or a multiple in pixels (an integer >= 2), got {preview(item)}")
        value = NO_ROUND if item == "none" else v.value(item, path, int, at_least(2))
        if value in out:
            v.fail(path, f"duplicate value {preview(item)}")
        out.append(value)
    return tuple(out)


def _policy_param(v: Validator, m: dict, name: str, batching: tuple[str, ...]) -> int:
    if name in m and not any(uses(b, name) for b in batching):
        v.fail(f"remedies.{name}",
               f"only used with batching: {POLICY_PARAMS[name]} (batching is {', '.join(batching)})")
    return v.get(m, "remedies", name, int, PARAM_DEFAULTS[name], at_least(1))

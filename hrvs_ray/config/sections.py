"""One parser per section of a sweep file; ``config.parse_sweep`` calls them in file order.

Pure: imports neither torch nor ray. Each parser takes the validator and the section's
raw value and returns its frozen dataclass, or raises ``SweepError`` at the key at fault.
"""
from __future__ import annotations

import re
from typing import Any

from ..probes.events import EventSpecError, parse_llc_event  # the counters' grammar, pure
from ..remedy_axes import MEMORY_FORMAT, PRECISION
from ..scopes import scope_problem
from .check import Validator, default_of, fraction, in_range, kind, non_negative, not_blank, one_of, positive, preview
from .specs import (
    ARCHS,
    DATASET_KINDS,
    DEVICES,
    OPTIMIZERS,
    PROCESS_KINDS,
    RESIZE_KINDS,
    SUBSETS,
    ClusterSpec,
    CounterSpec,
    DatasetSpec,
    ExecutionSpec,
    InputSetSpec,
    ModelSpec,
    OptimizerSpec,
    SyntheticSpec,
    TrainingSpec,
)

# results/<name>/ and reports/<name>.html; the report's temporary file adds 27 characters,
# and a file name may have 255 bytes: 200 leaves room and reads as "a name, not a sentence".
NAME_MAX = 200
LABEL_MAX = 64     # input-set and cluster names: they enter cell ids, which are file names


def parse_name(v: Validator, value: Any) -> str:
    return v.value(value, "name", str, _name_problem)


def _name_problem(s: str) -> str | None:
    if not re.fullmatch(r"[A-Za-z0-9._-]+", s):
        return "must use only letters, digits, '.', '_' and '-' (it names results/<name>/ and reports/<name>.html)"
    if not s.strip("."):
        return "must not be only dots (results/. or results/.. is not a folder of its own)"
    if s.startswith("-"):
        return "must not start with '-' (it would read as a command-line option)"
    if len(s) > NAME_MAX:
        return (f"must be at most {NAME_MAX} characters, since it names results/<name>/ and "
                f"reports/<name>.html (this one has {len(s)})")
    return None


def _label_problem(s: str) -> str | None:
    if not s.strip():
        return "must not be empty"
    return None if len(s) <= LABEL_MAX else f"must be at most {LABEL_MAX} characters (it is part of file names)"


def parse_dataset(v: Validator, value: Any) -> DatasetSpec:
    k = "dataset"
    dm = v.mapping(value, k, {"kind", "path", "subset", "synthetic", "cache"}, {"kind", "path"})
    kind_ = v.get(dm, k, "kind", str, check=one_of(*DATASET_KINDS))
    synth = None
    if "synthetic" in dm:
        if kind_ != "synthetic":
            v.fail("dataset.synthetic", "only allowed with dataset.kind: synthetic")
        sk = "dataset.synthetic"
        sm = v.mapping(dm["synthetic"], sk, {"count", "scale", "seed", "quality"})
        synth = SyntheticSpec(count=v.field(sm, sk, SyntheticSpec, "count", int, positive),
                              scale=v.field(sm, sk, SyntheticSpec, "scale", float, fraction),
                              seed=v.field(sm, sk, SyntheticSpec, "seed", int, non_negative),
                              quality=v.field(sm, sk, SyntheticSpec, "quality", int, in_range(1, 100)))
    elif kind_ == "synthetic":
        synth = SyntheticSpec()
    return DatasetSpec(kind=kind_, path=v.get(dm, k, "path", str, check=not_blank),
                       subset=v.field(dm, k, DatasetSpec, "subset", str, one_of(*SUBSETS)),
                       synthetic=synth, cache=v.field(dm, k, DatasetSpec, "cache", str, not_blank))


def parse_input_sets(v: Validator, value: Any) -> tuple[InputSetSpec, ...]:
    if not isinstance(value, dict) or not value:
        v.fail("input_sets", f"must be a non-empty mapping of name -> input set, got {kind(value)}")
    out: list[InputSetSpec] = []
    for name, raw in value.items():
        key = f"input_sets.{name}"
        v.value(name, key, str, _label_problem)
        spec = _input_set(v, key, name, raw)
        if any(s.key == spec.key for s in out):
            v.fail(key, f"name collides with another input set after slugging ({spec.key!r})")
        out.append(spec)
    return tuple(out)


def _input_set(v: Validator, key: str, name: str, raw: Any) -> InputSetSpec:
    im = v.mapping(raw, key, {"resize", "size", "batch_size"}, {"resize", "batch_size"})
    resize = v.get(im, key, "resize", str, check=one_of(*RESIZE_KINDS))
    bs = v.get(im, key, "batch_size", int, check=positive)
    size: tuple[int, ...] = ()
    if resize == "fixed":
        if "size" not in im:
            v.fail(f"{key}.size", "missing required key (fixed resize needs [height, width])")
        s = im["size"]
        if isinstance(s, int) and not isinstance(s, bool):
            s = [s, s]
        if (not isinstance(s, list) or len(s) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in s)):
            v.fail(f"{key}.size", f"must be a positive integer or [height, width] of positive integers, "
                                  f"got {preview(s)}")
        size = (s[0], s[1])
    elif resize == "shorter_side":
        if "size" not in im:
            v.fail(f"{key}.size", "missing required key (shorter_side needs the shorter side in px)")
        size = (v.get(im, key, "size", int, None, positive),)
    elif "size" in im:
        v.fail(f"{key}.size", "not allowed with resize: none (images keep their original size)")
    return InputSetSpec(name=name, resize=resize, batch_size=bs, size=size)


def parse_model(v: Validator, value: Any) -> ModelSpec:
    k = "model"
    mm = v.mapping(value, k, {"arch", "num_classes", "precision", "memory_format", "device"})
    return ModelSpec(arch=v.field(mm, k, ModelSpec, "arch", str, one_of(*ARCHS)),
                     num_classes=v.field(mm, k, ModelSpec, "num_classes", int, positive),
                     precision=v.field(mm, k, ModelSpec, "precision", str, one_of(*PRECISION)),
                     memory_format=v.field(mm, k, ModelSpec, "memory_format", str, one_of(*MEMORY_FORMAT)),
                     device=v.field(mm, k, ModelSpec, "device", str, one_of(*DEVICES)))


def parse_optimizer(v: Validator, value: Any) -> OptimizerSpec:
    k = "optimizer"
    om = v.mapping(value, k, {"name", "lr", "betas", "weight_decay"})
    betas = v.get(om, k, "betas", list, list(default_of(OptimizerSpec, "betas")))
    if (len(betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                                   for b in betas)):
        v.fail("optimizer.betas", f"must be two numbers in [0, 1), got {preview(betas)}")
    return OptimizerSpec(name=v.field(om, k, OptimizerSpec, "name", str, one_of(*OPTIMIZERS)),
                         lr=v.field(om, k, OptimizerSpec, "lr", float, positive),
                         betas=(float(betas[0]), float(betas[1])),
                         weight_decay=v.field(om, k, OptimizerSpec, "weight_decay", float, non_negative))


def parse_training(v: Validator, value: Any) -> TrainingSpec:
    k = "training"
    tm = v.mapping(value, k, {"warmup_steps", "steps", "runs", "seed"})
    return TrainingSpec(warmup_steps=v.field(tm, k, TrainingSpec, "warmup_steps", int, non_negative),
                        steps=v.field(tm, k, TrainingSpec, "steps", int, positive),
                        runs=v.field(tm, k, TrainingSpec, "runs", int, positive),
                        seed=v.field(tm, k, TrainingSpec, "seed", int, non_negative))


def parse_scopes(v: Validator, value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        v.fail(key, f"must be a non-empty list of scopes, got {kind(value)}")
    out: list[str] = []
    for i, s in enumerate(value):
        v.value(s, f"{key}[{i}]", str, scope_problem)
        if s in out:
            v.fail(f"{key}[{i}]", f"duplicate scope {preview(s)}")
        out.append(s)
    return tuple(out)


def parse_counters(v: Validator, value: Any, key: str) -> CounterSpec:
    m = v.mapping(value, key, {"llc"})
    return CounterSpec(llc=v.field(m, key, CounterSpec, "llc", str, _event_problem))


def _event_problem(s: str) -> str | None:
    """The counters' own parser judges the spec: what validates is what they can open."""
    try:
        parse_llc_event(s)
    except EventSpecError as e:
        return str(e).split(f"{s!r}: ", 1)[-1]   # after the spec itself, which may hold ": "
    return None


def parse_clusters(v: Validator, value: Any) -> tuple[ClusterSpec, ...]:
    if not isinstance(value, list):
        v.fail("clusters", f"must be a list, got {kind(value)}")
    out: list[ClusterSpec] = []
    for i, raw in enumerate(value):
        key = f"clusters[{i}]"
        cm = v.mapping(raw, key, {"name", "label", "cpu_model", "scopes", "counters"}, {"name"})
        name = v.get(cm, key, "name", str, check=_label_problem)
        if any(c.name == name for c in out):
            v.fail(f"{key}.name", f"duplicate cluster name {preview(name)}")
        label = v.get(cm, key, "label", str)
        cpu_model = v.get(cm, key, "cpu_model", str)
        out.append(ClusterSpec(
            name=name, label=name if label is None and cpu_model is None else label, cpu_model=cpu_model,
            scopes=parse_scopes(v, cm["scopes"], f"{key}.scopes") if "scopes" in cm else None,
            counters=parse_counters(v, cm["counters"], f"{key}.counters") if "counters" in cm else None))
    return tuple(out)


def parse_execution(v: Validator, value: Any) -> ExecutionSpec:
    k = "execution"
    em = v.mapping(value, k, {"exclusive", "cell_timeout_s", "retries", "memory_headroom", "release_heap",
                              "process"})
    return ExecutionSpec(exclusive=v.field(em, k, ExecutionSpec, "exclusive", bool),
                         process=v.field(em, k, ExecutionSpec, "process", str, one_of(*PROCESS_KINDS)),
                         release_heap=v.field(em, k, ExecutionSpec, "release_heap", bool),
                         cell_timeout_s=v.field(em, k, ExecutionSpec, "cell_timeout_s", float, positive),
                         retries=v.field(em, k, ExecutionSpec, "retries", int, non_negative),
                         memory_headroom=v.field(em, k, ExecutionSpec, "memory_headroom", float, fraction))


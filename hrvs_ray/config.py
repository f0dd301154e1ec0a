"""Sweep files: load, validate, and turn into frozen dataclasses.

Pure: imports neither torch nor ray. Every problem is reported as
``FILE: key.path: problem`` so a user can fix a sweep without reading code.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

RESIZE_KINDS = ("fixed", "shorter_side", "none")
SCOPE_RE = re.compile(r"^(cores:[1-9][0-9]*|socket|node)$")
EVENT_RE = re.compile(r"^(generic|ll-read|none|raw:0x[0-9a-fA-F]+)$")


class SweepError(ValueError):
    """A sweep file that cannot be run. ``str()`` names file, key path and problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(where + problem)


@dataclass(frozen=True)
class SyntheticSpec:
    count: int = 300
    scale: float = 0.1
    seed: int = 0
    quality: int = 90


@dataclass(frozen=True)
class DatasetSpec:
    kind: str                      # "mame" | "synthetic"
    path: str                      # root holding MAMe_dataset.csv and data/
    subset: str = "train"
    synthetic: SyntheticSpec | None = None
    cache: str = ".hrvs-cache"     # prepared (resized) input sets


@dataclass(frozen=True)
class InputSetSpec:
    name: str
    resize: str                    # fixed | shorter_side | none
    batch_size: int
    size: tuple[int, ...] = ()     # fixed: (height, width); shorter_side: (N,)

    @property
    def key(self) -> str:
        """Filesystem-safe identifier, stable across runs (used in cache paths and cell ids)."""
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.name).strip("-").lower() or "set"
        return slug


@dataclass(frozen=True)
class ModelSpec:
    arch: str = "resnet18"
    num_classes: int = 29
    precision: str = "float32"
    memory_format: str = "contiguous"
    device: str = "cpu"            # cpu | cuda (one GPU per cell)


@dataclass(frozen=True)
class OptimizerSpec:
    name: str = "adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0


@dataclass(frozen=True)
class TrainingSpec:
    warmup_steps: int = 1
    steps: int = 10
    runs: int = 3
    seed: int = 0


@dataclass(frozen=True)
class CounterSpec:
    """Which hardware event counts as an LLC miss: ``generic`` (perf's cache-misses),
    ``raw:0x...`` (a vendor event, e.g. Intel MEM_LOAD_RETIRED.L3_MISS = raw:0x20d1) or ``none``."""
    llc: str = "generic"


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    label: str | None = None       # Ray node label value of key "cluster"
    cpu_model: str | None = None   # substring of the node's CPU model
    scopes: tuple[str, ...] | None = None
    counters: CounterSpec | None = None


@dataclass(frozen=True)
class ExecutionSpec:
    exclusive: bool = True
    cell_timeout_s: float = 3600.0
    retries: int = 1
    memory_headroom: float = 0.9   # fraction of node memory a cell may be planned to use


@dataclass(frozen=True)
class Sweep:
    name: str
    dataset: DatasetSpec
    input_sets: tuple[InputSetSpec, ...]
    model: ModelSpec
    optimizer: OptimizerSpec
    training: TrainingSpec
    scopes: tuple[str, ...]
    counters: CounterSpec = field(default_factory=CounterSpec)
    clusters: tuple[ClusterSpec, ...] = ()
    execution: ExecutionSpec = field(default_factory=ExecutionSpec)
    source: str = ""

    def input_set(self, name: str) -> InputSetSpec:
        for s in self.input_sets:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        return d

    def fingerprint(self) -> str:
        """Hash of everything that changes what a cell measures (not ``execution`` knobs),
        so a results folder can refuse rows of a different sweep definition."""
        d = self.to_dict()
        d.pop("execution")
        # where the dataset and cache live does not change what is measured (the dataset's
        # content is identified by its metadata hash in the cache key)
        d["dataset"].pop("path")
        d["dataset"].pop("cache")
        blob = json.dumps(d, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# --- validation -------------------------------------------------------------------------

Check = Callable[[Any], "str | None"]


class _V:
    """Walks a mapping by key path, collecting values and raising SweepError on the first problem."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> None:
        raise SweepError(self.source, key, problem)

    def mapping(self, value: Any, key: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping, got {_kind(value)}")
        for k in value:
            if not isinstance(k, str):
                self.fail(key, f"keys must be strings, got {k!r}")
            if k not in allowed:
                self.fail(_join(key, k), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for k in sorted(required):
            if k not in value:
                self.fail(_join(key, k), "missing required key")
        return value

    def get(self, m: dict, key: str, name: str, typ: type | tuple, default: Any = None,
            check: Check | None = None) -> Any:
        path = _join(key, name)
        if name not in m:
            return default
        v = m[name]
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if isinstance(v, bool) and typ is not bool:
            self.fail(path, f"must be {_typename(typ)}, got a boolean")
        if not isinstance(v, typ):
            self.fail(path, f"must be {_typename(typ)}, got {_kind(v)} {v!r}")
        if check is not None:
            problem = check(v)
            if problem:
                self.fail(path, f"{problem}, got {v!r}")
        return v


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _kind(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing"}.get(type(v), type(v).__name__)


def _typename(t: type | tuple) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "a boolean",
             list: "a list", dict: "a mapping"}
    if isinstance(t, tuple):
        return " or ".join(names.get(x, x.__name__) for x in t)
    return names.get(t, t.__name__)


def positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be >= 0"


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _scope_check(v: str) -> str | None:
    return None if SCOPE_RE.match(v) else "must be 'cores:N' (N >= 1), 'socket' or 'node'"


def _event_check(v: str) -> str | None:
    return None if EVENT_RE.match(v) else "must be 'generic', 'll-read', 'none' or 'raw:0x<hex>'"


def _scopes(v: _V, value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        v.fail(key, f"must be a non-empty list of scopes, got {_kind(value)}")
    out = []
    for i, s in enumerate(value):
        if not isinstance(s, str):
            v.fail(f"{key}[{i}]", f"must be a string, got {_kind(s)}")
        if _scope_check(s):
            v.fail(f"{key}[{i}]", f"{_scope_check(s)}, got {s!r}")
        if s in out:
            v.fail(f"{key}[{i}]", f"duplicate scope {s!r}")
        out.append(s)
    return tuple(out)


def _counters(v: _V, value: Any, key: str) -> CounterSpec:
    m = v.mapping(value, key, {"llc"})
    return CounterSpec(llc=v.get(m, key, "llc", str, "generic", _event_check))


def parse_sweep(data: Any, source: str = "<sweep>", base_dir: Path | None = None) -> Sweep:
    """Validate a parsed YAML document. Relative dataset paths are kept as written
    (they resolve against the working directory, as documented in the README)."""
    v = _V(source)
    top = v.mapping(data, "", {"name", "dataset", "input_sets", "model", "optimizer", "training",
                               "scopes", "counters", "clusters", "execution"},
                    {"name", "dataset", "input_sets", "scopes"})
    name = v.get(top, "", "name", str, check=lambda s: None if re.fullmatch(r"[A-Za-z0-9._-]+", s)
                 else "must use only letters, digits, '.', '_' and '-'")

    dm = v.mapping(top["dataset"], "dataset", {"kind", "path", "subset", "synthetic", "cache"},
                   {"kind", "path"})
    kind = v.get(dm, "dataset", "kind", str, check=one_of("mame", "synthetic"))
    synth = None
    if "synthetic" in dm:
        if kind != "synthetic":
            v.fail("dataset.synthetic", "only allowed with dataset.kind: synthetic")
        sm = v.mapping(dm["synthetic"], "dataset.synthetic", {"count", "scale", "seed", "quality"})
        k = "dataset.synthetic"
        synth = SyntheticSpec(
            count=v.get(sm, k, "count", int, 300, positive),
            scale=v.get(sm, k, "scale", float, 0.1, lambda x: None if 0 < x <= 1 else "must be in (0, 1]"),
            seed=v.get(sm, k, "seed", int, 0, non_negative),
            quality=v.get(sm, k, "quality", int, 90, lambda x: None if 1 <= x <= 100 else "must be in 1..100"),
        )
    elif kind == "synthetic":
        synth = SyntheticSpec()
    dataset = DatasetSpec(
        kind=kind,
        path=v.get(dm, "dataset", "path", str, check=lambda s: None if s.strip() else "must not be empty"),
        subset=v.get(dm, "dataset", "subset", str, "train", one_of("train", "val", "test", "all")),
        synthetic=synth,
        cache=v.get(dm, "dataset", "cache", str, ".hrvs-cache"),
    )

    isets = top["input_sets"]
    if not isinstance(isets, dict) or not isets:
        v.fail("input_sets", f"must be a non-empty mapping of name -> input set, got {_kind(isets)}")
    input_sets = []
    for iname, im in isets.items():
        key = f"input_sets.{iname}"
        im = v.mapping(im, key, {"resize", "size", "batch_size"}, {"resize", "batch_size"})
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
                v.fail(f"{key}.size", f"must be a positive integer or [height, width] of positive integers, got {s!r}")
            size = (s[0], s[1])
        elif resize == "shorter_side":
            size = (v.get(im, key, "size", int, None, positive),)
            if size[0] is None:
                v.fail(f"{key}.size", "missing required key (shorter_side needs the shorter side in px)")
        elif "size" in im:
            v.fail(f"{key}.size", "not allowed with resize: none (images keep their original size)")
        spec = InputSetSpec(name=str(iname), resize=resize, batch_size=bs, size=size)
        if any(s.key == spec.key for s in input_sets):
            v.fail(key, f"name collides with another input set after slugging ({spec.key!r})")
        input_sets.append(spec)

    mm = v.mapping(top.get("model", {}), "model", {"arch", "num_classes", "precision", "memory_format", "device"})
    model = ModelSpec(
        arch=v.get(mm, "model", "arch", str, "resnet18", one_of("resnet18")),
        num_classes=v.get(mm, "model", "num_classes", int, 29, positive),
        precision=v.get(mm, "model", "precision", str, "float32", one_of("float32", "bfloat16")),
        memory_format=v.get(mm, "model", "memory_format", str, "contiguous",
                            one_of("contiguous", "channels_last")),
        device=v.get(mm, "model", "device", str, "cpu", one_of("cpu", "cuda")),
    )

    om = v.mapping(top.get("optimizer", {}), "optimizer", {"name", "lr", "betas", "weight_decay"})
    betas = v.get(om, "optimizer", "betas", list, [0.9, 0.999])
    if (len(betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                                   for b in betas)):
        v.fail("optimizer.betas", f"must be two numbers in [0, 1), got {betas!r}")
    optimizer = OptimizerSpec(
        name=v.get(om, "optimizer", "name", str, "adam", one_of("adam")),
        lr=v.get(om, "optimizer", "lr", float, 1e-4, positive),
        betas=(float(betas[0]), float(betas[1])),
        weight_decay=v.get(om, "optimizer", "weight_decay", float, 0.0, non_negative),
    )

    tm = v.mapping(top.get("training", {}), "training", {"warmup_steps", "steps", "runs", "seed"})
    training = TrainingSpec(
        warmup_steps=v.get(tm, "training", "warmup_steps", int, 1, non_negative),
        steps=v.get(tm, "training", "steps", int, 10, positive),
        runs=v.get(tm, "training", "runs", int, 3, positive),
        seed=v.get(tm, "training", "seed", int, 0, non_negative),
    )

    scopes = _scopes(v, top["scopes"], "scopes")
    counters = _counters(v, top["counters"], "counters") if "counters" in top else CounterSpec()

    clusters = []
    cl = top.get("clusters", [])
    if not isinstance(cl, list):
        v.fail("clusters", f"must be a list, got {_kind(cl)}")
    for i, cm in enumerate(cl):
        key = f"clusters[{i}]"
        cm = v.mapping(cm, key, {"name", "label", "cpu_model", "scopes", "counters"}, {"name"})
        cname = v.get(cm, key, "name", str, check=lambda s: None if s.strip() else "must not be empty")
        if any(c.name == cname for c in clusters):
            v.fail(f"{key}.name", f"duplicate cluster name {cname!r}")
        label = v.get(cm, key, "label", str)
        cpu_model = v.get(cm, key, "cpu_model", str)
        if label is None and cpu_model is None:
            label = cname
        clusters.append(ClusterSpec(
            name=cname, label=label, cpu_model=cpu_model,
            scopes=_scopes(v, cm["scopes"], f"{key}.scopes") if "scopes" in cm else None,
            counters=_counters(v, cm["counters"], f"{key}.counters") if "counters" in cm else None,
        ))

    em = v.mapping(top.get("execution", {}), "execution",
                   {"exclusive", "cell_timeout_s", "retries", "memory_headroom"})
    execution = ExecutionSpec(
        exclusive=v.get(em, "execution", "exclusive", bool, True),
        cell_timeout_s=v.get(em, "execution", "cell_timeout_s", float, 3600.0, positive),
        retries=v.get(em, "execution", "retries", int, 1, non_negative),
        memory_headroom=v.get(em, "execution", "memory_headroom", float, 0.9,
                              lambda x: None if 0 < x <= 1 else "must be in (0, 1]"),
    )
    return Sweep(name=name, dataset=dataset, input_sets=tuple(input_sets), model=model,
                 optimizer=optimizer, training=training, scopes=scopes, counters=counters,
                 clusters=tuple(clusters), execution=execution, source=source)


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; raises SweepError naming file, key and problem."""
    p = Path(path)
    src = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(src, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SweepError(src, "", f"cannot read: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SweepError(src, "", f"not valid YAML: {where}{getattr(e, 'problem', e)}") from None
    if data is None:
        raise SweepError(src, "", "file is empty")
    return parse_sweep(data, src)

"""A validated sweep as frozen dataclasses (what ``config.parse_sweep`` returns).

Pure: imports neither torch nor ray.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..names import input_set_key
from ..remedy_axes import RemediesSpec, plan_version

RESIZE_KINDS = ("fixed", "shorter_side", "none")


# The vocabularies of the sweep file (the remedies axes' own are in ``remedies``).
DATASET_KINDS = ("mame", "synthetic")
SUBSETS = ("train", "val", "test", "all")
ARCHS = ("resnet18",)
DEVICES = ("cpu", "cuda")
OPTIMIZERS = ("adam",)


@dataclass(frozen=True)
class SyntheticSpec:
    """A MAMe look-alike drawn from the shipped shape table (see ``data.synthetic``)."""
    count: int = 300               # images (rows drawn from the real MAMe table)
    scale: float = 0.1             # linear scale of the real shapes, in (0, 1]
    seed: int = 0                  # rows and pixels
    quality: int = 90              # JPEG quality


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
        return input_set_key(self.name)


@dataclass(frozen=True)
class NetworkSpec:
    """What a cell builds and where: the model section less its precision and memory format,
    which a cell holds once, in its remedy."""
    arch: str = "resnet18"
    num_classes: int = 29
    device: str = "cpu"            # cpu | cuda (one GPU per cell)


@dataclass(frozen=True)
class ModelSpec:
    """The sweep file's ``model:`` section as written."""
    arch: str = NetworkSpec.arch
    num_classes: int = NetworkSpec.num_classes
    precision: str = "float32"     # older spelling of remedies.precision (one value)
    memory_format: str = "contiguous"
    device: str = NetworkSpec.device

    @property
    def network(self) -> NetworkSpec:
        return NetworkSpec(self.arch, self.num_classes, self.device)


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


PROCESS_KINDS = ("fork", "fresh")


@dataclass(frozen=True)
class ExecutionSpec:
    exclusive: bool = True
    cell_timeout_s: float = 3600.0
    retries: int = 1
    memory_headroom: float = 0.9   # fraction of node memory a cell may be planned to use
    # hand the allocator's free heap back before each step (untimed): each step's peak RSS is
    # then its own, but the step re-faults its pages and runs ~9 % slower (measured), so off
    # by default: a timing sweep and a memory sweep want different settings
    release_heap: bool = False
    # how each cell's process starts: ``fork`` of the node's zygote that imported torch once
    # (0.15 s between cells), or ``fresh``: a new interpreter started with exec, the
    # reference a forked cell is checked against (~7 s of imports per cell)
    process: str = "fork"


def implied_remedies(model: ModelSpec) -> RemediesSpec:
    """What a sweep without a ``remedies:`` section runs: the paper's setup with the
    model's (older) precision and memory_format keys."""
    return RemediesSpec(precision=(model.precision,), memory_format=(model.memory_format,))


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
    remedies: RemediesSpec = field(default_factory=RemediesSpec)
    source: str = ""

    def input_set(self, name: str) -> InputSetSpec:
        for s in self.input_sets:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Everything but ``source``, JSON-ready with ``default=list``; ``from_dict`` reads it back."""
        d = asdict(self)
        d.pop("source")
        return d

    @staticmethod
    def from_dict(d: dict[str, Any], source: str = "") -> Sweep:
        """The inverse of ``to_dict`` (also after a JSON round trip, as in ``sweep.json``); a
        definition of an older schema goes through ``store.migrate.upgrade_definition`` first."""
        ds = dict(d["dataset"])
        ds["synthetic"] = SyntheticSpec(**ds["synthetic"]) if ds.get("synthetic") else None
        model = ModelSpec(**d["model"])
        opt = dict(d["optimizer"], betas=tuple(d["optimizer"]["betas"]))
        clusters = tuple(ClusterSpec(**dict(c, scopes=tuple(c["scopes"]) if c.get("scopes") is not None else None,
                                            counters=CounterSpec(**c["counters"]) if c.get("counters") else None))
                         for c in d.get("clusters", ()))
        remedies = RemediesSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["remedies"].items()})
        return Sweep(name=d["name"], dataset=DatasetSpec(**ds),
                     input_sets=tuple(InputSetSpec(**dict(i, size=tuple(i["size"]))) for i in d["input_sets"]),
                     model=model, optimizer=OptimizerSpec(**opt), training=TrainingSpec(**d["training"]),
                     scopes=tuple(d["scopes"]), counters=CounterSpec(**d.get("counters", {})),
                     clusters=clusters, execution=ExecutionSpec(**d.get("execution", {})),
                     remedies=remedies, source=source)

    @property
    def plan_version(self) -> int:
        """The plan version this sweep's batches are drawn by (see ``remedies.PLAN_VERSION``)."""
        return plan_version(self.remedies.batching)

    def fingerprint(self) -> str:
        """Hash of everything that changes what a cell measures (not ``execution`` knobs),
        so a results folder can refuse rows of a different sweep definition."""
        d = self.to_dict()
        d.pop("execution")
        # where the dataset and cache live does not change what is measured (the dataset's
        # content is identified by its metadata hash in the cache key)
        d["dataset"].pop("path")
        d["dataset"].pop("cache")
        # A sweep that runs only what its model keys imply hashes as it did before the
        # remedies axes existed, so its results folder still resumes.
        remedies = self.remedies.without_unused_params()
        if remedies == implied_remedies(self.model):
            d.pop("remedies")
        else:
            d["remedies"] = asdict(remedies)
            # axes added later hash only when used, so older definitions keep their fingerprint
            for axis, default in (("kernel_cache", ("default",)), ("shape_round", (0,)), ("compile", ("eager",)),
                                  ("split", ("shard",))):
                if d["remedies"][axis] == default:
                    d["remedies"].pop(axis)
            if "compile" not in d["remedies"]:   # the compiler's parameters mean nothing without it
                d["remedies"].pop("compile_cache")
                d["remedies"].pop("recompile_limit")
        # which images each policy trains on: a sweep whose policies' batches changed
        # (plan version > 1) cannot share a fingerprint with one planned before
        if self.plan_version > 1:
            d["plan_version"] = self.plan_version
        blob = json.dumps(d, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

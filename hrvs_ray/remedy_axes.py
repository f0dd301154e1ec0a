"""The remedies axes (beyond the paper): what a user can change to pay less for padding.

Pure: no torch, no ray. A sweep lists one or more values per axis; every cell runs one
``Remedy`` (one value per axis). The paper's setup is ``pad`` + ``float32`` +
``contiguous`` + ``none``; it is the default, and cells that run it keep the ids and
fingerprints they had before the axes existed.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

BATCHING = ("pad", "bucket", "accumulate")
PRECISION = ("float32", "bfloat16")
MEMORY_FORMAT = ("contiguous", "channels_last")
CHECKPOINTING = ("none", "stages")
KERNEL_CACHE = ("default", "off")   # off: oneDNN primitive cache 0, ideep LRU cache 1 (see train.kernel_cache)
# torch.compile of the model's forward (backward follows through AOTAutograd; loss and
# optimizer stay eager): eager = not compiled (the paper's), static = dynamic=False, auto =
# PyTorch's default (dynamic=None: the first recompile turns sizes symbolic), dynamic =
# dynamic=True (every size symbolic from the first compile). See train.compiling.
COMPILE = ("eager", "static", "auto", "dynamic")
# how a data-parallel cell deals each optimizer step's images to its ranks (plan.rank_split):
# shard = in order, as torch's DistributedSampler (the default); balanced = equal counts ±1,
# the largest rank's padded pixels made small; uniform = shard's images, every rank padded
# to the step's largest. A single-rank cell runs shard only (it has nothing to split).
SPLIT = ("shard", "balanced", "uniform")
COMPILE_CACHE = ("cold", "warm")   # cold: an empty compiler cache folder per cell
DEFAULT_RECOMPILE_LIMIT = 8        # torch._dynamo.config.recompile_limit's own default
# the parameters of a compiled cell: absent from ids, labels and rows of eager cells
COMPILE_PARAMS = ("compile_cache", "recompile_limit")
COMPILE_PARAM_DEFAULTS = {"compile_cache": "cold", "recompile_limit": DEFAULT_RECOMPILE_LIMIT}
AXES = ("batching", "precision", "memory_format", "checkpointing")   # product order, outermost first
# Opt-in axes (added after the first four): they enter a cell's id and label only when not at
# their default, so every cell that does not use them keeps the id and label it had before
# they existed.
OPT_IN_AXES = ("kernel_cache", "shape_round", "compile", "split")
OPT_IN_DEFAULTS = {"kernel_cache": "default", "shape_round": 0, "compile": "eager", "split": "shard"}
NO_ROUND = 0              # shape_round: 0 = passes padded only to their largest image
DEFAULT_WINDOW = 64       # bucket: batches per shape-sorting window
DEFAULT_MICRO_BATCH = 1   # accumulate: images per micro-batch
# The one rule for batching parameters: each belongs to exactly one policy and means nothing
# under another (it is then absent from ids, labels, rows and fingerprints, and refused in
# a sweep file). Every reader and writer asks ``uses`` / ``Remedy.policy_params``.
POLICY_PARAMS = {"window": "bucket", "micro_batch": "accumulate"}
PARAM_DEFAULTS = {"window": DEFAULT_WINDOW, "micro_batch": DEFAULT_MICRO_BATCH}
# the columns a remedy occupies in steps and cells rows (``Remedy.to_row``)
ROW_COLUMNS = (*AXES, "remedy", *POLICY_PARAMS, *OPT_IN_AXES, *COMPILE_PARAMS)


def uses(batching: str, param: str) -> bool:
    """Whether batching policy ``batching`` uses parameter ``param`` (window, micro_batch)."""
    return POLICY_PARAMS[param] == batching

_SHORT = {"pad": "pad", "bucket": "bucket", "accumulate": "accum", "float32": "fp32", "bfloat16": "bf16",
          "contiguous": "nchw", "channels_last": "nhwc", "none": "", "stages": "ckpt"}


@dataclass(frozen=True)
class Remedy:
    """One value per axis, plus the parameters of the batching policy it uses."""
    batching: str = "pad"
    precision: str = "float32"
    memory_format: str = "contiguous"
    checkpointing: str = "none"
    window: int = DEFAULT_WINDOW            # used by bucket only
    micro_batch: int = DEFAULT_MICRO_BATCH  # used by accumulate only
    kernel_cache: str = "default"           # default | off (PyTorch's CPU kernel caches)
    shape_round: int = NO_ROUND             # pad each pass up to a multiple of this many px (0: none)
    compile: str = "eager"                  # eager | static | auto | dynamic (torch.compile of the forward)
    compile_cache: str = "cold"             # used by compiled cells only: cold | warm
    recompile_limit: int = DEFAULT_RECOMPILE_LIMIT   # used by compiled cells only
    split: str = "shard"                    # shard | balanced | uniform (data-parallel cells; SPLIT)

    @property
    def axes(self) -> tuple:
        """The values that tell setups apart (the later axes only where not default)."""
        return (self.batching, self.precision, self.memory_format, self.checkpointing) + tuple(
            v for a, v in self.later_axes().items())

    def later_axes(self) -> dict[str, Any]:
        """The later axes whose value is not their default."""
        return {a: getattr(self, a) for a in OPT_IN_AXES if getattr(self, a) != OPT_IN_DEFAULTS[a]}

    @property
    def is_paper(self) -> bool:
        return self.axes == PAPER.axes

    def compile_params(self) -> dict[str, Any]:
        """The compiler's parameters (cache, recompile limit) when this remedy compiles; empty
        for eager, where they mean nothing."""
        return {} if self.compile == "eager" else {p: getattr(self, p) for p in COMPILE_PARAMS}

    def policy_params(self) -> dict[str, int]:
        """The batching parameters this remedy's policy uses, with their values."""
        return {p: getattr(self, p) for p in POLICY_PARAMS if uses(self.batching, p)}

    @property
    def label(self) -> str:
        """Short human name, e.g. 'bucket+bf16+nhwc+ckpt' ('pad+fp32+nchw' is the paper's)."""
        parts = [_SHORT[self.batching], _SHORT[self.precision], _SHORT[self.memory_format],
                 _SHORT[self.checkpointing]]
        short = {"window": "w", "micro_batch": "mb"}
        parts[0] += "".join(f"({short[p]}{v})" for p, v in self.policy_params().items() if v != PARAM_DEFAULTS[p])
        if self.shape_round:
            parts[0] += f"(r{self.shape_round})"
        if self.kernel_cache != "default":
            parts.append(f"kc-{self.kernel_cache}")
        if self.compile != "eager":
            extra = "".join(f"({'warm' if p == 'compile_cache' else f'lim{v}'})"
                            for p, v in self.compile_params().items() if v != COMPILE_PARAM_DEFAULTS[p])
            parts.append(f"compile-{self.compile}{extra}")
        if self.split != "shard":
            parts.append(f"split-{self.split}")
        return "+".join(p for p in parts if p)

    def to_row(self) -> dict[str, Any]:
        """The remedy's columns of a steps or cells row (``ROW_COLUMNS``): a parameter its
        policy does not use is null."""
        return {**{a: getattr(self, a) for a in AXES}, "remedy": self.label,
                **{p: self.policy_params().get(p) for p in POLICY_PARAMS},
                **{a: getattr(self, a) for a in OPT_IN_AXES},
                **{p: self.compile_params().get(p) for p in COMPILE_PARAMS}}

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | Any) -> Remedy:
        """The remedy a row (a mapping, or a pandas row / namedtuple with those attributes)
        records; null or absent parameters take their defaults."""
        get = row.get if isinstance(row, Mapping) else (lambda k, d=None: getattr(row, k, d))
        values: dict[str, Any] = {a: get(a) for a in AXES if _present(get(a))}
        values.update({p: int(get(p)) for p in POLICY_PARAMS if _present(get(p))})
        if _present(get("kernel_cache")):
            values["kernel_cache"] = get("kernel_cache")
        if _present(get("shape_round")):
            values["shape_round"] = int(get("shape_round"))
        if _present(get("compile")):
            values["compile"] = get("compile")
        if _present(get("compile_cache")):
            values["compile_cache"] = get("compile_cache")
        if _present(get("recompile_limit")):
            values["recompile_limit"] = int(get("recompile_limit"))
        if _present(get("split")):
            values["split"] = get("split")
        return cls(**values)

    def id_params(self, base: Remedy | None = None) -> dict:
        """What enters a cell id: empty for the sweep's base setup (``base``, default the
        paper's), so ids written before the axes existed stay valid; otherwise every axis
        plus the parameters of the batching policy actually used."""
        if self.axes == (base or PAPER).axes:
            return {}
        return {**{a: getattr(self, a) for a in AXES}, **self.policy_params(), **self.later_axes(),
                **self.compile_params()}


PAPER = Remedy()


def _present(v: Any) -> bool:
    return v is not None and v == v   # NaN (a missing value in pandas) is not equal to itself


@dataclass(frozen=True)
class RemediesSpec:
    """The sweep's ``remedies:`` section: values per axis (each a non-empty tuple)."""
    batching: tuple[str, ...] = ("pad",)
    precision: tuple[str, ...] = ("float32",)
    memory_format: tuple[str, ...] = ("contiguous",)
    checkpointing: tuple[str, ...] = ("none",)
    window: int = DEFAULT_WINDOW
    micro_batch: int = DEFAULT_MICRO_BATCH
    kernel_cache: tuple[str, ...] = ("default",)
    shape_round: tuple[int, ...] = (NO_ROUND,)
    compile: tuple[str, ...] = ("eager",)
    compile_cache: str = "cold"
    recompile_limit: int = DEFAULT_RECOMPILE_LIMIT
    split: tuple[str, ...] = ("shard",)

    def combinations(self, ranks: int | None = None) -> list[Remedy]:
        """The cartesian product in a fixed order: batching outermost, then precision,
        memory format, checkpointing, kernel cache, shape rounding, compile, split (each in
        the order the sweep lists them). ``ranks`` is the rank count of the scope they run
        at: with 1 every combination runs split ``shard`` only, once, whatever ``split``
        lists (a single rank has nothing to split); None or > 1: every listed split."""
        splits = ("shard",) if ranks == 1 else self.split
        # an eager cell carries the compiler parameters' defaults: they mean nothing to it
        return [Remedy(b, p, m, c, self.window, self.micro_batch, k, r, cp,
                       *((self.compile_cache, self.recompile_limit) if cp != "eager" else
                         (COMPILE_PARAM_DEFAULTS["compile_cache"], DEFAULT_RECOMPILE_LIMIT)), sp)
                for b, p, m, c, k, r, cp, sp in itertools.product(
                    self.batching, self.precision, self.memory_format, self.checkpointing, self.kernel_cache,
                    self.shape_round, self.compile, splits)]

    @property
    def replays(self) -> bool:
        """Whether its cells replay their timed batches (``CellSpec.replay``): in a sweep that
        compiles, every compile value, eager included, so all are paired on the same images."""
        return any(c != "eager" for c in self.compile)

    def without_unused_params(self) -> RemediesSpec:
        """This spec with each batching parameter at its default unless a listed policy uses it."""
        return replace(self, **{p: getattr(self, p) if any(uses(b, p) for b in self.batching) else PARAM_DEFAULTS[p]
                                for p in POLICY_PARAMS})

    @property
    def is_default(self) -> bool:
        combos = self.combinations()
        return len(combos) == 1 and combos[0].is_paper


# The plan's version: which images each step of each policy trains on. A results folder
# is only resumed under the plan that wrote it. Version 2 (issue 16): every policy trains
# on the images of ``pad``'s steps (bucket regroups them instead of drawing its own from
# the whole epoch). Only the policies whose batches changed carry the new version, so a
# sweep of ``pad``/``accumulate`` alone keeps its fingerprint (its batches are unchanged).
PLAN_VERSION = 2
POLICY_PLAN_VERSION = {"pad": 1, "accumulate": 1, "bucket": 2}   # version that last changed it


def plan_version(batching: tuple[str, ...] | list[str]) -> int:
    """The plan version a sweep of these batching policies is planned (and fingerprinted) by."""
    return max(POLICY_PLAN_VERSION[b] for b in batching)

"""Sweep files: load, validate, and turn into frozen dataclasses.

Pure: imports neither torch nor ray. Every problem is reported as
``FILE: key.path: problem`` so a user can fix a sweep without reading code.

The pieces: ``config_yaml`` reads YAML safely (duplicate keys, runaway aliases),
``config_sections`` and ``config_remedies`` hold one parser per section, ``config_check``
the validator they share, ``config_specs`` the dataclasses. Import them from here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..remedy_axes import RemediesSpec
from ..scopes import SCOPE_RE
from .check import SweepError, Validator
from .remedies_section import parse_remedies
from .safe_yaml import load_yaml
from .sections import (
    NAME_MAX,
    parse_clusters,
    parse_counters,
    parse_dataset,
    parse_execution,
    parse_input_sets,
    parse_model,
    parse_name,
    parse_optimizer,
    parse_scopes,
    parse_training,
)
from .specs import (
    RESIZE_KINDS,
    ClusterSpec,
    CounterSpec,
    DatasetSpec,
    ExecutionSpec,
    InputSetSpec,
    ModelSpec,
    NetworkSpec,
    OptimizerSpec,
    Sweep,
    SyntheticSpec,
    TrainingSpec,
    implied_remedies,
)

__all__ = ["NAME_MAX", "RESIZE_KINDS", "SCOPE_RE", "ClusterSpec", "CounterSpec", "DatasetSpec",
           "ExecutionSpec", "InputSetSpec", "ModelSpec", "NetworkSpec", "OptimizerSpec", "RemediesSpec",
           "Sweep", "SweepError", "SyntheticSpec", "TrainingSpec", "implied_remedies", "load_sweep", "parse_sweep"]

TOP_KEYS = {"name", "dataset", "input_sets", "model", "optimizer", "training", "scopes", "counters",
            "clusters", "execution", "remedies"}
REQUIRED = {"name", "dataset", "input_sets", "scopes"}


def parse_sweep(data: Any, source: str = "<sweep>") -> Sweep:
    """Validate a parsed YAML document, section by section in file order. Relative dataset
    paths are kept as written (they resolve against the working directory, as the README says)."""
    v = Validator(source)
    top = v.mapping(data, "", TOP_KEYS, REQUIRED)
    name = parse_name(v, top["name"])
    dataset = parse_dataset(v, top["dataset"])
    input_sets = parse_input_sets(v, top["input_sets"])
    model = parse_model(v, top.get("model", {}))
    optimizer = parse_optimizer(v, top.get("optimizer", {}))
    training = parse_training(v, top.get("training", {}))
    scopes = parse_scopes(v, top["scopes"], "scopes")
    counters = parse_counters(v, top["counters"], "counters") if "counters" in top else CounterSpec()
    clusters = parse_clusters(v, top.get("clusters", []))
    execution = parse_execution(v, top.get("execution", {}))
    remedies = parse_remedies(v, top.get("remedies", {}), model, set(top.get("model", {})), input_sets)
    return Sweep(name=name, dataset=dataset, input_sets=input_sets, model=model, optimizer=optimizer,
                 training=training, scopes=scopes, counters=counters, clusters=clusters,
                 execution=execution, remedies=remedies, source=source)


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; raises SweepError naming file, key and problem."""
    src = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(src, "", "file not found") from None
    except IsADirectoryError:
        raise SweepError(src, "", "is a directory, not a sweep file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SweepError(src, "", f"cannot read: {e}") from None
    data = load_yaml(text, src)
    if data is None:
        raise SweepError(src, "", "file is empty")
    return parse_sweep(data, src)

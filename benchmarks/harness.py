"""The benchmark suite's shared harness: one command line, repeats, median and spread,
provenance, and a dated JSON file per run.

A benchmark is a short module that builds a :class:`Benchmark` and hands it to :func:`main`::

    python -m benchmarks.NAME [--repeats N] [--quick] [--out FILE] [its own options]

Run from the repository root (``benchmarks`` and ``tests.fixtures`` are imported as packages
from the working directory; nothing edits ``sys.path``). ``--quick`` swaps in the
benchmark's smallest sizes: a check that the benchmark runs, not a figure to quote.

Each repeat returns named values (seconds, bytes, ratios); the harness keeps every value
and summarises each name by its median, quartiles, interquartile range and min/max
(the median and IQR because a shared, noisy machine produces outliers a mean would absorb).
The JSON records the command line, the options, every value, the summary, and where the
run came from: :func:`hrvs_ray.cluster.provenance.collect_provenance` (hrvs-ray version, git
revision, Python, container image and digest, scheduler job) and the host's identity
(:func:`hrvs_ray.plan.memory_identity.local_identity`: CPU model, online CPUs, memory,
torch release), so a figure quoted in ``docs/measured-figures.md`` can cite its file.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrvs_ray.cluster.provenance import collect_provenance
from hrvs_ray.plan.memory_identity import local_identity

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


@dataclass
class Benchmark:
    """What one benchmark measures.

    ``once(args, ctx)`` runs one repeat and returns its values by name (unit from the name's
    suffix: ``_s``, ``_bytes``, ``_us``; or from ``units``). ``setup(args, stack)``
    (optional) prepares what every repeat shares (generated data, a temporary folder
    registered on ``stack``) and returns it as ``ctx``, untimed. ``quick`` holds the option
    values ``--quick`` substitutes, and ``check(args, summary)`` returns problems that make
    the run exit 1 (e.g. a time limit the issue set). ``info(args, ctx)`` adds facts about
    the input (sizes, shapes). ``conclude(args, values)`` (optional) turns every repeat's
    values into named conclusions the median cannot state, e.g. a ratio's interval over the
    repeats; they are printed and kept in the JSON under ``conclusions``."""

    name: str
    description: str
    once: Callable[[argparse.Namespace, Any], Mapping[str, float]]
    setup: Callable[[argparse.Namespace, contextlib.ExitStack], Any] | None = None
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    quick: Mapping[str, Any] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)
    check: Callable[[argparse.Namespace, dict[str, dict[str, Any]]], list[str]] | None = None
    info: Callable[[argparse.Namespace, Any], Mapping[str, Any]] | None = None
    conclude: Callable[[argparse.Namespace, Mapping[str, Sequence[float]]], Mapping[str, Any]] | None = None
    default_repeats: int = 3


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median, quartiles, IQR, min and max of one value's repeats, and the repeats themselves."""
    vals = sorted(float(v) for v in values)
    if not vals:
        raise ValueError("no values to summarise")
    if len(vals) >= 2:
        q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    else:
        q1 = q3 = vals[0]
    return {"n": len(vals), "median": statistics.median(vals), "q1": q1, "q3": q3, "iqr": q3 - q1,
            "min": vals[0], "max": vals[-1], "values": [float(v) for v in values]}


def provenance() -> dict[str, Any]:
    """Where a run came from: the tool's own provenance record plus the host's identity."""
    return {**collect_provenance(), "host": local_identity(), "argv": list(sys.argv)}


def default_out(name: str, quick: bool, today: dt.date | None = None) -> Path:
    """``benchmarks/results/<UTC date>-<name>[-quick].json``: dated, so runs accumulate
    instead of overwriting, and a quick run is never mistaken for a measurement."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    return RESULTS / f"{today.isoformat()}-{name}{'-quick' if quick else ''}.json"


def build_parser(bench: Benchmark) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"python -m benchmarks.{bench.name}", description=bench.description)
    ap.add_argument("--repeats", type=int, default=None,
                    help=f"repeats to summarise (default {bench.default_repeats}; 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="smallest sizes: shows the benchmark runs, not a figure")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON file to write (default benchmarks/results/<date>-<name>.json)")
    if bench.add_arguments:
        bench.add_arguments(ap)
    return ap


def run(bench: Benchmark, args: argparse.Namespace) -> dict[str, Any]:
    """Run the repeats and return the JSON document (nothing written)."""
    if args.quick:
        for key, value in bench.quick.items():
            setattr(args, key, value)
    repeats = args.repeats or (1 if args.quick else bench.default_repeats)
    if repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    started = dt.datetime.now(dt.timezone.utc)
    values: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        ctx = bench.setup(args, stack) if bench.setup else None
        info = dict(bench.info(args, ctx)) if bench.info else {}
        t0 = time.perf_counter()
        for i in range(repeats):
            got = bench.once(args, ctx)
            for key, value in got.items():
                values.setdefault(key, []).append(float(value))
            print(f"[{bench.name}] repeat {i + 1}/{repeats}: "
                  + ", ".join(f"{k} {_fmt(v, unit(bench, k))}" for k, v in got.items()), file=sys.stderr)
        wall = time.perf_counter() - t0
    summary = {k: {"unit": unit(bench, k), **summarize(v)} for k, v in values.items()}
    conclusions = dict(bench.conclude(args, values)) if bench.conclude else {}
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("out",)}
    return {"benchmark": bench.name, "description": bench.description, "started": started.isoformat(),
            "wall_seconds": wall, "repeats": repeats, "quick": bool(args.quick), "options": options,
            "info": info, "summary": summary, "conclusions": conclusions, "provenance": provenance()}


def main(bench: Benchmark, argv: Sequence[str] | None = None) -> int:
    """The common command line: parse, run, print one line per value, write the JSON.
    Exit 1 when the benchmark's own check fails, 0 otherwise."""
    args = build_parser(bench).parse_args(argv)
    doc = run(bench, args)
    problems = bench.check(args, doc["summary"]) if bench.check else []
    doc["problems"] = problems
    out = args.out or default_out(bench.name, doc["quick"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    for key, s in doc["summary"].items():
        unit = s["unit"]
        print(f"{key:<40} median {_fmt(s['median'], unit):>12}  IQR {_fmt(s['iqr'], unit):>10}  "
              f"min {_fmt(s['min'], unit):>10}  max {_fmt(s['max'], unit):>10}  (n={s['n']})")
    for key, value in doc["conclusions"].items():
        print(f"{key}: {value}")
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    print(f"wrote {out}")
    return 1 if problems else 0


SUFFIX_UNITS = {"_s": "s", "_bytes": "bytes", "_us": "us"}


def unit(bench: Benchmark, key: str) -> str | None:
    """A value's unit: the benchmark's word for it, else its name's suffix (``_s``, ``_bytes``, ``_us``)."""
    if key in bench.units:
        return bench.units[key]
    return next((u for suffix, u in SUFFIX_UNITS.items() if key.endswith(suffix)), None)


def _fmt(value: float, unit: str | None) -> str:
    if unit == "bytes":
        return f"{value / 1e6:.1f} MB"
    if unit == "s":
        return f"{value:.3f} s" if value >= 0.01 else f"{value * 1e3:.2f} ms"
    if unit == "us":
        return f"{value:.1f} us"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.4g}" + (f" {unit}" if unit else "")

"""The commands: each parses nothing, takes the parsed arguments and returns an exit code.
Imports are deferred into each command so ``plan`` and bad-input paths never load torch
or Ray."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import UserError
from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, _err
from .summary import _print_data_parallel, _print_plan, print_summary


def cmd_plan(args: argparse.Namespace) -> int:
    from ..config import load_sweep
    from ..plan.table import batch_table, check_plan, planning_shapes

    sweep = load_sweep(args.sweep)
    if args.batches <= 0:
        raise UserError("--batches must be > 0")
    shapes, source = planning_shapes(sweep)
    check_plan(sweep, shapes, source)
    estimate, memory_source = _plan_estimator(args.memory_from)
    from ..plan.memory_model import FitError
    try:
        table = batch_table(sweep, args.batches, shapes, estimate)
    except FitError as e:
        raise UserError(f"{args.memory_from}: {e}; delete its memory_fit.json to refit, or plan without "
                        "--memory-from") from e
    from ..plan.memory_calibration import fallback_note
    fallback = fallback_note(estimate) if hasattr(estimate, "fallbacks") else None
    if fallback:
        memory_source += f"; {fallback}"
        print(f"warning: {fallback}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(table, indent=2))
        return EXIT_OK
    print(f"sweep {sweep.name}: {args.batches} seeded batches per input set; shapes from {source} "
          f"({len(shapes)} images, subset {sweep.dataset.subset})")
    _print_plan(table)
    print(f"(memory: {memory_source})")
    from ..plan.table import data_parallel_ranks, split_table
    if data_parallel_ranks(sweep):
        from ..node.node_info import map_scope
        from ..node.topology import read_topology
        from ..scopes import ranks_of, scope_key
        scopes = set(sweep.scopes) | {s for c in sweep.clusters if c.scopes for s in c.scopes}
        topo = read_topology(args.sysroot)      # an unreadable snapshot raises TopologyError
        _print_data_parallel(split_table(sweep, args.batches, shapes), args.sysroot,
                             {s: map_scope(topo, s) for s in sorted(scopes, key=scope_key) if ranks_of(s) > 1})
    return EXIT_OK


def _plan_estimator(memory_from: str | None) -> tuple[Any, str]:
    """The built-in memory model, or the one calibrated on a results folder for a machine like
    this one (an unusable folder raises ResultsError, a UserError)."""
    from ..plan.memory_model import estimate_step_bytes

    builtin = "built-in model (the paper's 430 B/px, remedy factors measured)"
    if not memory_from:
        return estimate_step_bytes, builtin
    from ..plan.memory_calibration import plan_estimator

    est, text = plan_estimator(memory_from)
    if est is None:
        print(f"warning: {text}", file=sys.stderr)
        return estimate_step_bytes, text
    return est, text


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..config import load_sweep

    sweep = load_sweep(args.sweep)
    if args.data:
        sweep = replace(sweep, dataset=replace(sweep.dataset, path=args.data))
    out = Path(args.out) if args.out else Path("results") / sweep.name
    from ..cluster.driver import run_sweep
    from ..cluster.progress import cell_progress
    from ..cluster.ray_job import check_outside_job_package, choose_address

    check_outside_job_package(out, given=bool(args.out))   # before anything runs or is written
    try:
        where = choose_address(args.address)
    except ConnectionError as e:
        if isinstance(e, UserError):
            raise
        raise UserError(str(e)) from e
    try:
        summary = run_sweep(sweep, out, cell_progress(not args.no_progress), address=where.target,
                            fresh=args.fresh, why=where.why, say=lambda line: print(line, flush=True))
    except ConnectionError as e:  # an address that does not answer is bad input too
        if isinstance(e, UserError):  # a token problem: its text names the cause and the variables
            raise
        shown = args.address or os.environ.get("RAY_ADDRESS")
        raise UserError(f"cannot reach the Ray cluster at {shown!r}: {e}") from e
    except KeyboardInterrupt:
        _err(f"interrupted; every finished cell is saved in {out}; run the same command again to resume")
        return EXIT_INTERRUPTED
    for note in summary.notes:
        print(f"note: {note}")
    print(f"\nsweep {sweep.name}: {summary.total} cells: {summary.already_done} already done, "
          f"{summary.ok} ran ok, {len(summary.failed)} failed, {len(summary.skipped)} skipped "
          f"in {summary.wall_seconds:.1f} s -> {out}")
    for cid, why in summary.skipped:
        print(f"  skipped {cid}: {why}")
    for cid, why in summary.failed:
        print(f"  FAILED  {cid}: {why}")
    try:
        print_summary(out)
    except Exception as e:  # the results are on disk; a summary problem must not hide them
        _err(f"could not summarise {out}: {e}")
    if not args.no_report:
        report_path = Path("reports") / f"{sweep.name}.html"
        try:
            from ..report import build_report

            build_report([out], report_path)
            print(f"\nreport: {report_path}")
        except Exception as e:
            _err(f"report not written ({type(e).__name__}: {e}); results are in {out}; "
                 f"retry with: hrvs-ray report {out} -o {report_path}")
    return EXIT_FAILED if summary.failed else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import build_report

    path = build_report([Path(d) for d in args.dirs], Path(args.output))
    print(f"report: {path}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    """Exit 1 when some (group × metric) test rejects 'ratio <= 1 + threshold' with a Holm-adjusted
    p below --alpha, 0 otherwise, 2 on bad input (unreadable folder, nothing matches, different
    images, an alpha outside (0, 1))."""
    from ..report.compare import compare
    from ..report.compare_output import to_json, to_text

    if not 0 <= args.threshold < 1000:
        raise UserError("--threshold must be a percentage in [0, 1000)")
    if not 0 < args.alpha < 1:
        raise UserError("--alpha must be in (0, 1)")
    c = compare(Path(args.base), Path(args.new), args.threshold, args.alpha, [Path(d) for d in args.noise_from])
    print(json.dumps(to_json(c), indent=2) if args.format == "json" else to_text(c))
    return c.exit_code


def cmd_synth(args: argparse.Namespace) -> int:
    from ..config import SyntheticSpec
    from ..data.synthetic import ensure_synthetic

    if not 0 < args.scale <= 1 or args.count <= 0 or not 1 <= args.quality <= 100:
        raise UserError("--scale must be in (0, 1], --count > 0, --quality in 1..100")
    spec = SyntheticSpec(count=args.count, scale=args.scale, seed=args.seed, quality=args.quality)
    made = ensure_synthetic(Path(args.out), spec)
    print(f"{'wrote' if made else 'already present:'} {args.count} synthetic MAMe-like images in {args.out}")
    return EXIT_OK


def cmd_data_check(args: argparse.Namespace) -> int:
    """Exit 0 when every image and row is fine, 1 listing every problem, 2 on bad input."""
    from ..config import load_sweep
    from ..data.check import format_problems
    from ..plan.preflight import data_check

    sweep = load_sweep(args.sweep)
    if args.data:
        sweep = replace(sweep, dataset=replace(sweep.dataset, path=args.data))
    if args.workers is not None and args.workers <= 0:
        raise UserError("--workers must be > 0")
    unknown = sorted(set(args.input_sets or ()) - {i.name for i in sweep.input_sets})
    if unknown:
        raise UserError(f"--input-sets: {', '.join(unknown)} not in {args.sweep} "
                        f"(it has: {', '.join(i.name for i in sweep.input_sets)})")
    res = data_check(sweep, args.input_sets, every_image=args.all, workers=args.workers,
                     progress=not args.no_progress)
    summary = (f"checked {res.checked} images of subset {sweep.dataset.subset!r} in {res.seconds:.1f} s: "
               f"{len(res.problems) or 'no'} problem{'' if len(res.problems) == 1 else 's'}")
    if args.format == "json":
        print(json.dumps([p.to_dict() for p in res.problems], indent=2))
        print(summary, file=sys.stderr)
    else:
        if res.problems:
            print(format_problems(res.problems))
        print(summary)
    return EXIT_FAILED if res.problems else EXIT_OK


def cmd_node_info(args: argparse.Namespace) -> int:
    from ..node.node_info import describe_node, format_node_info

    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    try:
        doc = describe_node(args.sysroot, scopes)   # an unreadable snapshot raises TopologyError
    except ValueError as e:    # a malformed scope (the scope parser's own ValueError)
        raise UserError(str(e)) from e
    if Path(args.sysroot) == Path("/"):         # a snapshot has no CPUs to run kernels on
        from ..probes.ceiling import measure_scope
        # a data-parallel scope's ranks each have their rank scope's ceiling: measure that scope
        doc["ceilings"] = {s: measure_scope(p["cpus"], p["threads"]) for s, p in doc["scopes"].items()
                           if "cpus" in p and "ranks" not in p}
    print(json.dumps(doc, indent=2, default=str) if args.format == "json" else format_node_info(doc))
    return EXIT_OK

"""``hrvs-ray``: sweep | plan | report | compare | data synth | node-info.

Imports are deferred into each command so ``plan`` and bad-input paths never load torch
or Ray. Exit codes: 0 ok, 1 some cell failed, 2 bad input (nothing ran), 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _err(msg: str) -> None:
    print(f"hrvs-ray: error: {msg}", file=sys.stderr)


def cmd_plan(args: argparse.Namespace) -> int:
    from .config import load_sweep
    from .plan.table import batch_table, check_plan, planning_shapes

    sweep = load_sweep(args.sweep)
    if args.batches <= 0:
        _err("--batches must be > 0")
        return EXIT_BAD_INPUT
    shapes, source = planning_shapes(sweep)
    check_plan(sweep, shapes, source)
    estimate, memory_source = _plan_estimator(args.memory_from)
    if estimate is None:
        return EXIT_BAD_INPUT
    from .plan.memory_model import FitError
    try:
        table = batch_table(sweep, args.batches, shapes, estimate)
    except FitError as e:
        _err(f"{args.memory_from}: {e}; delete its memory_fit.json to refit, or plan without --memory-from")
        return EXIT_BAD_INPUT
    from .plan.memory_calibration import fallback_note
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
    return EXIT_OK


def _plan_estimator(memory_from: str | None) -> tuple[Any, str]:
    """The built-in memory model, or the one calibrated on a results folder for a machine like
    this one (None on error)."""
    from .plan.memory_model import estimate_step_bytes

    builtin = "built-in model (the paper's 430 B/px, remedy factors measured)"
    if not memory_from:
        return estimate_step_bytes, builtin
    from .plan.memory_calibration import plan_estimator
    from .store import ResultsError

    try:
        est, text = plan_estimator(memory_from)
    except ResultsError as e:
        _err(str(e))
        return None, ""
    if est is None:
        print(f"warning: {text}", file=sys.stderr)
        return estimate_step_bytes, text
    return est, text


def _print_plan(table: dict[str, dict]) -> None:
    width = max(10, *(len(n) for n in table))
    head = (f"{'input set':<{width}} {'batch':>5}  {'informative MP':>20}  {'padding MP':>20}  "
            f"{'total MP':>20}  {'padding':>7}  {'shapes':>6}")
    print(head)
    print("-" * len(head))
    for name, e in table.items():
        cols = "  ".join(f"{_mp(e[k]['min'])}/{_mp(e[k]['avg'])}/{_mp(e[k]['max'])}"
                         for k in ("informative", "padding", "total"))
        print(f"{name:<{width}} {e['batch_size']:>5}  {cols}  {e['padding_share']:>7.1%}  {e['distinct_shapes']:>6}")
    print("(min/avg/max per optimizer step; padding = Σ padding ÷ Σ total pixels over the planned steps; shapes = "
          "distinct pass shapes, batch x H x W, over all passes: one kernel-cache entry each)")
    print("\nplanned main memory per training step, GB (avg/max):")
    for name, e in table.items():
        cells = ", ".join(f"{m['precision']}/{m['memory_format']}/{m['checkpointing']} "
                          f"{m['gb']['avg']:.2f}/{m['gb']['max']:.2f}" for m in e["memory"])
        print(f"  {name:<{width}} {cells}")
    _print_sampled_vs_epoch(table, width)


def _print_sampled_vs_epoch(table: dict[str, dict], width: int) -> None:
    """What the sweep's timed steps stand for: padding and label diversity over them and
    over one full epoch (plan.epoch)."""
    print("\nsampled steps vs a full epoch: padding % (Σ padding ÷ Σ total) and classes per batch "
          "(distinct mean/min, largest class share mean/max)")
    print(f"{'input set':<{width}} {'sampled':>16}  {'padding':>7}  {'classes':>10}  {'top class':>9}   "
          f"{'epoch':>14}  {'padding':>7}  {'classes':>10}  {'top class':>9}")
    for name, e in table.items():
        cols = []
        for view in ("sampled", "epoch"):
            v, lab = e[view], e[view]["labels"]
            what = (f"{v['steps']} steps, {v['runs']} run{'s' if v['runs'] != 1 else ''}" if view == "sampled"
                    else f"{v['steps']} steps" + (f", w{v['window']}" if v.get("window") else ""))
            cols.append(f"{what:>16}  {v['padding_share']:>7.1%}  {lab['mean_classes']:>5.1f}/{lab['min_classes']:<4.0f}"
                        f"  {lab['mean_top_share']:>4.0%}/{lab['max_top_share']:<4.0%}")
        print(f"{name:<{width}} " + "   ".join(cols))


def _mp(v: float) -> str:
    # small input sets (smoke, quick) must not print as 0.0
    return f"{v:6.1f}" if v >= 10 else f"{v:6.3g}"


def print_summary(out: Path) -> None:
    """s/MP and s/informative-MP per cluster, scope, input set and remedy: Σ seconds ÷ Σ
    megapixels over the timed steps (hrvs_ray.metrics.group_figures), as the report shows, and
    the counted GFLOP/s as a share of the scope's measured ceiling."""
    from .metrics import GROUP_KEYS, derive, group_figures, timed
    from .metrics.flags import ceiling_note, steal_note, step_ceilings
    from .scopes import scope_key
    from .store import read_results

    res = read_results(out)
    d = timed(derive(res.steps.to_pandas()))
    if d.empty:
        print("no timed steps recorded")
        return
    d["ceiling"] = step_ceilings(d, res.nodes.to_pandas())
    d["pct_ceiling"] = 100 * d["gflops"] / d["ceiling"]
    keys = GROUP_KEYS
    f = group_figures(d, keys)
    pct = _pct_of_ceiling(d, keys)
    rows = [[*(str(r[k]) for k in keys), str(int(r["steps"])), f"{r['s_per_mp']:.3f}",
             f"{r['s_per_informative_mp']:.3f}", f"{r['peak_rss_bytes'] / 1e9:.2f}",
             pct.get(tuple(r[k] for k in keys), "n/a")]
            for _, r in sorted(f.iterrows(), key=lambda ir: (ir[1][keys[0]], scope_key(ir[1][keys[1]]),
                                                            *(ir[1][k] for k in keys[2:])))]
    head = ["cluster", "scope", "input set", "remedy"][:len(keys)] + ["steps", "s/MP", "s/inf-MP", "peak GB",
                                                                      "% ceiling"]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    print()
    for r in [head] + rows:
        print("  ".join(v.ljust(w) if i < len(keys) else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
    print("(Σ seconds ÷ Σ megapixels over the timed steps of all runs, warm-up excluded, as in the report; "
          "peak GB = largest per-step peak RSS; % ceiling = Σ counted FLOPs ÷ Σ seconds over the scope's "
          "measured ceiling)")
    for note in (ceiling_note(d["pct_ceiling"]), steal_note(d)):
        if note:
            print(f"warning: {note}")


def _pct_of_ceiling(d: Any, keys: list[str]) -> dict[tuple, str]:
    """Per group: its GFLOP/s (ratio of sums) as a share of its measured ceiling; '!' above 105 %."""
    from .metrics.flags import CEILING_LIMIT
    out = {}
    for key, g in d.groupby(keys):
        v = 100 * g["flops"].sum() / 1e9 / g["seconds"].sum() / g["ceiling"].mean()
        out[tuple(key)] = "n/a" if v != v else f"{v:.0f}%" + ("!" if v > 100 * CEILING_LIMIT else "")
    return out


def cmd_sweep(args: argparse.Namespace) -> int:
    from .config import load_sweep
    from .data.mame import DatasetError
    from .store import ResultsError

    sweep = load_sweep(args.sweep)
    if args.data:
        sweep = replace(sweep, dataset=replace(sweep.dataset, path=args.data))
    out = Path(args.out) if args.out else Path("results") / sweep.name
    from .cluster.driver import NoUsableNodes, run_sweep
    from .cluster.ray_job import JobPathError, VersionSkew, check_outside_job_package, choose_address
    from .cluster.progress import cell_progress

    try:  # before anything runs or is written
        check_outside_job_package(out, given=bool(args.out))
        where = choose_address(args.address)
    except (JobPathError, ConnectionError) as e:
        _err(str(e))
        return EXIT_BAD_INPUT
    try:
        summary = run_sweep(sweep, out, cell_progress(not args.no_progress), address=where.target,
                            fresh=args.fresh, why=where.why, say=lambda line: print(line, flush=True))
    except (DatasetError, ResultsError, NoUsableNodes, VersionSkew) as e:
        _err(str(e))
        return EXIT_BAD_INPUT
    except ConnectionError as e:
        from .cluster.auth import ClusterAuthError

        # a token problem is not "cannot reach": its text names the cause and the variables
        shown = args.address or os.environ.get("RAY_ADDRESS")
        _err(str(e) if isinstance(e, ClusterAuthError) else f"cannot reach the Ray cluster at {shown!r}: {e}")
        return EXIT_BAD_INPUT
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
            from .report import build_report

            build_report([out], report_path)
            print(f"\nreport: {report_path}")
        except Exception as e:
            _err(f"report not written ({type(e).__name__}: {e}); results are in {out}; "
                 f"retry with: hrvs-ray report {out} -o {report_path}")
    return EXIT_FAILED if summary.failed else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report
    from .store import ResultsError

    try:
        path = build_report([Path(d) for d in args.dirs], Path(args.output))
    except ResultsError as e:
        _err(str(e))
        return EXIT_BAD_INPUT
    print(f"report: {path}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    """Exit 1 when a group is slower by more than --threshold with its interval excluding 1,
    0 otherwise, 2 on bad input (unreadable folder, nothing matches, different images)."""
    from .report.compare import compare, to_json, to_text
    from .store import ResultsError

    if not 0 <= args.threshold < 1000:
        _err("--threshold must be a percentage in [0, 1000)")
        return EXIT_BAD_INPUT
    try:
        c = compare(Path(args.base), Path(args.new), args.threshold)
    except ResultsError as e:
        _err(str(e))
        return EXIT_BAD_INPUT
    print(json.dumps(to_json(c), indent=2) if args.format == "json" else to_text(c))
    return c.exit_code


def cmd_synth(args: argparse.Namespace) -> int:
    from .config import SyntheticSpec
    from .data.synthetic import ensure_synthetic

    if not 0 < args.scale <= 1 or args.count <= 0 or not 1 <= args.quality <= 100:
        _err("--scale must be in (0, 1], --count > 0, --quality in 1..100")
        return EXIT_BAD_INPUT
    spec = SyntheticSpec(count=args.count, scale=args.scale, seed=args.seed, quality=args.quality)
    made = ensure_synthetic(Path(args.out), spec)
    print(f"{'wrote' if made else 'already present:'} {args.count} synthetic MAMe-like images in {args.out}")
    return EXIT_OK


def cmd_data_check(args: argparse.Namespace) -> int:
    """Exit 0 when every image and row is fine, 1 listing every problem, 2 on bad input."""
    from .config import load_sweep
    from .data.check import format_problems
    from .plan.preflight import data_check

    sweep = load_sweep(args.sweep)
    if args.data:
        sweep = replace(sweep, dataset=replace(sweep.dataset, path=args.data))
    if args.workers is not None and args.workers <= 0:
        _err("--workers must be > 0")
        return EXIT_BAD_INPUT
    unknown = sorted(set(args.input_sets or ()) - {i.name for i in sweep.input_sets})
    if unknown:
        _err(f"--input-sets: {', '.join(unknown)} not in {args.sweep} "
             f"(it has: {', '.join(i.name for i in sweep.input_sets)})")
        return EXIT_BAD_INPUT
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
    from .node.nodedoc import describe_node, format_node_info
    from .node.sysfs import TopologyError

    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    try:
        doc = describe_node(args.sysroot, scopes)
    except (TopologyError, ValueError) as e:    # unreadable snapshot, malformed scope
        _err(str(e))
        return EXIT_BAD_INPUT
    if Path(args.sysroot) == Path("/"):         # a snapshot has no CPUs to run kernels on
        from .probes.ceiling import measure_scope
        doc["ceilings"] = {s: measure_scope(p["cpus"], p["threads"]) for s, p in doc["scopes"].items()
                           if "cpus" in p}
    print(json.dumps(doc, indent=2, default=str) if args.format == "json" else format_node_info(doc))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from .config import SyntheticSpec   # pure and light: its defaults are the CLI's

    p = argparse.ArgumentParser(prog="hrvs-ray", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sweep", help="run every cell of a sweep (resumes; see --fresh)")
    s.add_argument("sweep")
    s.add_argument("--out", help="results folder (default results/<name>)")
    s.add_argument("--address", help="the Ray to run on: HOST:PORT or 'auto' joins a running cluster, 'local' always "
                   "starts a private one on loopback (default: the cluster RAY_ADDRESS names, as `ray job submit` "
                   "sets it, else a private one)")
    s.add_argument("--data", metavar="DIR", help="dataset folder, overriding the sweep's dataset.path "
                   "(e.g. where a job bound MAMe); it must be visible at the same path on every node")
    s.add_argument("--fresh", action="store_true", help="discard this sweep's earlier results and start over")
    s.add_argument("--no-report", action="store_true", help="do not render reports/<name>.html at the end")
    s.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("plan", help="Table 1 from metadata alone: MP per batch per input set")
    s.add_argument("sweep")
    s.add_argument("--batches", type=int, default=10)
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.add_argument("--memory-from", metavar="RESULTS_DIR",
                   help="plan memory with the model calibrated on this results folder's measured steps")
    s.set_defaults(func=cmd_plan)

    s = sub.add_parser("compare", help="NEW ÷ BASE per matched group with 95 %% intervals; exit 1 on a "
                                       "regression beyond --threshold")
    s.add_argument("base", metavar="BASE_DIR")
    s.add_argument("new", metavar="NEW_DIR")
    s.add_argument("--threshold", type=float, default=5.0, metavar="PCT",
                   help="a group slower by more than PCT %% (interval excluding 1) fails the check (default 5)")
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("report", help="one self-contained HTML report from stored results")
    s.add_argument("dirs", nargs="+", metavar="DIR")
    s.add_argument("-o", "--output", default="reports/report.html")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("data", help="dataset tools")
    dsub = s.add_subparsers(dest="data_command", required=True)
    d = dsub.add_parser("synth", help="write a synthetic MAMe-like dataset (real MAMe shapes, seeded pixels)")
    d.add_argument("--out", required=True)
    d.add_argument("--scale", type=float, default=SyntheticSpec.scale,
                   help=f"linear scale of the MAMe shapes (default {SyntheticSpec.scale})")
    d.add_argument("--count", type=int, default=SyntheticSpec.count)
    d.add_argument("--seed", type=int, default=SyntheticSpec.seed)
    d.add_argument("--quality", type=int, default=SyntheticSpec.quality, help="JPEG quality")
    d.set_defaults(func=cmd_synth)
    d = dsub.add_parser("check", help="decode every image a sweep's cells use and list every problem "
                        "(exit 0 clean, 1 with problems)")
    d.add_argument("sweep")
    d.add_argument("--input-sets", nargs="+", metavar="NAME", help="only the images of these input sets")
    d.add_argument("--all", action="store_true", help="every image of the dataset's subset, used or not")
    d.add_argument("--format", choices=("table", "json"), default="table")
    d.add_argument("--data", metavar="DIR", help="dataset folder, overriding the sweep's dataset.path")
    d.add_argument("--workers", type=int, default=None, help="processes (default: the cores this process may use)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_data_check)

    s = sub.add_parser("node-info", help="describe this node (the paper's Table 3) and what each scope means on it")
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.add_argument("--sysroot", "--root", dest="sysroot", default="/", metavar="DIR",
                   help="read a recorded snapshot (a folder holding sys/ and proc/) instead of this machine; "
                        "no live probes then")
    s.add_argument("--scopes", default="socket,node", metavar="LIST",
                   help="comma-separated scopes to map, e.g. cores:4,socket,node (default: socket,node)")
    s.set_defaults(func=cmd_node_info)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .config import SweepError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SweepError as e:
        _err(str(e))
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())

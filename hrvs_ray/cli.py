"""``hrvs-ray``: sweep | plan | report | data synth | node-info.

Imports are deferred into each command so ``plan`` and bad-input paths never load torch
or Ray. Exit codes: 0 ok, 1 some cell failed, 2 bad input (nothing ran), 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _err(msg: str) -> None:
    print(f"hrvs-ray: error: {msg}", file=sys.stderr)


def cmd_plan(args: argparse.Namespace) -> int:
    from .config import load_sweep
    from .plan import batch_table, check_batch_sizes, planning_shapes

    sweep = load_sweep(args.sweep)
    if args.batches <= 0:
        _err("--batches must be > 0")
        return EXIT_BAD_INPUT
    shapes, source = planning_shapes(sweep)
    check_batch_sizes(sweep, len(shapes), source)
    table = batch_table(sweep, args.batches, shapes)
    if args.format == "json":
        print(json.dumps(table, indent=2))
        return EXIT_OK
    print(f"sweep {sweep.name}: {args.batches} seeded batches per input set; shapes from {source} "
          f"({len(shapes)} images, subset {sweep.dataset.subset})")
    head = f"{'input set':<10} {'batch':>5}  {'informative MP':>20}  {'padding MP':>20}  {'total MP':>20}  {'est. GB':>16}"
    print(head)
    print("-" * len(head))
    for name, e in table.items():
        cols = "  ".join(f"{e[k]['min']:6.1f}/{e[k]['avg']:6.1f}/{e[k]['max']:6.1f}"
                         for k in ("informative", "padding", "total"))
        mem = e["memory_gb"]
        print(f"{name:<10} {e['batch_size']:>5}  {cols}  {mem['min']:4.1f}/{mem['avg']:4.1f}/{mem['max']:5.1f}")
    print("(min/avg/max per batch; est. GB = planned main memory per training step)")
    return EXIT_OK


def print_summary(out: Path) -> None:
    """s/MP and s/informative-MP per cluster, scope and input set (median of timed steps)."""
    from .metrics import derive
    from .store import read_results

    res = read_results(out)
    steps = res.steps.to_pandas()
    if steps.empty:
        print("no steps recorded")
        return
    d = derive(steps)
    d = d[~d["warmup"]]
    g = d.groupby(["cluster", "scope", "input_set"], sort=True).agg(
        steps=("seconds", "size"), s_per_mp=("s_per_mp", "median"),
        s_per_imp=("s_per_informative_mp", "median"), peak_gb=("peak_rss_bytes", "max"))
    print(f"\n{'cluster':<14} {'scope':<8} {'input set':<9} {'steps':>5} {'s/MP':>8} {'s/inf-MP':>9} {'peak GB':>8}")
    for (c, s, i), r in g.iterrows():
        print(f"{c:<14} {s:<8} {i:<9} {int(r.steps):>5} {r.s_per_mp:>8.3f} {r.s_per_imp:>9.3f} {r.peak_gb / 1e9:>8.2f}")


def cmd_sweep(args: argparse.Namespace) -> int:
    from .config import load_sweep
    from .data.mame import DatasetError
    from .store import ResultsError

    sweep = load_sweep(args.sweep)
    if args.data:
        sweep = replace(sweep, dataset=replace(sweep.dataset, path=args.data))
    out = Path(args.out) if args.out else Path("results") / sweep.name
    from .cluster.driver import NoUsableNodes, run_sweep

    try:
        summary = run_sweep(sweep, out, address=args.address, fresh=args.fresh, progress=not args.no_progress)
    except (DatasetError, ResultsError, NoUsableNodes) as e:
        _err(str(e))
        return EXIT_BAD_INPUT
    except ConnectionError as e:
        _err(f"cannot reach the Ray cluster at {args.address!r}: {e}")
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


def cmd_node_info(args: argparse.Namespace) -> int:
    from .probes.nodeinfo import collect_node_info, format_node_info

    info = collect_node_info(args.root)
    if args.format == "json":
        print(json.dumps(info, indent=2, default=str))
    else:
        print(format_node_info(info))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hrvs-ray", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sweep", help="run every cell of a sweep (resumes; see --fresh)")
    s.add_argument("sweep")
    s.add_argument("--out", help="results folder (default results/<name>)")
    s.add_argument("--address", help="join a running Ray cluster: 'auto' or HOST:PORT (default: local Ray on loopback)")
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
    s.set_defaults(func=cmd_plan)

    s = sub.add_parser("report", help="one self-contained HTML report from stored results")
    s.add_argument("dirs", nargs="+", metavar="DIR")
    s.add_argument("-o", "--output", default="reports/report.html")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("data", help="dataset tools")
    dsub = s.add_subparsers(dest="data_command", required=True)
    d = dsub.add_parser("synth", help="write a synthetic MAMe-like dataset (real MAMe shapes, seeded pixels)")
    d.add_argument("--out", required=True)
    d.add_argument("--scale", type=float, default=0.1, help="linear scale of the MAMe shapes (default 0.1)")
    d.add_argument("--count", type=int, default=300)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--quality", type=int, default=90, help="JPEG quality")
    d.set_defaults(func=cmd_synth)

    s = sub.add_parser("node-info", help="describe this node (the paper's Table 3)")
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.add_argument("--root", default="/", help=argparse.SUPPRESS)
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

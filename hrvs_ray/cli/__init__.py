"""``hrvs-ray``: sweep | plan | report | compare | data synth | node-info.

Imports are deferred into each command so ``plan`` and bad-input paths never load torch
or Ray. Exit codes: 0 ok, 1 some cell failed, 2 bad input (nothing ran), 130 interrupted.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from .commands import cmd_compare, cmd_data_check, cmd_node_info, cmd_plan, cmd_report, cmd_sweep, cmd_synth
from .errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, _err
from .summary import print_summary

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "build_parser", "main", "print_summary"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hrvs-ray", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    _run_commands(sub)
    _data_commands(sub)
    s = sub.add_parser("node-info", help="describe this node (the paper's Table 3) and what each scope means on it")
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.add_argument("--sysroot", "--root", dest="sysroot", default="/", metavar="DIR",
                   help="read a recorded snapshot (a folder holding sys/ and proc/) instead of this machine; "
                        "no live probes then")
    s.add_argument("--scopes", default="socket,node", metavar="LIST",
                   help="comma-separated scopes to map, e.g. cores:4,socket,node (default: socket,node)")
    s.set_defaults(func=cmd_node_info)
    return p


def _run_commands(sub: argparse._SubParsersAction) -> None:
    """sweep, plan, compare, report."""
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
    s.add_argument("--sysroot", "--root", dest="sysroot", default="/", metavar="DIR",
                   help="where data-parallel scopes (N*SCOPE) are mapped: a recorded snapshot (a folder holding "
                        "sys/ and proc/) instead of this machine")
    s.set_defaults(func=cmd_plan)

    s = sub.add_parser("compare", help="NEW ÷ BASE per matched group with 95 %% intervals and four verdicts; "
                                       "exit 1 on a regression beyond --threshold at family-wise --alpha")
    s.add_argument("base", metavar="BASE_DIR")
    s.add_argument("new", metavar="NEW_DIR")
    s.add_argument("--threshold", type=float, default=5.0, metavar="PCT",
                   help="a group slower by more than PCT %% (Holm-adjusted one-sided test) fails the check "
                        "(default 5)")
    s.add_argument("--alpha", type=float, default=0.05,
                   help="family-wise error rate over every (group × metric) test of this comparison (default 0.05)")
    s.add_argument("--noise-from", action="append", default=[], metavar="DIR",
                   help="a results folder of the same sweep (e.g. one side of an A/A pair on this cluster) whose "
                        "run-to-run spread is pooled into each stratum's; may be given several times")
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("report", help="one self-contained HTML report from stored results")
    s.add_argument("dirs", nargs="+", metavar="DIR")
    s.add_argument("-o", "--output", default="reports/report.html")
    s.set_defaults(func=cmd_report)


def _data_commands(sub: argparse._SubParsersAction) -> None:
    """data synth, data check (the synthetic generator's defaults are ``SyntheticSpec``'s)."""
    from ..config import SyntheticSpec  # pure and light
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. The one place that maps exceptions to exit codes: a
    :class:`~hrvs_ray.errors.UserError` (bad input, nothing ran) prints its message and exits 2;
    an interrupt exits 130; anything else is a bug and keeps its traceback."""
    from ..errors import UserError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        _err(str(e))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED

"""The Summary table's GFLOP/s is GFLOP/s: Σ counted FLOPs ÷ Σ seconds ÷ 10^9, the same figure
the CLI summary prints (it once read 1.2e20: the scale divided the denominator). Inputs are
GENERATED (tests/fixtures/report_results.py); the expectation is computed from the stored rows."""
from __future__ import annotations

from pathlib import Path

import pytest

from hrvs_ray.cli import print_summary
from hrvs_ray.report.load import load
from hrvs_ray.report.tables import summary
from tests.fixtures.report_results import make_results, stored_steps


def test_summary_gflops_is_gflops_and_matches_the_cli(tmp_path: Path, capsys) -> None:
    root = make_results(tmp_path / "r", scopes=["cores:4", "node"], input_sets=["MR&VS", "HR&VS"], runs=1, steps=3)
    s = stored_steps(root)
    s = s[~s["warmup"]]
    g = s.groupby(["scope", "input_set"])
    want = g["flops"].sum() / g["seconds"].sum() / 1e9
    assert want.between(10, 5000).all()         # generated rates: CPU figures, not 1e20

    _, detail = summary(load([root]))
    col = detail.columns.index("GFLOP/s")
    label = {"4 cores": "cores:4", "node": "node"}
    report = {(label[r[1].split(" (")[0]], r[2]): float(str(r[col])) for r in detail.rows}
    assert report == {k: pytest.approx(v, abs=0.05) for k, v in want.items()}

    print_summary(root)
    lines = capsys.readouterr().out.splitlines()
    head = next(line for line in lines if line.startswith("cluster"))
    end = head.index("GFLOP/s") + len("GFLOP/s")     # a right-aligned column ends where its head does
    cli = {(f[1], f[2]): float(line[:end].split()[-1]) for line, f in ((ln, ln.split()) for ln in lines)
           if len(f) > 2 and (f[1], f[2]) in want.index}
    assert cli == report                          # one figure, printed the same by both

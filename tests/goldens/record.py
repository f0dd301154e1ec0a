"""Record (or check) the golden outputs that a pure move or rename must leave unchanged.

    python -m tests.goldens.record            # rewrite tests/goldens/*.txt|json
    python -m tests.goldens.record --check    # exit 1 and show the first difference

The goldens: ``plan --format json`` of every sweep in ``sweeps/``, the CLI's closing
summary, and the report's tables (text of every <table>), the last two on generated
results folders (tests/fixtures/report_results.py), so no training runs. A commit that
changes behaviour on purpose re-records them in its own commit and says why.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import json
import re
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _plan_json(sweep: Path) -> str:
    from hrvs_ray.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["plan", str(sweep), "--format", "json"])
    return json.dumps({"exit": rc, "plan": json.loads(buf.getvalue())}, indent=1, sort_keys=True) + "\n"


class _Tables(HTMLParser):
    """The text of every table cell, one table row per line."""

    def __init__(self) -> None:
        super().__init__()
        self.depth, self.lines, self.row, self.cell = 0, [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.depth += 1
            self.lines.append("<table>")
        elif self.depth and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self.depth -= 1
        elif self.depth and tag in ("td", "th") and self.cell is not None:
            self.row.append(re.sub(r"\s+", " ", "".join(self.cell)).strip())
            self.cell = None
        elif self.depth and tag == "tr":
            self.lines.append(" | ".join(self.row))
            self.row = []

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _fixture_folders(tmp: Path) -> list[Path]:
    from hrvs_ray.remedy_axes import PAPER, Remedy
    from tests.fixtures.report_results import make_results
    remedies = (PAPER, Remedy(batching="bucket"), Remedy(precision="bfloat16"))
    a = make_results(tmp / "a", clusters=("gen-a",), scopes=("cores:4", "node"), runs=2, steps=4, seed=3,
                     remedies=remedies, record_shapes=True)
    b = make_results(tmp / "b", clusters=("gen-b",), scopes=("cores:4", "node"), runs=2, steps=4, seed=4,
                     remedies=remedies, record_shapes=True)
    return [a, b]


def _summary(folder: Path) -> str:
    from hrvs_ray.cli import print_summary
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_summary(folder)
    return buf.getvalue()


def _report_tables(folders: list[Path]) -> str:
    from hrvs_ray.report import render
    p = _Tables()
    p.feed(render(folders))
    return "\n".join(p.lines) + "\n"


def outputs() -> dict[str, str]:
    out = {f"plan-{s.stem}.json": _plan_json(s) for s in sorted((REPO / "sweeps").glob("*.yaml"))}
    with tempfile.TemporaryDirectory() as tmp:
        folders = _fixture_folders(Path(tmp))
        out["summary.txt"] = _summary(folders[0]).replace(tmp, "<tmp>")
        out["report-tables.txt"] = _report_tables(folders).replace(tmp, "<tmp>")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    bad = 0
    for name, text in outputs().items():
        path = HERE / name
        if args.check:
            old = path.read_text() if path.exists() else ""
            if old != text:
                bad += 1
                sys.stdout.writelines(list(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                                f"golden/{name}", f"now/{name}"))[:40])
        else:
            path.write_text(text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Open an hrvs-ray HTML report in headless Chromium, as a person would, and screenshot it.

    python -m tools.report_screenshot [REPORT.html] [--png OUT.png] [--width W --height H]

Run from the repository root. Without a report it builds one from a GENERATED results folder
(tests/fixtures/report_results.py, imported as ``tests.fixtures.report_results``:
seeded numbers, not measurements) that includes a hostile cluster name. It checks that the
browser's DOM has no <script> element, shows the report's title and the escaped names as text,
and that the PNG is a real rendering (not blank). Needs the `chromium` binary (Debian: apt-get
install chromium); exits 3 with a message when it is missing.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HOSTILE = "<script>alert(1)</script>"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(chromium: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="hrvs-chromium-") as profile:
        return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def screenshot(report: Path, png: Path, width: int = 1400, height: int = 2400, timeout: float = 120.0,
               chromium: str | None = None) -> Path:
    """Render ``report`` at ``width``×``height`` CSS pixels into ``png``."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium not found on PATH (Debian: apt-get install chromium)")
    png.parent.mkdir(parents=True, exist_ok=True)
    r = _run(chromium, [f"--screenshot={png.resolve()}", f"--window-size={width},{height}",
                        report.resolve().as_uri()], timeout)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (rc {r.returncode}): {r.stderr[-2000:]}")
    return png


def dom(report: Path, timeout: float = 120.0, chromium: str | None = None) -> str:
    """The DOM as Chromium parsed it (what a browser would actually run and show)."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium not found on PATH (Debian: apt-get install chromium)")
    return _run(chromium, ["--dump-dom", report.resolve().as_uri()], timeout).stdout


def check_png(png: Path, width: int, height: int) -> dict:
    """A rendering, not a blank page: right size, many colours, and mostly-but-not-only white."""
    import numpy as np
    from PIL import Image
    im = Image.open(png).convert("RGB")
    px = np.asarray(im).reshape(-1, 3)
    white = float((px.min(axis=1) > 245).mean())
    colours = len(np.unique(px[::7], axis=0))
    problems = []
    if im.size != (width, height):
        problems.append(f"size {im.size} != {(width, height)}")
    if colours < 50:
        problems.append(f"only {colours} distinct colours: blank or failed render")
    if white > 0.995:
        problems.append(f"{100 * white:.1f}% white: nothing rendered")
    return {"size": im.size, "colours": colours, "white_fraction": round(white, 3), "problems": problems}


def check_dom(text: str) -> list[str]:
    problems = []
    if "<script" in text.lower():
        problems.append("the parsed DOM contains a <script> element")
    if "hrvs-ray report" not in text:
        problems.append("the report title is missing from the DOM")
    return problems


def generated_report(folder: Path) -> Path:
    # imported here, not at the top: a screenshot of an existing report needs neither
    from hrvs_ray.remedy_axes import PAPER, Remedy
    from hrvs_ray.report import build_report
    from tests.fixtures.report_results import make_results  # generated input, not measurements
    fast = Remedy("bucket", "bfloat16", "channels_last")
    res = make_results(folder / "results", sweep="generated-demo", clusters=["gen-a", "gen-b", HOSTILE],
                       scopes=["cores:4", "socket", "node"], runs=3, steps=6, no_counters=["gen-b"],
                       failed={("gen-a", "node", "HR&VS", 2): 'MemoryError <b>&"'},
                       skipped={("gen-b", "socket", "LR&FS", 1): "planned memory 31 GB > node headroom",
                                ("gen-a", "socket", "MR&VS", 0, fast.label): "planned memory above headroom"},
                       remedies=[PAPER, fast], core_kinds={"socket": {"performance": 6, "efficiency": 8}})
    return build_report([res], folder / "report.html")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", nargs="?", type=Path)
    ap.add_argument("--png", type=Path, default=Path("report-screenshot.png"))
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=2400)
    a = ap.parse_args(argv)
    if find_chromium() is None:
        print("chromium not found on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory(prefix="hrvs-report-shot-") as tmp:
        report = a.report or generated_report(Path(tmp))
        problems = check_dom(dom(report))
        if a.report is None and "&lt;script&gt;alert(1)&lt;/script&gt;" not in dom(report):
            problems.append("the hostile cluster name is not shown as text")
        screenshot(report, a.png, a.width, a.height)
        info = check_png(a.png, a.width, a.height)
    problems += info.pop("problems")
    print(f"screenshot {a.png}: {info}")
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

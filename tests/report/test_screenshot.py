"""The report as a person sees it: headless Chromium parses it and takes a screenshot
(tools/report_screenshot.py). Skipped, saying why, where chromium is not installed."""
from __future__ import annotations

from pathlib import Path

import pytest

from tools import report_screenshot as shot

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    shot.find_chromium() is None, reason="chromium not installed (Debian: apt-get install chromium); "
                                         "the report screenshot check needs a real browser")]


def test_report_renders_in_chromium(tmp_path: Path, capsys) -> None:
    png = tmp_path / "shot.png"
    rc = shot.main(["--png", str(png), "--width", "1200", "--height", "1600"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert png.stat().st_size > 50_000


def test_blank_page_is_caught(tmp_path: Path) -> None:
    # The check must be able to fail: an empty page renders white and is reported.
    page = tmp_path / "blank.html"
    page.write_text("<!DOCTYPE html><html><body></body></html>")
    png = shot.screenshot(page, tmp_path / "blank.png", 800, 600)
    info = shot.check_png(png, 800, 600)
    assert info["problems"], info
    assert shot.check_dom(shot.dom(page)) == ["the report title is missing from the DOM"]

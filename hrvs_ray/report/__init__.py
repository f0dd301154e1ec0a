"""``hrvs-ray report``: one self-contained HTML file from stored results folders.

Reads parquet only (hrvs_ray.store.read_results); never imports torch or ray, and draws
with matplotlib's SVG canvas without pyplot, so it runs on a login node without a display.
Errors in the inputs surface as hrvs_ray.store.ResultsError naming the folder.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..store import ResultsError
from . import checks, html, tables
from .figures import colours, scope_figures
from .load import Merged, load, scope_label

__all__ = ["build_report", "render", "ResultsError"]


def _sections(m: Merged) -> list[tuple[str, str]]:
    answers, detail = tables.summary(m)
    det = checks.determinism(m)
    fails = checks.failures(m)
    src, prov = checks.provenance(m)
    head = []
    if m.notes:
        head.append('<p class="warn">' + "<br>".join(html.esc(n) for n in m.notes) + "</p>")
    det_line = (f'<p class="{"ok" if det.extra["ok"] else "bad"}">Determinism: '
                f'{"identical batches everywhere compared" if det.extra["ok"] else "MISMATCHED batches, see below"}'
                f"</p>")
    fail_line = (f'<p class="{"ok" if not fails.rows else "bad"}">'
                 f'{"All recorded cells finished ok." if not fails.rows else html.esc(f"{len(fails.rows)} cell(s) failed or were skipped, see below.")}</p>')
    sections = [("Summary", "\n".join(head + [det_line, fail_line, html.table(answers), html.table(detail)]))]
    figs = scope_figures(m)
    fig_html = [html.colour_legend(colours(m.input_sets), m.input_sets)]
    for scope, fl in figs.items():
        fig_html.append(f'<h3 id="scope-{html.slug(scope)}">{html.esc(scope_label(scope))}</h3>')
        fig_html.extend(html.figure(f) for f in fl)
    sections.append(("Figures per scope", "\n".join(fig_html)))
    sections.append(("Tables from the paper", "\n".join(html.table(t) for t in
                                                        (tables.table1(m), tables.table2(m), tables.table3(m)))))
    sections.append(("Determinism check", html.table(det, None)))
    sections.append(("Failed and skipped cells", html.table(fails, None)))
    sections.append(("Provenance", html.table(src) + "\n" + html.table(prov)))
    return sections


def render(dirs: list[Path]) -> str:
    """The report's HTML text for the given results folders (nothing written)."""
    m = load([Path(d) for d in dirs])
    return html.page(m, _sections(m))


def build_report(dirs: list[Path], out: Path) -> Path:
    """Read and merge ``dirs``, render one self-contained HTML file and write it atomically
    to ``out`` (a reader never sees half a file). Returns ``out``."""
    text = render(dirs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the report from colleagues on a shared login node
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out

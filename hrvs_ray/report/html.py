"""HTML assembly: one self-contained page from Tables and inline SVG figures.

Every string that came from data passes through ``esc`` (html.escape, quotes included);
the only unescaped fragments are markup this module writes itself and the SVG that
matplotlib produced (whose text nodes matplotlib XML-escapes; see figures.py).
"""
from __future__ import annotations

import html
from datetime import datetime, timezone
from importlib import resources
from string import Template
from typing import Any

from .. import __version__
from ..names import html_id
from .figures import FigureSVG
from .fmt import Cell, Table
from .load import Merged, scope_label

_CLASSES = {"", "best", "flag", "na"}


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


slug = html_id  # one home for every slug rule: hrvs_ray/names.py


def _td(v: Any) -> str:
    if isinstance(v, Cell):
        cls = v.cls if v.cls in _CLASSES else ""
        attrs = (f' class="{cls}"' if cls else "") + (f' title="{esc(v.title)}"' if v.title else "")
        return f"<td{attrs}>{esc(v.text)}</td>"
    return f"<td>{esc(v)}</td>"


def table(t: Table, heading: str | None = "h3") -> str:
    """A Table as HTML; ``heading=None`` when the enclosing section already carries its title."""
    out = [f'<{heading} id="{slug(t.title)}">{esc(t.title)}</{heading}>'] if heading else []
    if t.note:
        out.append(f'<p class="note">{esc(t.note)}</p>')
    if not t.rows:
        out.append(f'<p class="note"><em>{esc(t.empty)}</em></p>')
        return "\n".join(out)
    head = "".join(f"<th>{esc(c)}</th>" for c in t.columns)
    body = "\n".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in t.rows)
    out.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>')
    return "\n".join(out)


def figure(f: FigureSVG) -> str:
    if not f.svg:  # nothing was drawn: the note (which may quote data, e.g. a counter status) stands in
        return f'<p class="note fig-note">{esc(f.note)}</p>'
    return (f'<figure role="img" aria-label="{esc(f.alt)}">\n{f.svg}\n'
            f"<figcaption>{esc(f.title)}. {esc(f.caption)}</figcaption></figure>")


def colour_legend(cmap: dict[str, str], sets: list[str]) -> str:
    # Colours come from figures.PALETTE (code), names from data (escaped).
    items = "".join(f'<span class="sw" style="background:{cmap[n]}"></span>{esc(n)}' for n in sets)
    return f'<p class="legend note">Input set colours (same in every figure):{items}</p>'


def page(m: Merged, sections: list[tuple[str, str]], generated: datetime | None = None) -> str:
    """Fill the packaged template. ``sections`` are (title, already-built HTML) pairs."""
    tpl = Template(resources.files(__package__).joinpath("template.html").read_text(encoding="utf-8"))
    css = resources.files(__package__).joinpath("style.css").read_text(encoding="utf-8")
    sweeps = sorted({s.sweep for s in m.sources})
    title = "hrvs-ray report: " + ", ".join(sweeps)
    subtitle = (f"{len(m.sources)} results folder(s); clusters: {', '.join(m.clusters) or '—'}; "
                f"scopes: {', '.join(scope_label(s) for s in m.scopes) or '—'}; "
                f"input sets: {', '.join(m.input_sets) or '—'}")
    toc = " ".join(f'<a href="#{slug(t)}">{esc(t)}</a>' for t, _ in sections)
    body = "\n".join(f'<section>\n<h2 id="{slug(t)}">{esc(t)}</h2>\n{b}\n</section>' for t, b in sections)
    when = (generated or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    return tpl.substitute(title=esc(title), subtitle=esc(subtitle), toc=toc, body=body, style=css,
                          version=esc(__version__), generated=esc(when))

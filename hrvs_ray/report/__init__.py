"""``hrvs-ray report``: one self-contained HTML file from stored results folders.

Reads parquet only (hrvs_ray.store.read_results); never imports torch or ray, and draws
with matplotlib's SVG canvas without pyplot, so it runs on a login node without a display.
Errors in the inputs surface as hrvs_ray.store.ResultsError naming the folder.
"""
from __future__ import annotations

from pathlib import Path

from ..fsutil import atomic_write_text
from ..metrics.flags import ceiling_note, ceiling_notes, other_cpu_note, steal_note
from ..remedy_axes import PAPER
from ..store import ResultsError
from . import (
    answers,
    checks,
    compile_section,
    data_parallel_section,
    epoch,
    html,
    kernel_cache_section,
    memory,
    memory_out_of_sample,
    remedies_section,
    tables,
)
from .charts import data_parallel_figures, scaling_figure, tradeoff_figures
from .figures import colours, scope_figures
from .load import Merged, load, scope_label

__all__ = ["build_report", "render", "ResultsError"]


def _reference_note(m: Merged) -> str | None:
    """Which setup the paper's sections show, when the results hold more than one."""
    others = [r for r in m.remedies if r != m.reference]
    if not others:
        return None
    which = "the paper's setup" if m.reference == PAPER.label else "the setup with most steps (the paper's was not run)"
    return (f"The summary, the figures per scope and Tables 1–2 show {which}, {m.reference}, only; "
            f"the {len(others)} other combination(s) are compared in the Remedies section.")


def _summary(m: Merged, det_ok: bool, n_fails: int) -> str:
    above = ceiling_note(tables.timed_with_peaks(m)["pct_ceiling"])
    notes = m.notes + [n for n in (_reference_note(m), above, steal_note(m.steps), other_cpu_note(m.steps)) if n]
    notes += ceiling_notes(m.nodes)
    head = ['<p class="warn">' + "<br>".join(html.esc(n) for n in notes) + "</p>"] if notes else []
    head.append(f'<p class="{"ok" if det_ok else "bad"}">Determinism: '
                f'{"identical batches everywhere compared" if det_ok else "MISMATCHED batches, see below"}</p>')
    head.append(f'<p class="{"ok" if not n_fails else "bad"}">' + (
        "All recorded cells finished ok." if not n_fails else
        html.esc(f"{n_fails} cell(s) failed or were skipped, see below.")) + "</p>")
    per_cluster, detail = tables.summary(m)
    across = [answers.fastest_cluster(m), answers.penalty(m)]
    return "\n".join(head + [html.table(t) for t in (per_cluster, *across, detail)])


def _per_scope(m: Merged) -> str:
    out = [html.colour_legend(colours(m.input_sets), m.input_sets)]
    for scope, fl in scope_figures(m).items():
        out.append(f'<h3 id="scope-{html.slug(scope)}">{html.esc(scope_label(scope))}</h3>')
        out.extend(html.figure(f) for f in fl)
    return "\n".join(out)


def _remedies(m: Merged, views: epoch.Views) -> str:
    one = remedies_section.only_one_setup(m)
    if one:
        return f'<p class="note">{html.esc(one)}</p>'
    g = remedies_section.grid(m)
    out = [html.table(remedies_section.answers(g, epoch.diversity_notes(views), remedies_section.choices(m, g))),
           f'<p class="note">{html.esc(remedies_section.LEGEND)}</p>']
    out += [html.figure(f) for f in tradeoff_figures(g)]
    out += [html.table(t) for t in remedies_section.tables(m, g)]
    return "\n".join(out)


def _sections(m: Merged) -> list[tuple[str, str]]:
    det = checks.determinism(m)
    fails = checks.failures(m)
    src, prov = checks.provenance(m)
    views, plan_notes = epoch.plan_views(m)
    return [
        ("Summary", _summary(m, det.extra["ok"], len(fails.rows))),
        ("Scaling with cores", html.colour_legend(colours(m.input_sets), m.input_sets) + "\n"
         + html.figure(scaling_figure(m))),
        ("Figures per scope", _per_scope(m)),
        ("Remedies", _remedies(m, views)),
        *_data_parallel(m),
        ("Sampled steps vs a full epoch", "\n".join(html.table(t) for t in epoch.section(m, views, plan_notes))),
        ("Tables from the paper", "\n".join(html.table(t) for t in (tables.table1(m), tables.table2(m),
                                                                        *_cache_share(m), tables.table3(m)))),
        *_shape_diversity(m),
        *_compiling(m),
        ("Memory model", html.table(memory.predicted_vs_measured(m)) + "\n"
         + html.table(memory_out_of_sample.out_of_sample(m))),
        ("Determinism check", html.table(det, None)),
        ("Failed and skipped cells", html.table(fails, None)),
        ("Provenance", html.table(src) + "\n" + html.table(prov)),
    ]


def _data_parallel(m: Merged) -> list[tuple[str, str]]:
    """Data-parallel cells against their 1-rank cell and each other, only where the results hold some."""
    if not data_parallel_section.has_data_parallel(m):
        return []
    g = data_parallel_section.grid(m)
    out = [html.table(data_parallel_section.answers(g, data_parallel_section.choices(m, g)))]
    out += [html.figure(f) for f in data_parallel_figures(m, g)]
    out += [html.table(t) for t in data_parallel_section.tables(g)]
    return [("Data-parallel", "\n".join(out))]


def _cache_share(m: Merged) -> list:
    """Table 2b next to Table 2, where some setup ran with the kernel caches on and off."""
    t = kernel_cache_section.cache_share(m)
    return [t] if t.rows else []


def _compiling(m: Merged) -> list[tuple[str, str]]:
    """torch.compile against eager, only where the results compiled something."""
    if not compile_section.has_compile(m):
        return []
    t = compile_section.table(m)
    sentences = "".join(f"<li>{html.esc(a)}</li>" for a in compile_section.answers(t))
    return [("Compiling", f"<ul>{sentences}</ul>\n" + html.table(t))]


def _shape_diversity(m: Merged) -> list[tuple[str, str]]:
    """The RSS-against-distinct-shapes figure, for results that record the shapes seen."""
    f = kernel_cache_section.rss_figure(m)
    return [("Memory and shape diversity", html.figure(f))] if f.svg else []


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
    # honours the umask, so colleagues sharing the project folder can read the report
    return atomic_write_text(out, text)

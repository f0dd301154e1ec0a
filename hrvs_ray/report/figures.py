"""The paper's figures per scope, drawn with matplotlib straight to inline SVG strings.

No pyplot and no backend switch: ``matplotlib.figure.Figure`` renders through the SVG
canvas directly, so importing this never opens a GUI or touches the process-wide backend.
Text stays text in the SVG (``svg.fonttype: none``), which matplotlib XML-escapes, and
mathtext is off so a ``$`` in a cluster name is printed, not parsed.
"""
from __future__ import annotations

import io
import re
import textwrap
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..metrics import timed
from ..names import svg_id_prefix
from .fmt import uniq
from .load import PAPER_ORDER, Merged, order_input_sets, scope_label

# Okabe-Ito: distinguishable with the common colour-vision deficiencies and in greyscale-ish print.
PALETTE = ("#E69F00", "#0072B2", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
RUN_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LOG_SPAN = 10 ** 1.5  # switch to a log axis when max/min exceeds ~1.5 decades
# Text is wrapped by an estimate, not a measurement (measuring needs an extra draw per figure):
# DejaVu Sans averages ~0.55 em per character; 0.6 errs towards wrapping a little early.
EM_PER_CHAR = 0.6
AXES_MARGIN_IN = 0.9  # y tick labels + y label + spacing that constrained layout takes per column


@dataclass(frozen=True)
class Metric:
    column: str
    title: str
    ref: str  # the paper's figure(s); kept whole on its own line when the title must wrap
    ylabel: str
    counter: bool  # derived from hardware counters (may be unavailable)
    inputs: tuple[str, ...] = ("seconds",)


TIME_METRICS = (
    Metric("s_per_mp", "Seconds per megapixel, all pixels", "(paper Figs. 2–4)", "seconds / MP (all pixels)", False),
    Metric("s_per_informative_mp", "Seconds per informative megapixel", "(paper Figs. 5–7)",
           "seconds / informative MP", False),
)
COUNTER_METRICS = (
    Metric("instructions_per_mp", "Instructions per megapixel, all pixels", "(paper Fig. 8)",
           "instructions / MP (all pixels)", True, ("instructions",)),
    Metric("instructions_per_informative_mp", "Instructions per informative megapixel", "(paper Fig. 8)",
           "instructions / informative MP", True, ("instructions",)),
    Metric("ipc", "Instructions per cycle", "(paper Fig. 9)", "IPC (instructions / cycle)", True,
           ("instructions", "cycles")),
    Metric("mpki", "LLC misses per 1000 instructions", "(paper Fig. 10)", "LLC misses / 1000 instructions", True,
           ("llc_misses", "instructions")),
)
COUNTERS_TITLE = "Hardware counters (paper Figs. 8–10)"

RC = {"svg.fonttype": "none", "text.parse_math": False, "text.usetex": False, "font.size": 9,
      "axes.titlesize": 9.5, "svg.image_inline": True}


def colours(input_sets: list[str]) -> dict[str, str]:
    """The paper's sets keep fixed colours whatever is merged; other names follow in sorted order."""
    out = {n: PALETTE[i] for i, n in enumerate(PAPER_ORDER)}
    others = [n for n in order_input_sets(input_sets) if n not in out]
    for i, n in enumerate(others):
        out[n] = PALETTE[(len(PAPER_ORDER) + i) % len(PALETTE)]
    return out


BOX_CAPTION = ("Boxes: quartiles and 1.5×IQR whiskers of all timed steps; points: every timed step, "
               "marker shape by run.")


@dataclass
class FigureSVG:
    """One figure; ``svg`` is empty when there was nothing to draw and ``note`` (plain text,
    escaped by html.py) says why in its place."""
    title: str
    svg: str
    alt: str
    note: str = ""
    caption: str = BOX_CAPTION  # how to read the marks (plain text)


def chars_fitting(width_in: float, fontsize: float) -> int:
    """About how many characters of ``fontsize`` points fit in ``width_in`` inches."""
    return max(10, int(width_in * 72 / (EM_PER_CHAR * fontsize)))


def wrap_title(metric: Metric, width_in: float, fontsize: float) -> str:
    """The title on one line when it fits the axes, else wrapped with the paper reference
    on a line of its own (a left-aligned title wider than its axes runs off the figure)."""
    n = chars_fitting(width_in, fontsize)
    whole = f"{metric.title} {metric.ref}"
    if len(whole) <= n:
        return whole
    return textwrap.fill(metric.title, n) + "\n" + metric.ref


def log_y(ax, lo: float, hi: float) -> None:
    """A log y scale labelled in plain numbers (0.2, 1, 50). Matplotlib's default log labels
    are mathtext ('10^{-1}'), which the report turns off, so they would print raw."""
    ax.set_yscale("log")
    axis = ax.yaxis
    decades = np.log10(hi / lo) if lo > 0 and hi > lo else 0.0
    subs = (1.0,) if decades > 4 else (1.0, 2.0, 5.0) if decades > 1 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    axis.set_major_locator(LogLocator(10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _svg(fig: Figure, prefix: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: not allowed inside HTML
    # Every figure numbers its groups figure_1, axes_1, ...: several SVGs inline in one page
    # would share those ids, so each figure's ids (and the references to them) get a prefix.
    text = re.sub(r'\bid="([^"]+)"', lambda mo: f'id="{prefix}-{mo.group(1)}"', text)
    return re.sub(r'(url\(#|href="#)([^")]+)', lambda mo: f"{mo.group(1)}{prefix}-{mo.group(2)}", text)


def _unavailable(d: pd.DataFrame, metric: Metric) -> str:
    """The recorded reasons, and which counters are missing (a status may be 'ok' for the
    counters that did open while, say, the LLC event was refused)."""
    missing = [c for c in metric.inputs if d[c].isna().all()]
    return uniq(d["counter_status"].fillna("no status recorded"), "; ") + (
        f" ({', '.join(missing)} not recorded)" if missing else "")


def _empty(ax, metric: Metric, d: pd.DataFrame, axes_in: float) -> None:
    """An axes with nothing to plot says why, in place of the plot."""
    if metric.counter:
        msg = "hardware counters unavailable: " + (_unavailable(d, metric) if len(d) else "no timed steps")
        # -4: the rounded box's padding on both sides
        ax.text(0.5, 0.5, textwrap.fill(msg, chars_fitting(axes_in, RC["font.size"]) - 4), ha="center",
                va="center", transform=ax.transAxes,
                bbox={"boxstyle": "round", "facecolor": "#f3f3f3", "edgecolor": "#999999"})
    else:
        ax.text(0.5, 0.5, "no timed steps", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _panel(ax, d: pd.DataFrame, metric: Metric, clusters: list[str], sets: list[str],
           cmap: dict[str, str], axes_in: float) -> None:
    """One metric on one axes; ``axes_in`` is the axes' expected width in inches, which all
    text inside it is wrapped to."""
    ax.set_title(wrap_title(metric, axes_in, RC["axes.titlesize"]), loc="left")
    vals = pd.to_numeric(d[metric.column], errors="coerce") if len(d) else pd.Series(dtype="float64")
    if vals.notna().sum() == 0:
        _empty(ax, metric, d, axes_in)
        return
    width = len(sets) + 1
    rng = np.random.default_rng(0)  # fixed jitter: the same data always draws the same picture
    runs = sorted(d["run"].dropna().unique())
    for ci, cluster in enumerate(clusters):
        dc = d[d["cluster"] == cluster]
        cvals = pd.to_numeric(dc[metric.column], errors="coerce")
        if metric.counter and len(dc) and cvals.notna().sum() == 0:
            slot = chars_fitting(axes_in / len(clusters), 7) - 1  # this cluster's share of the axes
            ax.text(ci * width + (len(sets) - 1) / 2, 0.5,
                    textwrap.fill("no counters: " + _unavailable(dc, metric), slot),
                    ha="center", va="center", fontsize=7, color="#555555",
                    transform=ax.get_xaxis_transform())
            continue
        for si, name in enumerate(sets):
            g = dc[dc["input_set"] == name]
            v = pd.to_numeric(g[metric.column], errors="coerce")
            ok = v.notna().to_numpy()
            if not ok.any():
                continue
            x = ci * width + si
            bp = ax.boxplot([v[ok].to_numpy()], positions=[x], widths=0.7, patch_artist=True, showfliers=False,
                            medianprops={"color": "#222222"}, whiskerprops={"color": "#777777"},
                            capprops={"color": "#777777"})
            for patch in bp["boxes"]:
                patch.set(facecolor=cmap[name], alpha=0.3, edgecolor=cmap[name])
            for ri, run in enumerate(runs):
                sel = ok & (g["run"] == run).to_numpy()
                if sel.any():
                    jitter = rng.uniform(-0.28, 0.28, int(sel.sum()))
                    ax.scatter(x + jitter, v[sel], s=9, color=cmap[name], marker=RUN_MARKERS[ri % len(RUN_MARKERS)],
                               alpha=0.85, linewidths=0, zorder=3)
    ax.set_xticks([ci * width + (len(sets) - 1) / 2 for ci in range(len(clusters))])
    long = len(clusters) > 4 or max((len(c) for c in clusters), default=0) > 18
    ax.set_xticklabels(clusters, rotation=20 if long else 0, ha="right" if long else "center")
    ax.set_xlim(-1, len(clusters) * width - 1)
    ax.set_xlabel("cluster")
    ax.set_ylabel(metric.ylabel)
    pos = vals[vals > 0]
    if len(pos) and pos.max() / pos.min() > LOG_SPAN:
        log_y(ax, float(pos.min()), float(pos.max()))
        ax.set_ylabel(metric.ylabel + " (log scale)")
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)


def _legend(fig: Figure, sets: list[str], runs: list, cmap: dict[str, str]) -> None:
    handles = [Patch(facecolor=cmap[n], alpha=0.6, label=n) for n in sets]
    handles += [Line2D([], [], marker=RUN_MARKERS[i % len(RUN_MARKERS)], linestyle="", color="#444444",
                       label=f"run {int(r)}") for i, r in enumerate(runs)]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 8), frameon=False,
               bbox_to_anchor=(0.5, 1.0))


def draw(d: pd.DataFrame, metrics: tuple[Metric, ...], ncols: int, clusters: list[str],
         sets: list[str], cmap: dict[str, str]) -> Figure:
    """The figure itself (call inside ``matplotlib.rc_context(RC)``); _figure turns it into SVG."""
    nrows = -(-len(metrics) // ncols)
    width = min(16.0, max(8.0, 1.1 * len(clusters) * (len(sets) + 1) * ncols / 2.2))
    fig = Figure(figsize=(width, 3.4 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    axes_in = width / ncols - AXES_MARGIN_IN
    for ax, metric in zip(axes, metrics, strict=False):
        _panel(ax, d, metric, clusters, sets, cmap, axes_in)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    _legend(fig, sets, sorted(d["run"].dropna().unique()), cmap)
    fig.get_layout_engine().set(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return fig


def to_svg(fig: Figure, salt: str) -> str:
    """The figure as inline SVG whose ids are unique to ``salt`` and stable for the same data."""
    # A fixed salt keeps the SVG byte-identical for identical data (matplotlib's default is random).
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        return _svg(fig, svg_id_prefix(salt))


def _figure(d: pd.DataFrame, metrics: tuple[Metric, ...], ncols: int, clusters: list[str],
            sets: list[str], cmap: dict[str, str], salt: str) -> str:
    return to_svg(draw(d, metrics, ncols, clusters, sets, cmap), salt)


def scope_figures(m: Merged) -> dict[str, list[FigureSVG]]:
    """Per scope (in the data's own scope strings): the timing figure and the counters figure,
    or, where no cluster of the scope read a single counter, a note in the counters' place."""
    t = timed(m.ref_steps)
    sets = m.input_sets
    cmap = colours(sets)
    out: dict[str, list[FigureSVG]] = {}
    with matplotlib.rc_context(RC):
        for scope in m.scopes:
            d = t[t["scope"] == scope]
            clusters = sorted(set(d["cluster"].dropna())) or ["(no timed steps)"]
            label = scope_label(scope)
            time_fig = FigureSVG(f"Time per megapixel — {label}",
                                 _figure(d, TIME_METRICS, 2, clusters, sets, cmap, f"hrvs-{scope}-time"),
                                 f"Seconds per MP and per informative MP at scope {label}, by cluster and input set")
            title, alt = f"Hardware counters — {label}", f"Instructions per MP, IPC and LLC MPKI at scope {label}"
            if _no_counters(d):
                # Four empty axes say nothing a sentence does not; the sentence also fits any width.
                why = uniq(d["counter_status"].fillna("no status recorded"), "; ") if len(d) else "no timed steps"
                counters = FigureSVG(title, "", alt, note=f"{COUNTERS_TITLE}: unavailable on every node of this "
                                                         f"scope — {why}")
            else:
                counters = FigureSVG(title, _figure(d, COUNTER_METRICS, 2, clusters, sets, cmap,
                                                    f"hrvs-{scope}-counters"), alt + ", by cluster and input set")
            out[scope] = [time_fig, counters]
    return out


def _no_counters(d: pd.DataFrame) -> bool:
    """True when not one step of any cluster in ``d`` has a value for any counter panel."""
    return not any(pd.to_numeric(d[m.column], errors="coerce").notna().any() for m in COUNTER_METRICS)

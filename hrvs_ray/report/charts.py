"""Three figures beyond the paper's per-scope boxes: how each input set scales with cores
(scope by scope, against the ideal line), the remedies' trade-off between time per
informative megapixel and peak memory, and data-parallel cells per rank count and split.
Drawn like figures.py: matplotlib's SVG canvas, no pyplot, text kept as escaped SVG text,
byte-identical output for identical data.
"""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from ..metrics import timed
from ..metrics.data_parallel import is_data_parallel
from ..metrics.interval import value_interval
from ..metrics.noise import run_spread
from ..remedy_axes import PAPER
from .figures import RC, RUN_MARKERS, FigureSVG, colours, log_y, to_svg
from .load import Merged, scope_key, scope_label

LINESTYLES = ("-", "--", "-.", (0, (1, 1)))
BATCHING_MARKERS = {"pad": "o", "bucket": "s", "accumulate": "^"}
# precision × memory format; Okabe-Ito colours, with neutral grey for the paper's float32 + contiguous
FORMAT_COLOURS = {("float32", "contiguous"): "#555555", ("float32", "channels_last"): "#56B4E9",
                  ("bfloat16", "contiguous"): "#D55E00", ("bfloat16", "channels_last"): "#CC79A7"}


def _grid_axes(n: int, panel_in: float = 4.6) -> tuple[Figure, list]:
    ncols = min(3, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(min(16.0, panel_in * ncols + 0.6), 3.5 * nrows + 0.7), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _scaling_data(m: Merged) -> pd.DataFrame:
    """Per input set × cluster × scope: s/MP (ratio of sums) and its 95 % interval. Single-rank
    scopes only: a data-parallel scope's cores are its ranks' total, not a place on this axis
    (its own figure is in the Data-parallel section)."""
    t = timed(m.ref_steps)
    t = t[~is_data_parallel(t)]
    keys = ["input_set", "cluster", "scope"]
    run_sd = run_spread(t, keys, "s_per_mp") if len(t) else None
    rows = []
    for (n, c, s), g in t.groupby(keys, sort=False):
        value, low, high = value_interval(g, "s_per_mp", run_sd)
        rows.append(dict(input_set=n, cluster=c, scope=s, cores=float(g["cores"].median()), value=value,
                         low=low, high=high))
    return pd.DataFrame(rows, columns=keys + ["cores", "value", "low", "high"]).dropna(subset=["cores", "value"])


def _scaling_panel(ax, d: pd.DataFrame, clusters: list[str], colour: str) -> None:
    """One input set: a line per cluster through its scopes, and its ideal (time ∝ 1 / cores)."""
    placed: dict[tuple[float, float], int] = {}
    for ci, cluster in enumerate(clusters):
        e = d[d["cluster"] == cluster]
        e = e.assign(order=e["scope"].map(scope_key)).sort_values(["cores", "order"])
        if e.empty:
            continue
        ax.errorbar(e["cores"], e["value"], yerr=_bars(e), color=colour, marker=RUN_MARKERS[ci % 8],
                    linestyle=LINESTYLES[ci % len(LINESTYLES)], capsize=2, markersize=5, linewidth=1.3)
        c0, y0 = float(e["cores"].iloc[0]), float(e["value"].iloc[0])
        x = np.array([c0, float(e["cores"].max())])
        ax.plot(x, y0 * c0 / x, color="#777777", linestyle=":", linewidth=1.1)
        for _, r in e.iterrows():
            # several scopes can use the same cores (a 2-core VM): stack their labels
            k = (round(r["cores"], 3), round(math.log10(r["value"]), 1))
            placed[k] = placed.get(k, -1) + 1
            ax.annotate(scope_label(r["scope"]), (r["cores"], r["value"]), textcoords="offset points",
                        xytext=(5, 3 + 9 * placed[k]), fontsize=7, color="#444444")
    cores = sorted(set(d["cores"]))
    ax.set_xscale("log", base=2)
    lo = float(d["low"].fillna(d["value"]).clip(lower=d["value"].min() / 2).min())
    hi = float(d["high"].fillna(d["value"]).max())
    log_y(ax, lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(cores))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{c:g}" for c in cores])
    if len(cores) == 1:
        ax.set_xlim(cores[0] / 1.6, cores[0] * 1.6)
    ax.set_xlabel("cores used (log scale)")
    ax.set_ylabel("seconds / MP, Σ s ÷ Σ MP (log scale)")
    ax.grid(color="#e5e5e5", linewidth=0.6)


def scaling_figure(m: Merged) -> FigureSVG:
    """s/MP against the cores each scope used, one panel per input set (the paper's question
    of how each input set scales with cores); a note instead when there is one scope only."""
    title = "Scaling with cores: s / MP at each scope, per input set"
    alt = "Seconds per megapixel against cores used, per input set and cluster, with the ideal scaling line"
    d = _scaling_data(m)
    if d["scope"].nunique() < 2:
        only = ", ".join(scope_label(s) for s in sorted(set(d["scope"]), key=scope_key)) or "none"
        return FigureSVG(title, "", alt, note=f"One scope only in these results ({only}): no scaling to show.")
    sets = [n for n in m.input_sets if n in set(d["input_set"])]
    clusters = sorted(set(d["cluster"]))
    cmap = colours(m.input_sets)
    with matplotlib.rc_context(RC):
        fig, axes = _grid_axes(len(sets))
        for ax, name in zip(axes, sets, strict=False):
            ax.set_title(name, loc="left")
            _scaling_panel(ax, d[d["input_set"] == name], clusters, cmap[name])
        handles = [Line2D([], [], color="#444444", marker=RUN_MARKERS[i % 8], linestyle=LINESTYLES[i % 4],
                          label=c) for i, c in enumerate(clusters)]
        handles.append(Line2D([], [], color="#777777", linestyle=":", label="ideal: time ∝ 1 / cores"))
        fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 6), frameon=False)
        svg = to_svg(fig, "hrvs-scaling")
    return FigureSVG(title, svg, alt, caption=(
        "Points: s / MP (Σ seconds ÷ Σ megapixels of the timed steps) at each scope (label beside it), bars: its "
        "95 % interval (README: Intervals); colour = input set, marker and line = cluster. Dotted: ideal "
        "linear scaling from the cluster's smallest scope. Both axes logarithmic: equal slopes mean equal scaling."))


def _bars(e: pd.DataFrame) -> np.ndarray:
    """Asymmetric error bars (2, n) from the interval columns; none where it is unknown."""
    lo = (e["value"] - e["low"]).clip(lower=0).fillna(0).to_numpy()
    hi = (e["high"] - e["value"]).clip(lower=0).fillna(0).to_numpy()
    return np.vstack([lo, hi])


def _front(ok: pd.DataFrame) -> pd.DataFrame:
    """The combinations no other beats on both time and memory, by memory."""
    ok = ok.sort_values(["peak_gb", "s_imp"])
    keep, best = [], math.inf
    for i, r in ok.iterrows():
        if r["s_imp"] < best:
            keep.append(i)
            best = r["s_imp"]
    return ok.loc[keep]


def _tradeoff_panel(ax, e: pd.DataFrame) -> None:
    ok = e[e["s_imp"].notna() & e["peak_gb"].notna()]
    right = float(ok["peak_gb"].median()) if len(ok) else 0.0
    for _, r in ok.iterrows():
        # bars: the 95 % interval of the ratio of sums, not the steps' spread (a step's
        # s/informative-MP varies with its batch's padding, which would hide every difference)
        colour = FORMAT_COLOURS.get((r["precision"], r["memory_format"]), "#000000")
        if not math.isnan(r["s_imp_low"]):
            bars = [[r["s_imp"] - r["s_imp_low"]], [r["s_imp_high"] - r["s_imp"]]]
            ax.errorbar([r["peak_gb"]], [r["s_imp"]], yerr=bars, color=colour, linestyle="", capsize=2, linewidth=0.9)
        ax.plot([r["peak_gb"]], [r["s_imp"]], marker=BATCHING_MARKERS.get(r["batching"], "D"), color=colour,
                markersize=7, markerfacecolor=colour if r["checkpointing"] == "none" else "white", linestyle="")
        if r["remedy"] == PAPER.label:
            ax.scatter([r["peak_gb"]], [r["s_imp"]], s=240, facecolors="none", edgecolors="#000000", linewidths=1.1)
            left = r["peak_gb"] > right  # keep the label inside the axes
            ax.annotate("paper's setup", (r["peak_gb"], r["s_imp"]), textcoords="offset points",
                        xytext=(-10 if left else 10, 8), ha="right" if left else "left", fontsize=7.5)
    if len(ok) > 1:
        f = _front(ok)
        ax.plot(f["peak_gb"], f["s_imp"], color="#999999", linestyle="--", linewidth=0.9, zorder=0)
    absent = e[e["s_imp"].isna()]
    if len(absent):
        ax.text(0.99, 0.98, f"{len(absent)} combination(s) absent: see the table", transform=ax.transAxes,
                ha="right", va="top", fontsize=7, color="#8a1111")
    ax.margins(x=0.15, y=0.18)  # the paper's ring and its label must not touch the frame
    ax.set_xlabel("peak RSS GB (largest per-step peak)")
    ax.set_ylabel("seconds / informative MP, Σ s ÷ Σ MP")
    ax.grid(color="#e5e5e5", linewidth=0.6)


def _tradeoff_legend(fig: Figure) -> None:
    h = [Line2D([], [], marker=mk, color="#444444", linestyle="", label=b) for b, mk in BATCHING_MARKERS.items()]
    h += [Line2D([], [], marker="o", color=c, linestyle="", label=f"{p} + {f}") for (p, f), c in FORMAT_COLOURS.items()]
    h += [Line2D([], [], marker="o", color="#444444", markerfacecolor="white", linestyle="",
                 label="hollow: checkpointing stages"),
          Line2D([], [], color="#999999", linestyle="--", label="best trade-offs")]
    fig.legend(handles=h, loc="outside upper center", ncol=5, frameon=False, fontsize=7.5)


def tradeoff_figures(g: pd.DataFrame) -> list[FigureSVG]:
    """Per cluster × scope: time per informative MP against peak memory, a panel per input
    set, one marker per combination (shape = batching, colour = precision and memory
    format, hollow = checkpointing); the dashed line joins the combinations nothing beats."""
    out = []
    for i, ((cluster, scope), d) in enumerate(g.groupby(["cluster", "scope"], sort=False)):
        if d["s_imp"].isna().all():
            continue  # nothing measured here: the answers and the table say why, empty axes would not
        sets = list(dict.fromkeys(d["input_set"]))
        with matplotlib.rc_context(RC):
            fig, axes = _grid_axes(len(sets))
            for ax, name in zip(axes, sets, strict=False):
                ax.set_title(name, loc="left")
                _tradeoff_panel(ax, d[d["input_set"] == name])
            _tradeoff_legend(fig)
            svg = to_svg(fig, f"hrvs-remedies-{i}")  # by position: cluster names may differ only in symbols
        out.append(FigureSVG(f"Remedies trade-off — {cluster}, {scope_label(scope)}", svg,
                             f"Seconds per informative MP against peak memory per remedy combination on {cluster} "
                             f"at {scope_label(scope)}", caption=(
                                 "Lower left is better. Points: Σ seconds ÷ Σ informative megapixels of the "
                                 "timed steps, bars: its 95 % interval (the tables give each ratio's "
                                 "interval against the paper's setup); "
                                 "shape = batching, colour = precision + memory format, hollow = activation "
                                 "checkpointing; ringed: the paper's setup.")))
    return out


SPLIT_MARKERS = {"shard": "o", "balanced": "s", "uniform": "^"}


def _dp_panel(ax, e: pd.DataFrame, colour: str) -> None:
    """One input set: s / informative MP per (ranks, split), the 1-rank cell as a line across
    and, over each rank count, the ideal of strong scaling (the 1-rank figure ÷ ranks)."""
    one = e[e["ranks"] == 1]
    dp = e[e["ranks"] > 1].reset_index(drop=True)
    ticks = []
    for i, r in dp.iterrows():
        bars = [[max(0.0, r["s_imp"] - r["s_imp_low"])], [max(0.0, r["s_imp_high"] - r["s_imp"])]] \
            if not math.isnan(r["s_imp_low"]) else None
        ax.errorbar([i], [r["s_imp"]], yerr=bars, color=colour, marker=SPLIT_MARKERS.get(r["split"], "D"),
                    linestyle="", capsize=2, markersize=6)
        ticks.append(f"{int(r['ranks'])} × {r['split']}")
    if len(one) and len(dp):
        base = float(one["s_imp"].iloc[0])
        ax.axhline(base, color="#555555", linewidth=1.0)
        for ranks, d in dp.groupby("ranks", sort=True):
            lo, hi = float(d.index.min()) - 0.4, float(d.index.max()) + 0.4
            ax.plot([lo, hi], [base / ranks] * 2, color="#777777", linestyle=":", linewidth=1.1)
    ax.set_xticks(range(len(ticks)))
    ax.set_xticklabels(ticks, rotation=20, ha="right")
    ax.set_xlim(-0.7, max(0.7, len(ticks) - 0.3))
    ax.margins(y=0.2)
    ax.set_ylabel("seconds / informative MP, Σ s ÷ Σ MP")
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)


def data_parallel_figures(m: Merged, g: pd.DataFrame) -> list[FigureSVG]:
    """Per cluster × rank scope (``data_parallel_section.grid``): s / informative MP of every
    data-parallel cell by rank count and split, beside its 1-rank cell, a panel per input set.
    Drawn apart from the scaling figure: a data-parallel scope is not a point on its cores axis."""
    out = []
    cmap = colours(m.input_sets)
    for i, ((cluster, rscope), d) in enumerate(g.groupby(["cluster", "rank_scope"], sort=False)):
        sets = list(dict.fromkeys(d["input_set"]))
        with matplotlib.rc_context(RC):
            fig, axes = _grid_axes(len(sets))
            for ax, name in zip(axes, sets, strict=False):
                e = d[d["input_set"] == name]
                setups = list(dict.fromkeys(e["setup"]))
                ax.set_title(name if len(setups) == 1 else f"{name} ({setups[0]}; {len(setups) - 1} more in the table)",
                             loc="left")
                _dp_panel(ax, e[e["setup"] == setups[0]], cmap.get(name, "#000000"))
            h = [Line2D([], [], marker=mk, color="#444444", linestyle="", label=s) for s, mk in SPLIT_MARKERS.items()]
            h += [Line2D([], [], color="#555555", label="1 rank"),
                  Line2D([], [], color="#777777", linestyle=":", label="ideal: 1 rank ÷ ranks")]
            fig.legend(handles=h, loc="outside upper center", ncol=5, frameon=False, fontsize=7.5)
            svg = to_svg(fig, f"hrvs-data-parallel-{i}")
        out.append(FigureSVG(f"Data-parallel — {cluster}, each rank {scope_label(rscope)}", svg,
                             f"Seconds per informative MP per rank count and split on {cluster}, each rank "
                             f"{scope_label(rscope)}, against the 1-rank cell", caption=(
                                 "Points: Σ seconds ÷ Σ informative megapixels of the timed steps per rank count "
                                 "and split (marker), bars: its 95 % interval. Solid line: the 1-rank cell on the "
                                 "same images; dotted: the ideal of strong scaling (1 rank ÷ ranks). Lower is "
                                 "better.")))
    return out

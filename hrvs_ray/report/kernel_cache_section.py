"""Memory and shape diversity (issue 17): how resident memory follows the distinct pass
shapes a cell has seen, with PyTorch's CPU kernel caches on (``default``) and ``off``, and
the part of the measured peak those caches account for.

Pure pandas + matplotlib (drawn like figures.py: SVG canvas, no pyplot). Results written
before the columns existed (schema < 3) have no ``distinct_shapes_seen``: the figure says
so instead of drawing, and the table lists nothing.
"""
from __future__ import annotations

import math

import matplotlib
import pandas as pd
from matplotlib.lines import Line2D

from ..metrics import STATISTIC, figure, timed
from .charts import _grid_axes
from .figures import RC, FigureSVG, to_svg
from .fmt import Cell, Table, sig
from .load import Merged, scope_label

GB = 1e9
OFF_TAG = "+kc-off"      # Remedy.label's suffix for kernel_cache: off
SETTING_COLOURS = {"default": "#D55E00", "off": "#0072B2"}   # Okabe-Ito vermillion / blue


def _with_shapes(m: Merged) -> pd.DataFrame:
    s = m.steps
    if "distinct_shapes_seen" not in s or s["distinct_shapes_seen"].isna().all():
        return s.iloc[0:0]
    return s.dropna(subset=["distinct_shapes_seen", "peak_rss_bytes"])


def rss_figure(m: Merged) -> FigureSVG:
    """Per input set: each cell's per-step peak RSS against the distinct pass shapes it had
    seen by then (warm-up included: its kernels are cached too), coloured by the setting."""
    title = "Memory against shape diversity: peak RSS per step vs distinct pass shapes seen"
    alt = "Peak resident memory per step against distinct pass shapes seen, per input set and kernel-cache setting"
    d = _with_shapes(m)
    if d.empty:
        return FigureSVG(title, "", alt, note="No step recorded the distinct pass shapes it had seen "
                                              "(results written before schema 3): nothing to draw.")
    sets = [n for n in m.input_sets if n in set(d["input_set"])]
    with matplotlib.rc_context(RC):
        fig, axes = _grid_axes(len(sets))
        for ax, name in zip(axes, sets, strict=False):
            ax.set_title(name, loc="left")
            for (_cell, setting, rnd), g in d[d["input_set"] == name].groupby(
                    ["cell_id", "kernel_cache", "shape_round"], sort=True):
                g = g.sort_values("step")
                ax.plot(g["distinct_shapes_seen"], g["peak_rss_bytes"] / GB, color=SETTING_COLOURS.get(setting, "#777"),
                        linestyle="--" if rnd else "-", linewidth=1.1, alpha=0.85)
            ax.set_xlabel("distinct pass shapes seen (batch × H × W)")
            ax.set_ylabel("peak RSS of the step, GB")
            ax.grid(alpha=0.3)
        handles = [Line2D([], [], color=c, label=f"kernel caches {k}") for k, c in SETTING_COLOURS.items()
                   if k in set(d["kernel_cache"])]
        handles += [Line2D([], [], color="#444", linestyle=ls, label=lab) for ls, lab, on in
                    (("-", "passes unrounded", (d["shape_round"] == 0).any()),
                     ("--", "passes rounded (shape_round)", (d["shape_round"] > 0).any())) if on]
        fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), frameon=False)
        svg = to_svg(fig, "hrvs-kernel-cache")
    return FigureSVG(title, svg, alt, caption=(
        "One line per cell (every step, warm-up included), all clusters and scopes. With the caches on, "
        "oneDNN and ideep keep kernels for every new pass shape, so memory climbs with the shapes seen even "
        "where steps get no larger; with them off (ONEDNN_PRIMITIVE_CACHE_CAPACITY=0, LRU_CACHE_CAPACITY=1) "
        "it follows the step's own size. A step that brings no new shape adds no point to the right."))


def _cell_growth(g: pd.DataFrame) -> float:
    """Resident memory at the start of the last step less at the start of the first timed
    step: what the cell kept, step after step (activations of a step are gone by then)."""
    t = g[~g["warmup"].astype(bool)].sort_values("step")
    return float(t["rss_start_bytes"].iloc[-1] - t["rss_start_bytes"].iloc[0]) if len(t) > 1 else math.nan


def _per_setup(m: Merged) -> pd.DataFrame:
    keys = ["cluster", "scope", "input_set", "remedy"]
    rows = []
    for key, g in m.steps.groupby(keys, sort=False):
        t = timed(g)
        if t.empty:
            continue
        rows.append(dict(zip(keys, key, strict=False), setting=str(g["kernel_cache"].iloc[0]),
                         peak=t["peak_rss_bytes"].max(),
                         growth=pd.Series([_cell_growth(c) for _, c in g.groupby("cell_id")]).mean(),
                         shapes=g["distinct_shapes_seen"].max(), s_imp=figure(t, "s_per_informative_mp")))
    return pd.DataFrame(rows, columns=keys + ["setting", "peak", "growth", "shapes", "s_imp"])


def cache_share(m: Merged) -> Table:
    """Where a setup ran with the caches on and off (same cluster, scope, input set and
    every other axis): both peaks, the difference as a share of the default's peak, the
    memory each kept over the cell, and what turning the caches off cost in time."""
    d = _per_setup(m)
    on = d[d["setting"] == "default"].set_index(["cluster", "scope", "input_set", "remedy"])
    rows = []
    for _, off in d[d["setting"] == "off"].iterrows():
        key = (off["cluster"], off["scope"], off["input_set"], off["remedy"].replace(OFF_TAG, ""))
        if key not in on.index:
            continue
        r = on.loc[key]
        share = (r["peak"] - off["peak"]) / r["peak"]
        shapes = "—" if pd.isna(r["shapes"]) else str(int(r["shapes"]))
        rows.append([key[2], key[0], scope_label(key[1]), key[3], shapes, sig(r["peak"] / GB), sig(off["peak"] / GB),
                     Cell(f"{100 * share:.0f} %", "best" if share > 0.05 else ""),
                     sig(r["growth"] / GB), sig(off["growth"] / GB), f"{sig(off['s_imp'] / r['s_imp'])}×"])
    return Table("Table 2b. Kernel caches' share of the peak",
                 ["input set", "cluster", "scope", "setup (caches on)", "distinct shapes", "peak GB, caches on",
                  "peak GB, caches off", "share of the peak the caches hold", "kept over the cell GB, on",
                  "kept over the cell GB, off", "time off ÷ on"], rows,
                 note=("Measured where a setup ran with PyTorch's CPU kernel caches both on (default) and off "
                       "(remedies.kernel_cache: off); everything else equal. Peak = largest per-step peak RSS of "
                       "the timed steps; share = (on − off) / on; kept over the cell = resident memory at the start "
                       f"of the last step less at the first timed step (mean over the setup's cells); time = s per "
                       f"informative MP as everywhere ({STATISTIC}), "
                       "off ÷ on (above 1: the caches saved time)."),
                 empty="No setup ran with the kernel caches both on and off.")

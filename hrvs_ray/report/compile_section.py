"""Compiling (issue 27): torch.compile against eager, per cluster, scope and input set.

Steady state comes from the replay rows (``replay=true``: the timed batches trained once more
after the planned steps) without a compile; those rows pair step for step with eager's replay
rows on the same images, and the ratio's interval is the project's one interval
(``metrics.interval.ratio_interval``). Compiling is reported apart: total compile seconds,
compiles per distinct pass shape (with and without ``shape_round``), their reasons, steps
that fell back to eager at the recompile limit, and a break-even in images, labelled a
projection. Pure pandas: reads stored columns only.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter

import pandas as pd

from ..metrics import figure
from ..metrics.interval import LEVEL, ratio_interval
from .fmt import Cell, Table, sig
from .load import Merged

KEYS = ["cluster", "scope", "input_set"]
# the setup a compiled cell is compared with: every axis but compile and its parameters
SAME = ["batching", "precision", "memory_format", "checkpointing", "kernel_cache", "shape_round"]
PROJECTION = ("break-even is a projection: images at which projected compile seconds equal the measured "
              "steady-state saving per image × images. Projected compile seconds = the first compile + the "
              "measured seconds per recompile × the measured recompiles per new pass shape × the new pass "
              "shapes an epoch meets by then (from the plan's metadata: the epoch's distinct pass shapes as "
              "images go by, at this rounding; where the results hold no plan, the cell's own recompiles per "
              "image), up to the recompile limit; 'never' when the saving's interval includes 0, compiling is "
              "slower, or the limit comes first. Intervals: simultaneous 95 % over the compile values of one "
              "setup.")


def has_compile(m: Merged) -> bool:
    s = m.steps
    return "compile" in s and bool((s["compile"].fillna("eager") != "eager").any())


def _steady(g: pd.DataFrame) -> pd.DataFrame:
    """Replay rows without a compile, as timed rows (the interval code reads timed rows)."""
    r = g[g["replay"].fillna(False).astype(bool) & (g["compiles"].fillna(0) == 0)]
    return r.assign(replay=False, warmup=False)


def _paired_steps(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both groups on the (run, step) rows both have: the same images, compared step for step."""
    common = set(zip(a["run"], a["step"], strict=True)) & set(zip(b["run"], b["step"], strict=True))
    keep = lambda d: d[[k in common for k in zip(d["run"], d["step"], strict=True)]]   # noqa: E731
    return keep(a), keep(b)


def _reasons(g: pd.DataFrame) -> str:
    c: Counter[str] = Counter()
    for text in g["compile_reasons"].dropna():
        for r in json.loads(text):
            # one kind per reason: the frame's compile id and the sizes seen are per step
            kind = re.sub(r"\. expected \d+, actual \d+", "", re.sub(r"^\d+/\d+: ", "", r.split("\n")[0]))
            c[kind[:80]] += 1
    return "; ".join(f"{n}× {r}" for r, n in c.most_common(4)) or "-"


def _measured_compiles(g: pd.DataFrame) -> tuple[float, float, float, float, float] | None:
    """From the cell's first run's planned steps: (first compile s, s per recompile, recompiles
    per new pass shape after the first step, recompiles per image after the first step, images
    of the first step); None when nothing compiled."""
    planned = g[~g["replay"].fillna(False).astype(bool)].sort_values(["run", "step"])
    first_run = planned[planned["run"] == planned["run"].min()]
    compiles = first_run[first_run["compiles"].fillna(0) > 0]
    if compiles.empty:
        return None
    first = float(compiles["compile_seconds"].iloc[0])
    later = compiles.iloc[1:]
    n_later = float(later["compiles"].sum())
    per_recompile = float(later["compile_seconds"].sum() / n_later) if n_later else 0.0
    first_images = float(first_run["batch_size"].iloc[0])
    rest = float(first_run["batch_size"].sum()) - first_images
    new_later = float(first_run["new_shape"].fillna(False).astype(bool).iloc[1:].sum())
    per_shape = n_later / new_later if new_later else (1.0 if n_later else 0.0)
    return first, per_recompile, per_shape, (n_later / rest if rest > 0 else 0.0), first_images


def _from_curve(first: float, per_recompile: float, per_shape: float, saving: float, limit: int,
                curve: dict) -> str:
    """Break-even over the epoch's own shape curve (images -> distinct pass shapes met, from the
    plan): compile seconds by N images = first + per_recompile × per_shape × (shapes(N) - 1);
    the graphs by then, 1 + per_shape × (shapes(N) - 1), must stay within the limit."""
    images, shapes = curve["images"], curve["distinct"]
    n0, s0 = 0.0, 1.0
    for n1, s1 in zip(images, shapes, strict=True):
        # linear between checkpoints: cost(N) = a + b × N on [n0, n1]
        b = per_recompile * per_shape * (s1 - s0) / (n1 - n0) if n1 > n0 else 0.0
        a = first + per_recompile * per_shape * (s0 - 1) - b * n0
        if 1 + per_shape * (s1 - 1) > limit:
            # the limit falls in this segment: paid back only if before the graph that hits it
            n_limit = n0 + (n1 - n0) * ((limit - 1) / per_shape + 1 - s0) / (s1 - s0) if s1 > s0 else n0
            if saving > b and a / (saving - b) <= n_limit:
                return f"{max(a / (saving - b), n0):,.0f} (projection)"
            return f"never (the recompile limit, {limit}, comes first, by about {n_limit:,.0f} images)"
        if saving > b and n0 <= a / (saving - b) <= n1:
            return f"{max(a / (saving - b), 1):,.0f} (projection)"
        n0, s0 = float(n1), float(s1)
    return (f"not within an epoch ({images[-1]:,} images): "
            f"{first + per_recompile * per_shape * (shapes[-1] - 1):,.0f} compile s against "
            f"{saving * images[-1]:,.0f} s saved")


def _break_even(g: pd.DataFrame, saving_s_per_image: float, lo_saving: float, limit: int,
                curve: dict | None = None) -> str:
    """Images at which compile seconds are paid back (a projection; see PROJECTION). ``curve``:
    the epoch's distinct pass shapes as images go by (``plan.json``); without it, the cell's
    own rate of recompiles per image."""
    if not (saving_s_per_image > 0 and lo_saving > 0):
        return "never"
    got = _measured_compiles(g)
    if got is None:
        return "n/a (no compile recorded)"
    first, per_recompile, per_shape, rate, _ = got
    if curve and curve.get("images"):
        return _from_curve(first, per_recompile, per_shape, saving_s_per_image, limit, curve)
    denom = saving_s_per_image - per_recompile * rate
    if denom <= 0:
        return "never (every new shape costs more than it saves)"
    n = first / denom
    graphs = 1 + rate * n
    if rate > 0 and graphs > limit:
        return f"never (the recompile limit, {limit}, comes first)"
    return f"{n:,.0f} (projection)"


def _curve(views: dict | None, iset: str, batching: str, shape_round: int) -> dict | None:
    """The epoch's shape curve for this input set, batching and rounding, if the plan has it."""
    v = (views or {}).get((iset, batching))
    for c in (v or {}).get("epoch", {}).get("pass_shapes", []):
        if int(c["shape_round"]) == int(shape_round):
            return c
    return None


def table(m: Merged, views: dict | None = None) -> Table:
    """One row per compile value against eager on the same setup. ``views``: the plan's epoch
    views (``report.epoch.plan_views``), whose shape curves the break-even reads. The "vs
    eager" intervals of one setup are a family (one per compile value): simultaneous at 95 %."""
    cols = ["cluster", "scope", "input set", "compile", "rounding", "steady s/inf-MP",
            "vs eager [simultaneous 95 % CI]",
            "compile s (total)", "compiles / distinct pass shapes", "fell back to eager (steps)", "reasons",
            "break-even images"]
    rows: list[list] = []
    s = m.steps
    t = Table("Compiling: steady state against eager, compile cost apart", cols, rows, note=PROJECTION,
              empty="no compiled cells in these results")
    if not has_compile(m):
        return t
    s = s.assign(compile=s["compile"].fillna("eager"))
    for key, g in s.groupby(KEYS + SAME, sort=True, dropna=False):
        eager = g[g["compile"] == "eager"]
        compiled = g[g["compile"] != "eager"]
        level = 1 - (1 - LEVEL) / max(1, compiled["compile"].nunique())
        for setting, c in compiled.groupby("compile", sort=False):
            a, b = _paired_steps(_steady(c), _steady(eager))
            iv = ratio_interval(a, b, "s_per_informative_mp", level=level) if len(a) and len(b) else None
            value = figure(a, "s_per_informative_mp") if len(a) else float("nan")
            planned = c[~c["replay"].fillna(False).astype(bool)]
            shapes = int(planned["new_shape"].fillna(False).astype(bool).sum())
            fell = int((c["ran_eager"].fillna(False).astype(bool)).sum())
            limit = int(c["recompile_limit"].dropna().iloc[0]) if c["recompile_limit"].notna().any() else 8
            inf_per_image = float(a["informative_px"].sum() / a["batch_size"].sum()) / 1e6 if len(a) else float("nan")
            eager_v = figure(b, "s_per_informative_mp") if len(b) else float("nan")
            saving = (eager_v - value) * inf_per_image
            lo_saving = eager_v * (1 - iv.high) * inf_per_image if iv is not None else float("nan")
            rnd = int(key[KEYS.index("input_set") + 1 + SAME.index("shape_round")] or 0)
            rows.append([key[0], key[1], key[2], setting, f"{rnd} px" if rnd else "none", sig(value),
                         Cell(iv.text(), title=iv.basis) if iv is not None else Cell("n/a", "na"),
                         sig(float(c["compile_seconds"].fillna(0).sum())),
                         f"{int(c['compiles'].fillna(0).sum())} / {shapes}",
                         Cell(str(fell), "flag") if fell else "0", _reasons(c),
                         _break_even(c, saving, lo_saving, limit,
                                     _curve(views, key[2], key[KEYS.index("input_set") + 1 + SAME.index("batching")],
                                            rnd))
                         if math.isfinite(saving) else "n/a"])
    return t


def answers(t: Table) -> list[str]:
    """One sentence per (cluster, scope, input set): whether compiling pays on this machine."""
    out = []
    by: dict[tuple, list] = {}
    for r in t.rows:
        by.setdefault((r[0], r[1], r[2]), []).append(r)
    for (cluster, scope, iset), rs in by.items():
        paying = [(r[3], r[-1]) for r in rs if str(r[-1]).endswith("(projection)")]
        if not paying:
            out.append(f"On {cluster} at {scope}, do not compile for {iset}: no setting's steady-state saving "
                       f"pays back its compile time (or the saving is not measurable).")
            continue
        best = min(paying, key=lambda p: float(p[1].split()[0].replace(",", "")))
        n = best[1].split()[0]
        out.append(f"On {cluster} at {scope}, compile {best[0]} for {iset} only if you train more than {n} images "
                   f"(a projection from the measured compile and steady-state times).")
    return out

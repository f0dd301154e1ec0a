"""What ``hrvs-ray compare`` prints: the table (``--format table``) and the JSON document
(``--format json``, documented in docs/statistics.md) of a ``Comparison``
(hrvs_ray.report.compare, which computes it). Formatting only: every figure, interval and
verdict is the comparison's own; a figure that is not finite prints as n/a, and is null in
the JSON.
"""
from __future__ import annotations

import math
from typing import Any

from ..metrics.data_parallel import key_json
from ..metrics.interval import Interval
from ..metrics.noise import PEAK
from ..metrics.stats import SLOWER
from .compare import KEYS, Comparison, GroupResult, Test

NAMES = {"s_per_mp": "s/MP", "s_per_informative_mp": "s/informative-MP", PEAK: "peak RSS"}
FEW_RUNS_NOTE = ("with 2 runs a side 'equivalent' is rarely reachable: the two one-sided tests need the whole "
                 "corrected interval inside ±threshold; more runs (see the detectable slowdown) or --noise-from "
                 "narrow it. The test is not weakened to reach it.")


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _iv(iv: Interval) -> dict[str, Any]:
    return {"ratio": _finite(iv.value), "low": _finite(iv.low), "high": _finite(iv.high)}


def _test_json(t: Test) -> dict[str, Any]:
    ct, v = t.interval.contrast, t.tested
    return {"metric": t.metric, **_iv(t.interval), "basis": t.interval.basis,
            "log_se": _finite(ct.se) if ct else None, "df": _finite(float(ct.df)) if ct and ct.testable else None,
            "p_slower": _finite(v.p_slower) if v else None, "p_slower_holm": _finite(v.adj_slower) if v else None,
            "p_faster": _finite(v.p_faster) if v else None, "p_faster_holm": _finite(v.adj_faster) if v else None,
            "p_equivalent": _finite(v.p_equivalent) if v else None,
            "p_equivalent_holm": _finite(v.adj_equivalent) if v else None,
            "verdict": t.verdict, "detectable_slowdown": _finite(t.detectable)}


def to_json(c: Comparison) -> dict[str, Any]:
    """The JSON document ``--format json`` prints (docs/statistics.md documents it)."""
    def group(g: GroupResult) -> dict[str, Any]:
        first = g.tests[0] if g.tests else None
        return {"cluster_base": g.clusters[0], "cluster_new": g.clusters[1], "scope": g.key[0],
                "input_set": g.key[1], "remedy": g.key[2], **key_json(g.key[3:], g.dp),
                "steps_base": g.steps[0], "steps_new": g.steps[1],
                "runs_base": g.runs[0], "runs_new": g.runs[1], "s_per_mp": _iv(g.s_mp),
                "s_per_informative_mp": _iv(g.s_imp),
                "peak_rss": {"base_bytes": g.peak[0], "new_bytes": g.peak[1],
                             "ratio": g.peak[1] / g.peak[0] if g.peak[0] else None},
                "growth_per_mp": _iv(g.growth), "interval_basis": g.s_mp.basis,
                "tests": [_test_json(t) for t in g.tests],
                "detectable_slowdown": _finite(first.detectable) if first else None,
                "verdict": g.verdict, "regression": g.regression}
    keys = ["cluster", *KEYS]
    return {"base": str(c.base), "new": str(c.new), "threshold_pct": c.threshold_pct,
            "alpha": c.alpha, "correction": "holm", "family_size": c.family,
            "noise_from": [str(d) for d in c.noise_from], "noise": c.noise,
            "clusters": [{"base": b, "new": n} for b, n in c.pairs],
            "differences": [{"what": w, "base": a, "new": b} for w, a, b in c.identity],
            "groups": [group(g) for g in c.groups],
            "only_base": [dict(zip(keys, k, strict=True)) for k in c.only_base],
            "only_new": [dict(zip(keys, k, strict=True)) for k in c.only_new],
            "regressions": sum(g.regression for g in c.groups), "exit_code": c.exit_code}


def _gb(x: float) -> str:
    return f"{x / 1e9:.2f}" if math.isfinite(x) else "n/a"


def _cell(t: Test | None, c: Comparison) -> str:
    if t is None:
        return "= s/MP"
    v = t.verdict.upper() if t.verdict == SLOWER else t.verdict
    p = f" p={t.tested.adj_slower:.2g}" if t.tested is not None and t.verdict == SLOWER else ""
    return f"{t.interval.text()} {v}{p}"


def to_text(c: Comparison) -> str:
    """The table ``--format table`` prints."""
    thr = c.threshold_pct / 100
    lines = [f"compare: NEW {c.new} ÷ BASE {c.base} (ratio of sums over timed steps; 95 % intervals)",
             f"  gate: {c.family} tests (group × metric), Holm-corrected, family-wise α = {c.alpha:g}; slower = "
             f"> {1 + thr:.3g}×, faster = < {1 / (1 + thr):.3g}×, equivalent = within both (two one-sided tests)"]
    lines += [f"  cluster {b} (base) vs {n} (new)" for b, n in c.pairs]
    lines += [f"  noise borrowed from {d} (pooled into each matching stratum)" for d in c.noise_from]
    lines += [f"  differs: {w}: base {', '.join(a) or '—'}; new {', '.join(b) or '—'}" for w, a, b in c.identity]
    head = ["cluster", "scope", "input set", "remedy", "runs", "s/MP new÷base", "s/inf-MP new÷base",
            "peak RSS new÷base", "growth/MP new÷base", "detectable slowdown"]
    rows = [[g.clusters[0] if g.clusters[0] == g.clusters[1] else f"{g.clusters[0]}→{g.clusters[1]}", *g.key[:3],
             f"{g.runs[0]}/{g.runs[1]}", _cell(g.test("s_per_mp"), c), _cell(g.test("s_per_informative_mp"), c),
             _cell(g.test(PEAK), c) if g.test(PEAK) else f"{_gb(g.peak[0])}→{_gb(g.peak[1])} GB",
             g.growth.text() + " (not tested)",
             f"{g.tests[0].detectable:.3g}×" if g.tests and math.isfinite(g.tests[0].detectable) else "n/a"]
            for g in c.groups]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    lines.append("")
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [head] + rows]
    bases = sorted({t.interval.basis for g in c.groups for t in g.tests})
    lines += ["", *(f"interval: {b}" for b in bases)]
    tested = {t.metric for g in c.groups for t in g.tests}
    for n in (n for n in c.noise if n["metric"] in tested):
        st = ", ".join(f"{k}={v}" for k, v in n["stratum"].items())
        pair = f"; paired σ = {100 * n['paired_sd']:.1f} % ({n['paired_df']} df)" if n["paired_sd"] is not None else ""
        hom = (f"; homogeneity across its groups (Bartlett, a diagnostic: the pooling is fixed) p = "
               f"{n['homogeneity_p']:.2g}" if math.isfinite(n["homogeneity_p"]) else "")
        lines.append(f"noise {NAMES[n['metric']]} [{st}]: σ = {100 * n['sd']:.1f} % ({n['df']} df){pair}{hom}")
    untestable = sum(t.tested is None for g in c.groups for t in g.tests)
    if untestable:
        lines.append(f"{untestable} test(s) inconclusive, not tested: no run-to-run spread known in their stratum "
                     f"(one run a side); add runs or --noise-from a calibration folder")
    if c.groups and max(max(g.runs) for g in c.groups) <= 2:
        lines.append("note: " + FEW_RUNS_NOTE)
    lines += [f"only in {w}: {' '.join(map(str, k[:4]))}" for w, ks in (("base", c.only_base), ("new", c.only_new))
              for k in ks]
    n = sum(g.regression for g in c.groups)
    lines.append(f"{n} group(s) beyond +{c.threshold_pct:g} % (Holm-adjusted p < {c.alpha:g}): exit 1" if n else
                 f"no group beyond +{c.threshold_pct:g} % at family-wise α = {c.alpha:g}: exit 0")
    return "\n".join(lines)

"""``hrvs-ray compare BASE_DIR NEW_DIR``: a regression check between two results folders.

Groups (scope × input set × remedy, and cluster) are matched across the folders: on cluster
name where both hold that cluster, or, when each holds exactly one cluster, those two. Per
matched group: NEW ÷ BASE of s/MP and s/informative-MP (the one statistic, ratio of sums)
with a 95 % interval (hrvs_ray.metrics.interval: from the run-to-run spread where runs
repeat, else a bootstrap of the steps, identical batches redrawn together), the ratio of
peak RSS (a maximum, no interval) and the ratio of memory growth per MP over the same steps
(equal batches, interval by the same method), and a verdict. Pure pandas; reads parquet
through hrvs_ray.store only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..metrics import timed
from ..metrics.interval import NO_DIFFERENCE, Interval, Spread, ratio_interval, run_spread
from ..store import ResultsError, read_results

KEYS = ["scope", "input_set", "remedy"]
# what a node or cell records about the machine and software: (label, table, column)
IDENTITY = (("CPU model", "nodes", "cpu_model"), ("physical cores", "nodes", "physical"),
            ("logical CPUs", "nodes", "logical_cpus"), ("kernel", "nodes", "kernel"),
            ("torch version", "cells", "torch_version"), ("image digest", "cells", "container_digest"),
            ("hrvs-ray version", "cells", "hrvs_ray_version"))


class CompareError(ResultsError):
    """Bad input for compare (exit 2): nothing matches, or matched groups trained on different images."""


@dataclass
class Side:
    root: Path
    steps: pd.DataFrame     # timed steps
    cells: pd.DataFrame
    nodes: pd.DataFrame

    @property
    def clusters(self) -> list[str]:
        return sorted(set(self.steps["cluster"].dropna()))


@dataclass
class GroupResult:
    clusters: tuple[str, str]           # (base, new)
    key: tuple[str, str, str]           # scope, input set, remedy
    steps: tuple[int, int]
    runs: tuple[int, int]
    s_mp: Interval
    s_imp: Interval
    peak: tuple[float, float]           # bytes, base and new
    growth: Interval
    verdict: str
    regression: bool


@dataclass
class Comparison:
    base: Path
    new: Path
    threshold_pct: float
    pairs: list[tuple[str, str]]
    groups: list[GroupResult] = field(default_factory=list)
    only_base: list[tuple[str, ...]] = field(default_factory=list)
    only_new: list[tuple[str, ...]] = field(default_factory=list)
    identity: list[tuple[str, list[str], list[str]]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if any(g.regression for g in self.groups) else 0


def _side(root: Path) -> Side:
    r = read_results(root)
    return Side(Path(root), timed(r.steps.to_pandas()), r.cells.to_pandas(), r.nodes.to_pandas())


def _pairs(base: Side, new: Side) -> list[tuple[str, str]]:
    """Which base cluster is compared with which new one."""
    if len(base.clusters) == 1 and len(new.clusters) == 1:
        return [(base.clusters[0], new.clusters[0])]
    return [(c, c) for c in base.clusters if c in new.clusters]


def _groups(side: Side, cluster: str) -> dict[tuple, pd.DataFrame]:
    s = side.steps[side.steps["cluster"] == cluster]
    return {k: g for k, g in s.groupby(KEYS, sort=True)}


def _different_images(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether the steps both sides ran (same run and step) trained on different batches."""
    cols = ["run", "step", "batch_fingerprint"]
    both = a[cols].merge(b[cols], on=["run", "step"], suffixes=("_a", "_b"))
    return bool((both["batch_fingerprint_a"] != both["batch_fingerprint_b"]).any())


def _verdict(iv: Interval) -> str:
    if not math.isfinite(iv.value):
        return "not measured"
    if iv.includes_one:
        return f"{NO_DIFFERENCE} with {iv.steps} steps"
    return "faster" if iv.high < 1 else "slower"


def _values(side: Side, table: str, column: str, clusters: set[str]) -> list[str]:
    df = side.nodes if table == "nodes" else side.cells
    df = df[df["cluster"].isin(clusters)]
    if column == "physical":
        vals = pd.to_numeric(df["sockets"], errors="coerce") * pd.to_numeric(df["cores_per_socket"], errors="coerce")
    else:
        vals = df[column] if column in df else pd.Series(dtype=object)
    return sorted({str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
                   for v in vals.dropna() if str(v) != ""})


def _identity(base: Side, new: Side, pairs: list[tuple[str, str]]) -> list[tuple[str, list[str], list[str]]]:
    """The node and software facts that differ between the compared clusters of each side."""
    bc, nc = {b for b, _ in pairs}, {n for _, n in pairs}
    out = []
    for label, table, column in IDENTITY:
        a, b = _values(base, table, column, bc), _values(new, table, column, nc)
        if a != b:
            out.append((label, a, b))
    return out


def _one(a: pd.DataFrame, b: pd.DataFrame, run_sd: Spread | None, threshold: float,
         clusters: tuple[str, str], key: tuple) -> GroupResult:
    s_mp = ratio_interval(b, a, "s_per_mp", run_sd)
    verdict = _verdict(s_mp)
    regression = verdict == "slower" and s_mp.value > 1 + threshold / 100
    peak = tuple(float(pd.to_numeric(x["peak_rss_bytes"], errors="coerce").max()) for x in (a, b))
    return GroupResult(clusters, key, (len(a), len(b)), (int(a["run"].nunique()), int(b["run"].nunique())), s_mp,
                       ratio_interval(b, a, "s_per_informative_mp", run_sd), peak,  # type: ignore[arg-type]
                       ratio_interval(b, a, "growth_per_mp"), verdict, regression)


def compare(base_dir: Path, new_dir: Path, threshold_pct: float = 5.0) -> Comparison:
    """Match the two folders' groups and compare them; CompareError when nothing matches or
    a matched group trained on different images."""
    base, new = _side(Path(base_dir)), _side(Path(new_dir))
    pairs = _pairs(base, new)
    c = Comparison(Path(base_dir), Path(new_dir), threshold_pct, pairs)
    both = pd.concat([base.steps.assign(side="base"), new.steps.assign(side="new")], ignore_index=True)
    run_sd = run_spread(both, ["side", "cluster"] + KEYS) if len(both) else None
    differ = []
    for bc, nc in pairs:
        a, b = _groups(base, bc), _groups(new, nc)
        c.only_base += [(bc, *k) for k in a if k not in b]
        c.only_new += [(nc, *k) for k in b if k not in a]
        for k in (k for k in a if k in b):
            if _different_images(a[k], b[k]):
                differ.append(f"{bc}/{nc} {' '.join(map(str, k))}")
                continue
            c.groups.append(_one(a[k], b[k], run_sd, threshold_pct, (bc, nc), k))
    c.only_base += [(cl, *k) for cl in base.clusters if cl not in {p[0] for p in pairs} for k in _groups(base, cl)]
    c.only_new += [(cl, *k) for cl in new.clusters if cl not in {p[1] for p in pairs} for k in _groups(new, cl)]
    if differ:
        raise CompareError(f"{base_dir} and {new_dir}: matched groups trained on different images (batch "
                           f"fingerprints differ): {'; '.join(differ)}. Compare runs of the same sweep settings.")
    if not c.groups:
        raise CompareError(f"{base_dir} and {new_dir}: no group matches (clusters {base.clusters} vs "
                           f"{new.clusters}; a group is cluster × scope × input set × remedy)")
    c.identity = _identity(base, new, pairs)
    return c


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _iv(iv: Interval) -> dict[str, Any]:
    return {"ratio": _finite(iv.value), "low": _finite(iv.low), "high": _finite(iv.high)}


def to_json(c: Comparison) -> dict[str, Any]:
    """The JSON document ``--format json`` prints (documented in the README)."""
    def group(g: GroupResult) -> dict[str, Any]:
        return {"cluster_base": g.clusters[0], "cluster_new": g.clusters[1], "scope": g.key[0],
                "input_set": g.key[1], "remedy": g.key[2], "steps_base": g.steps[0], "steps_new": g.steps[1],
                "runs_base": g.runs[0], "runs_new": g.runs[1], "s_per_mp": _iv(g.s_mp),
                "s_per_informative_mp": _iv(g.s_imp),
                "peak_rss": {"base_bytes": g.peak[0], "new_bytes": g.peak[1],
                             "ratio": g.peak[1] / g.peak[0] if g.peak[0] else None},
                "growth_per_mp": _iv(g.growth), "interval_basis": g.s_mp.basis,
                "verdict": g.verdict.split(" with ")[0], "regression": g.regression}
    keys = ["cluster", *KEYS]
    return {"base": str(c.base), "new": str(c.new), "threshold_pct": c.threshold_pct,
            "clusters": [{"base": b, "new": n} for b, n in c.pairs],
            "differences": [{"what": w, "base": a, "new": b} for w, a, b in c.identity],
            "groups": [group(g) for g in c.groups],
            "only_base": [dict(zip(keys, k, strict=True)) for k in c.only_base],
            "only_new": [dict(zip(keys, k, strict=True)) for k in c.only_new],
            "regressions": sum(g.regression for g in c.groups), "exit_code": c.exit_code}


def _gb(x: float) -> str:
    return f"{x / 1e9:.2f}" if math.isfinite(x) else "n/a"


def to_text(c: Comparison) -> str:
    """The table ``--format table`` prints."""
    lines = [f"compare: NEW {c.new} ÷ BASE {c.base} (ratio of sums over timed steps; 95 % intervals)"]
    lines += [f"  cluster {b} (base) vs {n} (new)" for b, n in c.pairs]
    lines += [f"  differs: {w}: base {', '.join(a) or '—'}; new {', '.join(b) or '—'}" for w, a, b in c.identity]
    head = ["cluster", "scope", "input set", "remedy", "steps", "s/MP new÷base", "s/inf-MP new÷base",
            "peak GB base→new", "growth/MP new÷base", "verdict"]
    rows = [[g.clusters[0] if g.clusters[0] == g.clusters[1] else f"{g.clusters[0]}→{g.clusters[1]}", *g.key,
             f"{g.steps[0]}/{g.steps[1]}", g.s_mp.text(), g.s_imp.text(), f"{_gb(g.peak[0])}→{_gb(g.peak[1])}",
             g.growth.text(), g.verdict.upper() + f" (> {c.threshold_pct:g} %)" if g.regression else g.verdict]
            for g in c.groups]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    lines.append("")
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [head] + rows]
    bases = sorted({g.s_mp.basis for g in c.groups})
    lines += ["", *(f"interval: {b}" for b in bases)]
    lines += [f"only in base: {' '.join(k)}" for k in c.only_base] + [f"only in new: {' '.join(k)}" for k in c.only_new]
    n = sum(g.regression for g in c.groups)
    lines.append(f"{n} group(s) slower by more than {c.threshold_pct:g} % with the interval excluding 1"
                 if n else f"no group slower by more than {c.threshold_pct:g} % with the interval excluding 1")
    return "\n".join(lines)

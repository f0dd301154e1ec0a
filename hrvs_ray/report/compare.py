"""``hrvs-ray compare BASE_DIR NEW_DIR``: a regression gate between two results folders that
does not cry wolf.

Groups (scope × input set × remedy, and cluster) are matched across the folders: on cluster
name where both hold that cluster, or, when each holds exactly one cluster, those two. Per
matched group and metric (s/MP; s/informative-MP only where its per-run ratios differ from
s/MP's, since on the same images they are one ratio; each run's peak RSS), NEW ÷ BASE (the
one statistic) with its interval from the run-to-run spread of the group's stratum
(hrvs_ray.metrics.interval, pooled across scopes and the other remedy axes, paired on the
runs), one test per (group × metric), and four verdicts Holm-corrected over the whole family
(hrvs_ray.metrics.stats): slower or faster beyond the threshold, equivalent within it (two
one-sided tests), or inconclusive; beside each, the smallest slowdown its runs and noise
would catch. Exit 1 only when some test rejects 'ratio <= 1 + threshold' with a Holm-adjusted
p below --alpha. Memory growth per MP is shown with its own spread, not tested (a growth can
be zero or negative, where a ratio means nothing). Pure pandas; reads parquet through
hrvs_ray.store only. What the command prints (table or JSON) is ``compare_output``'s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..metrics import timed
from ..metrics.data_parallel import DP_KEYS, side_figures
from ..metrics.interval import Interval, ratio_interval
from ..metrics.noise import PEAK, Noise, per_run, run_spread, strata_of
from ..metrics.stats import ALPHA, INCONCLUSIVE, SLOWER, Tested, chi2_sf, detectable, verdicts
from ..store import ResultsError, read_results

KEYS = ["scope", "input_set", "remedy", *DP_KEYS]   # ranks and split: older folders read 1 and shard
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
class Test:
    """One (group × metric) test of the family."""
    metric: str
    interval: Interval
    tested: Tested | None          # None where the run-to-run spread is unknown (not in the family)
    detectable: float              # the smallest slowdown caught with 80 % power (NaN: not testable)

    @property
    def verdict(self) -> str:
        return self.tested.verdict if self.tested is not None else INCONCLUSIVE


@dataclass
class GroupResult:
    clusters: tuple[str, str]           # (base, new)
    key: tuple                          # scope, input set, remedy, ranks, split
    steps: tuple[int, int]
    runs: tuple[int, int]
    s_mp: Interval
    s_imp: Interval
    peak: tuple[float, float]           # bytes, base and new (largest per-step peak)
    growth: Interval
    tests: list[Test] = field(default_factory=list)
    dp: dict[str, dict[str, float | None]] | None = None   # data-parallel figures, base and new

    def test(self, metric: str) -> Test | None:
        return next((t for t in self.tests if t.metric == metric), None)

    @property
    def verdict(self) -> str:
        """The time verdict: slower if any time test says so, else s/MP's."""
        time = [t for t in self.tests if t.metric != PEAK]
        if any(t.verdict == SLOWER for t in time):
            return SLOWER
        return time[0].verdict if time else INCONCLUSIVE

    @property
    def regression(self) -> bool:
        return any(t.verdict == SLOWER for t in self.tests)


@dataclass
class Comparison:
    base: Path
    new: Path
    threshold_pct: float
    pairs: list[tuple[str, str]]
    alpha: float = ALPHA
    groups: list[GroupResult] = field(default_factory=list)
    only_base: list[tuple[str, ...]] = field(default_factory=list)
    only_new: list[tuple[str, ...]] = field(default_factory=list)
    identity: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    noise: list[dict[str, Any]] = field(default_factory=list)      # per metric and stratum: the spread used
    noise_from: list[Path] = field(default_factory=list)
    family: int = 0                                                 # tests corrected together

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
    # plain Python values: the keys go into the JSON (ranks is an int32 column)
    return {tuple(x.item() if hasattr(x, "item") else x for x in k): g for k, g in s.groupby(KEYS, sort=True)}


def _different_images(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether the steps both sides ran (same run and step) trained on different batches."""
    cols = ["run", "step", "batch_fingerprint"]
    both = a[cols].merge(b[cols], on=["run", "step"], suffixes=("_a", "_b"))
    return bool((both["batch_fingerprint_a"] != both["batch_fingerprint_b"]).any())


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


METRICS = ("s_per_mp", "s_per_informative_mp", PEAK)        # tested, in this order


def _same_ratio(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether s/informative-MP's per-run ratios are s/MP's (same images: informative and total
    pixels in the same proportion on both sides), so it is one test, not two."""
    x = [per_run(d, n) for d in (b, a) for n in ("s_per_mp", "s_per_informative_mp")]
    if set(x[0]) != set(x[2]) or set(x[1]) != set(x[3]) or set(x[0]) != set(x[1]):
        return False
    return all(abs((x[0][r] - x[2][r]) - (x[1][r] - x[3][r])) < 1e-9 for r in x[0])


def _noise(both: pd.DataFrame, calibration: list[pd.DataFrame], name: str, labels: list[str]) -> Noise | None:
    keys = ["side", "cluster", *KEYS]
    own = run_spread(both, keys, name) if len(both) else None
    cols, strata = strata_of(both)
    for cal, label in zip(calibration, labels, strict=True):
        got = run_spread(cal, keys, name)
        if got is not None:
            own = (own or Noise(name, cols, {}, {})).pooled_with(got, label, strata)
    return own


def _bartlett(sds: list[tuple[float, int]]) -> float:
    """Bartlett's p that the cells' run spreads are equal (NaN when it cannot be computed)."""
    sds = [(s, v) for s, v in sds if v > 0 and s > 0]
    if len(sds) < 2:
        return float("nan")
    v = np.array([x[1] for x in sds], dtype="float64")
    s2 = np.array([x[0] for x in sds]) ** 2
    pooled = (v * s2).sum() / v.sum()
    m = v.sum() * math.log(pooled) - (v * np.log(s2)).sum()
    corr = 1 + ((1 / v).sum() - 1 / v.sum()) / (3 * (len(sds) - 1))
    return chi2_sf(m / corr, len(sds) - 1)


def _describe_noise(noises: dict[str, Noise | None]) -> list[dict[str, Any]]:
    out = []
    for name, n in noises.items():
        if n is None:
            continue
        for key, sp in sorted(n.oneway.items()):
            paired = n.twoway.get(key)
            out.append({"metric": name, "stratum": dict(zip(n.cols, key, strict=True)),
                        "sd": sp.sd, "df": sp.df, "how": sp.how,
                        "paired_sd": paired[1].sd if paired else None, "paired_df": paired[1].df if paired else None,
                        "homogeneity_p": _bartlett(n.spread_of_cells.get(key, []))})
    return out


def compare(base_dir: Path, new_dir: Path, threshold_pct: float = 5.0, alpha: float = ALPHA,
            noise_from: list[Path] | None = None) -> Comparison:
    """Match the two folders' groups, test them as one family and give each its verdicts;
    CompareError when nothing matches or a matched group trained on different images.
    ``noise_from``: results folders of the same sweep (e.g. an A/A pair on this cluster)
    whose run-to-run spread is pooled into each stratum's."""
    base, new = _side(Path(base_dir)), _side(Path(new_dir))
    pairs = _pairs(base, new)
    c = Comparison(Path(base_dir), Path(new_dir), threshold_pct, pairs, alpha,
                   noise_from=[Path(d) for d in noise_from or []])
    both = pd.concat([base.steps.assign(side="base"), new.steps.assign(side="new")], ignore_index=True)
    cal = [_side(d).steps.assign(side=f"cal{i}") for i, d in enumerate(c.noise_from)]
    labels = [f"borrowed from {d}" for d in c.noise_from]
    noises = {n: _noise(both, cal, n, labels) for n in METRICS}
    differ = []
    for bc, nc in pairs:
        a, b = _groups(base, bc), _groups(new, nc)
        c.only_base += [(bc, *k) for k in a if k not in b]
        c.only_new += [(nc, *k) for k in b if k not in a]
        for k in (k for k in a if k in b):
            if _different_images(a[k], b[k]):
                differ.append(f"{bc}/{nc} {' '.join(map(str, k[:3]))}")
                continue
            c.groups.append(_group(a[k], b[k], noises, (bc, nc), k))
    c.only_base += [(cl, *k) for cl in base.clusters if cl not in {p[0] for p in pairs} for k in _groups(base, cl)]
    c.only_new += [(cl, *k) for cl in new.clusters if cl not in {p[1] for p in pairs} for k in _groups(new, cl)]
    if differ:
        raise CompareError(f"{base_dir} and {new_dir}: matched groups trained on different images (batch "
                           f"fingerprints differ): {'; '.join(differ)}. Compare runs of the same sweep settings.")
    if not c.groups:
        raise CompareError(f"{base_dir} and {new_dir}: no group matches (clusters {base.clusters} vs "
                           f"{new.clusters}; a group is cluster × scope × input set × remedy)")
    _test_family(c)
    c.identity = _identity(base, new, pairs)
    c.noise = _describe_noise(noises)
    return c


def _group(a: pd.DataFrame, b: pd.DataFrame, noises: dict[str, Noise | None], clusters: tuple[str, str],
           key: tuple) -> GroupResult:
    """One matched group's intervals (NEW ÷ BASE); its tests are filled in by _test_family."""
    ivs = {n: ratio_interval(b, a, n, noises[n]) for n in METRICS}
    peak = tuple(float(pd.to_numeric(x["peak_rss_bytes"], errors="coerce").max()) for x in (a, b))
    growth_noise = run_spread(pd.concat([a.assign(side="base"), b.assign(side="new")]), ["side"], "growth_per_mp")
    g = GroupResult(clusters, key, (len(a), len(b)), (int(a["run"].nunique()), int(b["run"].nunique())),
                    ivs["s_per_mp"], ivs["s_per_informative_mp"], peak,  # type: ignore[arg-type]
                    ratio_interval(b, a, "growth_per_mp", growth_noise))
    g.dp = side_figures(a, b) if int(key[3]) > 1 else None
    metrics = [n for n in METRICS if n != "s_per_informative_mp" or not _same_ratio(a, b)]
    g.tests = [Test(n, ivs[n], None, float("nan")) for n in metrics]
    return g


def _test_family(c: Comparison) -> None:
    """Holm over every testable (group × metric) test of the comparison; each test's verdict
    and the slowdown it would catch at the family's strictest level."""
    tests = [t for g in c.groups for t in g.tests if t.interval.contrast is not None and t.interval.contrast.testable]
    c.family = len(tests)
    found = verdicts([t.interval.contrast for t in tests], c.threshold_pct / 100, c.alpha)  # type: ignore[misc]
    for t, v in zip(tests, found, strict=True):
        t.tested = v
        ct = t.interval.contrast
        t.detectable = detectable(ct.se, ct.df, c.family, c.threshold_pct / 100, c.alpha)  # type: ignore[union-attr]

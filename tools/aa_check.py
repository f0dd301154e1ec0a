"""A/A check: how often does the tool claim a difference where there is none?

    python -m tools.aa_check [--sweep sweeps/quick.yaml] [--groups 4] [--all-scopes]
                                  [--sets LR&FS,MR&VS,HR&VS] [--name s_per_mp]
    python -m tools.aa_check --folders DIR DIR [DIR ...]     # real results, same sweep
    python -m tools.aa_check --simulate 2000 [--noise 3,12,6]  # quick-shaped, seeded

Three modes. ``--folders``: two or more results folders of the same sweep taken on one
cluster with no change between them (an A/A set); every pair is compared exactly as
``hrvs-ray compare`` does, and the share of pairs that would exit 1 (the family-wise false
alarm rate) is printed with its 95 % binomial (Wilson) interval, with each stratum's
run-to-run spread and the slowdown the gate can detect: run it on your cluster before
trusting a gate, and pass one of the folders to ``compare --noise-from``. ``--simulate N``:
N seeded quick-shaped A/A pairs (9 groups, run noise by input set), the family-wise rate
and its interval. The default mode measures:

Runs the same group of cells again and again: the sweep's paper setup at its first scope,
one cell per run as the sweep has them (same images as the sweep's, run by run), the
sweep's own warm-up and timed step counts. ``--groups`` independent groups per input set,
each cell a fresh fork of the node's zygote, run by the very cell host a sweep's actor is
(hrvs_ray.cluster.zygote_client.CellHost), placed and counted as in a sweep, without Ray.
Then every pair of groups is compared
with the interval the report and ``compare`` state (hrvs_ray.metrics.interval), and the
share of pairs whose interval excludes 1 is printed: the false-positive rate, which must
be at most about 5 %. With several runs per group the interval rests on the run-to-run
spread pooled over the other groups (as the report pools it over a sweep's other groups);
with one run, on the steps alone. For contrast it also prints the one-run rate between
single run-0 cells: those intervals cover step-to-step noise only, not what differs from
process to process. ``--save FILE`` keeps the rows. Splitting one cell's steps in two would
not do: it would hide what differs between cells (process, heap, the machine's state).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from hrvs_ray.cluster.zygote_client import CellHost
from hrvs_ray.config import DatasetSpec, load_sweep
from hrvs_ray.data.inputs import PreparedSet
from hrvs_ray.data.mame import open_dataset
from hrvs_ray.metrics import figure
from hrvs_ray.metrics.interval import ratio_interval
from hrvs_ray.metrics.noise import run_spread
from hrvs_ray.metrics.stats import SLOWER, contrast, oneway, twoway, verdicts
from hrvs_ray.node.topology import read_topology, resolve_scope
from hrvs_ray.plan.cells import CellSpec, plan_cells

REPO = Path(__file__).resolve().parents[1]


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95 % Wilson interval of a binomial rate k / n."""
    if n == 0:
        return float("nan"), float("nan")
    p, d = k / n, 1 + z * z / n
    c, h = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def rate_text(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k} of {n} = {k / n:.1%} [95 % {lo:.1%}–{hi:.1%}]" if n else "no pairs"


def folders(dirs: list[Path], threshold: float, alpha: float) -> None:
    """Every pair of an A/A set of real results folders, compared as ``compare`` does."""
    from hrvs_ray.report.compare import compare
    from hrvs_ray.report.compare_output import to_text

    fails, n = 0, 0
    for a, b in itertools.combinations(dirs, 2):
        c = compare(a, b, threshold, alpha)
        n += 1
        fails += c.exit_code
        print(f"{a} vs {b}: exit {c.exit_code}, {c.family} tests")
    print(to_text(compare(dirs[0], dirs[1], threshold, alpha)).split("\n\n", 1)[1])
    print(f"family-wise false alarms (pairs that would exit 1): {rate_text(fails, n)}; must be at most about "
          f"{alpha:.0%}. Few pairs give a wide interval: the rate is known only as well as it says.")


def simulate(draws: int, noise: list[float], scopes: int = 3, runs: int = 2, seed: int = 26) -> None:
    """Seeded quick-shaped A/A pairs through the gate's statistics: per input set one stratum
    of ``scopes`` groups × 2 sides × ``runs`` runs (paired), all groups one Holm family."""
    rng = np.random.default_rng(seed)
    fails = 0
    for _ in range(draws):
        cs = []
        for sd in noise:
            cells = {(g, side): {r: rng.normal(0, sd) for r in range(runs)} for g in range(scopes) for side in (0, 1)}
            paired = twoway(cells)
            cs += [contrast([cells[(g, 1)][r] for r in range(runs)], [cells[(g, 0)][r] for r in range(runs)],
                            oneway(cells), paired=paired) for g in range(scopes)]
        fails += any(t.verdict == SLOWER for t in verdicts(cs, 0.05))
    print(f"simulated A/A, {len(noise) * scopes} groups (run noise {', '.join(f'{x:.0%}' for x in noise)}), {runs} "
          f"runs a side: family-wise false alarms {rate_text(fails, draws)}")


def cells_of(sweep_path: Path, sets: list[str], all_scopes: bool = False) -> tuple[list[CellSpec], DatasetSpec]:
    """The paper setup's cells of each input set at the sweep's first scope (or every scope),
    one per run."""
    sweep = load_sweep(sweep_path)
    cells = [c for c in plan_cells(sweep, ["local"]) if c.remedy.is_paper
             and (all_scopes or c.scope == sweep.scopes[0]) and c.input_set.name in sets]
    ds = sweep.dataset
    return cells, replace(ds, path=str(REPO / ds.path), cache=str(REPO / ds.cache))


def prepare(cells: list[CellSpec], dataset: DatasetSpec) -> None:
    """Generate the dataset and cache the input sets once, so no cell pays for it."""
    from hrvs_ray.train.cell import cell_batches

    data = open_dataset(dataset)
    for c in cells:
        ids = sorted({i for b in cell_batches(c, data) for i in b})
        PreparedSet(data, c.input_set, Path(dataset.cache)).prepare(ids, workers=1)


def run_cell(cell: CellSpec, dataset: DatasetSpec, hosts: dict[tuple, CellHost]) -> pd.DataFrame:
    """The cell in a fresh fork of this machine's zygote, run as a sweep's cell host runs it
    (one host per scope and kernel-cache setting, kept in ``hosts``)."""
    placement = resolve_scope(read_topology("/"), cell.scope, allowed=os.sched_getaffinity(0))
    key = (cell.scope, cell.remedy.kernel_cache)
    if key not in hosts:
        hosts[key] = CellHost(placement, cell.remedy.kernel_cache)
    outcome = hosts[key].run(cell, dataset, "local", placement)
    if outcome.status != "ok":
        raise SystemExit(f"cell {cell.cell_id} failed: {outcome.error}")
    cols = ["run", "step", "warmup", "seconds", "total_px", "informative_px", "padding_px", "batch_fingerprint"]
    return outcome.steps.select(cols).to_pandas()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", default=str(REPO / "sweeps" / "quick-remedies.yaml"))
    ap.add_argument("--groups", type=int, default=8, help="independent groups per input set, each of the "
                    "sweep's runs")
    ap.add_argument("--sets", default="MR&VS,HR&VS")
    ap.add_argument("--name", default="s_per_informative_mp", choices=("s_per_mp", "s_per_informative_mp"))
    ap.add_argument("--save", metavar="FILE", help="write every cell's step rows here as JSON")
    ap.add_argument("--all-scopes", action="store_true", help="every scope of the sweep, not only the first: "
                    "3 input sets × 3 scopes make the 9 groups of differing noise of a quick sweep")
    ap.add_argument("--folders", nargs="+", metavar="DIR", help="an A/A set of real results folders of one sweep")
    ap.add_argument("--simulate", type=int, metavar="N", help="N seeded quick-shaped A/A pairs")
    ap.add_argument("--noise", default="3,12,6", help="--simulate: run noise per input set, percent")
    ap.add_argument("--threshold", type=float, default=5.0)
    ap.add_argument("--alpha", type=float, default=0.05)
    a = ap.parse_args()
    if a.folders:
        if len(a.folders) < 2:
            raise SystemExit("--folders needs two results folders or more")
        return folders([Path(d) for d in a.folders], a.threshold, a.alpha)
    if a.simulate:
        return simulate(a.simulate, [float(x) / 100 for x in a.noise.split(",")])
    cells, dataset = cells_of(Path(a.sweep), [s for s in a.sets.split(",") if s], a.all_scopes)
    if not cells:
        raise SystemExit(f"{a.sweep}: no paper-setup cell for input sets {a.sets}")
    prepare(cells, dataset)
    t0 = time.perf_counter()
    got: dict[str, list[pd.DataFrame]] = {}
    hosts: dict[tuple, CellHost] = {}
    try:
        for g in range(a.groups):   # interleaved, so a slow drift of the machine hits every set alike
            for c in cells:
                key = f"{c.input_set.name} @ {c.scope}" if a.all_scopes else c.input_set.name
                got.setdefault(key, []).append(run_cell(c, dataset, hosts).assign(group=g))
    finally:
        for host in hosts.values():
            host.close()
    runs = max(c.run for c in cells) + 1
    print(f"{a.sweep}: {cells[0].warmup_steps} warm-up + {cells[0].steps} timed steps per cell, {runs} run(s) per "
          f"group as the sweep has them, {a.groups} independent groups per input set, "
          f"{time.perf_counter() - t0:.0f} s")
    if a.save:
        Path(a.save).write_text(json.dumps({n: [r.to_dict("records") for r in rs] for n, rs in got.items()}))
    report({n: pd.concat(rs) for n, rs in got.items()}, a.name, runs)
    if runs > 1:
        family_rate({n: pd.concat(rs) for n, rs in got.items()}, a.name, a.threshold, a.alpha)


def family_rate(got: dict[str, pd.DataFrame], name: str, threshold: float, alpha: float) -> None:
    """The gate's family-wise false-alarm rate: every pair of independent groups is one A/A
    comparison of all input sets (× scopes) at once, Holm over them, as ``compare`` tests."""
    groups = sorted(set.intersection(*(set(t["group"]) for t in got.values())))
    fails, n = 0, 0
    for i, j in itertools.combinations(groups, 2):
        cs = []
        for t in got.values():
            spread = run_spread(t[~t["group"].isin((i, j))], ["group"], name)
            iv = ratio_interval(t[t["group"] == i], t[t["group"] == j], name, spread)
            if iv.contrast is not None:
                cs.append(iv.contrast)
        n += 1
        fails += any(v.verdict == SLOWER for v in verdicts(cs, threshold / 100, alpha))
    print(f"family-wise false alarms over {len(got)} groups of differing noise (pairs of independent groups that "
          f"the gate would fail): {rate_text(fails, n)}")


def _pairs(t: pd.DataFrame, name: str, known: bool) -> list:
    """Every pair of groups compared; ``known``: with the pooled run-to-run spread of the
    other groups (as the report does with a sweep's other groups), else each on its own."""
    groups = sorted(t["group"].unique())
    out = []
    for i, j in itertools.combinations(groups, 2):
        rest = t[~t["group"].isin((i, j))]
        spread = run_spread(rest, ["group"], name) if known else None
        out.append(ratio_interval(t[t["group"] == i], t[t["group"] == j], name, spread))
    return out


def report(got: dict[str, pd.DataFrame], name: str, runs: int) -> None:
    """The sweep's own intervals (run-to-run spread pooled over groups when it has several
    runs; else one run's), and for contrast one-run intervals between single run-0 cells."""
    ways = {f"the sweep's intervals ({runs} run{'s' if runs > 1 else ''} per group)": runs > 1,
            "one run, nothing else known (run 0 cells alone)": False}
    total = {w: [0, 0] for w in ways}
    for iset, t in got.items():
        timed = t[~t["warmup"]]
        per_cell = timed.groupby(["group", "run"]).apply(lambda d: figure(d, name), include_groups=False)
        cv = per_cell.groupby(level="run").std().mean() / per_cell.mean()
        fps = timed.groupby("run")["batch_fingerprint"].nunique()
        print(f"  {iset}: {name} per cell {per_cell.min():.4g}–{per_cell.max():.4g} (CV within a run's cells "
              f"{cv:.1%}); same batches in every cell of a run: {bool((fps == fps.iloc[0]).all())}")
        for way, known in ways.items():
            rows = t if way.startswith("the sweep") else t[t["run"] == 0]
            found = _pairs(rows, name, known)
            n = sum(not iv.includes_one for iv in found)
            total[way][0] += n
            total[way][1] += len(found)
            print(f"    {way}: median interval {pd.Series([iv.high / iv.low for iv in found]).median():.3f}× wide; "
                  f"{n} of {len(found)} pairs claim a difference")
    for way, (claims, pairs) in total.items():
        print(f"A/A false-positive rate, {way}: {claims} of {pairs} pairs = {claims / pairs:.1%}"
              + (" (must be at most about 5 %)" if way.startswith("the sweep") else ""))


if __name__ == "__main__":
    main()

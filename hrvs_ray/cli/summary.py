"""What the command line prints: the plan's tables and a sweep's closing summary."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def _print_plan(table: dict[str, dict]) -> None:
    width = max(10, *(len(n) for n in table))
    head = (f"{'input set':<{width}} {'batch':>5}  {'informative MP':>20}  {'padding MP':>20}  "
            f"{'total MP':>20}  {'padding':>7}  {'shapes':>6}")
    print(head)
    print("-" * len(head))
    for name, e in table.items():
        cols = "  ".join(f"{_mp(e[k]['min'])}/{_mp(e[k]['avg'])}/{_mp(e[k]['max'])}"
                         for k in ("informative", "padding", "total"))
        print(f"{name:<{width}} {e['batch_size']:>5}  {cols}  {e['padding_share']:>7.1%}  {e['distinct_shapes']:>6}")
    print("(min/avg/max per optimizer step; padding = Σ padding ÷ Σ total pixels over the planned steps; shapes = "
          "distinct pass shapes, batch x H x W, over all passes: one kernel-cache entry each)")
    print("\nplanned main memory per training step, GB (avg/max):")
    for name, e in table.items():
        cells = ", ".join(f"{m['precision']}/{m['memory_format']}/{m['checkpointing']}"
                          + (f"/compile-{m['compile']} not predicted" if m.get("compile") else
                             f" {m['gb']['avg']:.2f}/{m['gb']['max']:.2f}") for m in e["memory"])
        print(f"  {name:<{width}} {cells}")
    if any(m.get("compile") for e in table.values() for m in e["memory"]):
        print("  (compiled settings: the memory model knows eager steps only; compiling adds the compiler's own "
              "memory at every (re)compile, measured per step, not predicted. A static graph is compiled once "
              "per distinct pass shape (the shapes column), up to the recompile limit.)")
    _print_sampled_vs_epoch(table, width)


def _print_data_parallel(splits: list[dict], root: str, placements: dict[str, dict]) -> None:
    """The sweep's data-parallel scopes: the pixel side of each split (``plan.table.split_table``)
    and how each scope maps on this machine (or the snapshot at ``root``), rank by rank."""
    from ..node.node_info import placement_text

    print("\ndata-parallel steps, pixel side per split (same planned steps; imbalance = largest rank's padded px "
          "÷ the ranks' mean, per step, averaged; largest rank = Σ over the steps of its padded MP; "
          "vs shard = shard's Σ ÷ this split's):")
    width = max(10, *(len(r["input_set"]) for r in splits))
    print(f"  {'input set':<{width}} {'batching':<10} {'ranks':>5}  {'split':<8} {'imbalance':>9}  "
          f"{'largest rank MP':>15}  {'vs shard':>8}")
    for r in splits:
        print(f"  {r['input_set']:<{width}} {r['batching']:<10} {r['ranks']:>5}  {r['split']:<8} "
              f"{r['imbalance']:>9.2f}  {r['largest_rank_mp']:>15.2f}  {r['vs_shard']:>7.2f}x")
    print(f"\ndata-parallel scopes on {'this machine' if root == '/' else root} (one node; each rank gets what "
          "a single-rank cell of its scope gets, ranks never share a core):")
    for scope, p in placements.items():
        if "unavailable" in p:
            print(f"  {scope}: unavailable here: {p['unavailable']}")
            continue
        print(f"  {scope}: {placement_text(p)}")
        for rank in p["ranks"]:
            print(f"    rank {rank['rank']} ({rank['scope']}): {placement_text(rank)}")


def _print_sampled_vs_epoch(table: dict[str, dict], width: int) -> None:
    """What the sweep's timed steps stand for: padding and label diversity over them and
    over one full epoch (plan.epoch)."""
    print("\nsampled steps vs a full epoch: padding % (Σ padding ÷ Σ total) and classes per batch "
          "(distinct mean/min, largest class share mean/max)")
    print(f"{'input set':<{width}} {'sampled':>16}  {'padding':>7}  {'classes':>10}  {'top class':>9}   "
          f"{'epoch':>14}  {'padding':>7}  {'classes':>10}  {'top class':>9}")
    for name, e in table.items():
        cols = []
        for view in ("sampled", "epoch"):
            v, lab = e[view], e[view]["labels"]
            what = (f"{v['steps']} steps, {v['runs']} run{'s' if v['runs'] != 1 else ''}" if view == "sampled"
                    else f"{v['steps']} steps" + (f", w{v['window']}" if v.get("window") else ""))
            cols.append(f"{what:>16}  {v['padding_share']:>7.1%}  "
                        f"{lab['mean_classes']:>5.1f}/{lab['min_classes']:<4.0f}"
                        f"  {lab['mean_top_share']:>4.0%}/{lab['max_top_share']:<4.0%}")
        print(f"{name:<{width}} " + "   ".join(cols))


def _mp(v: float) -> str:
    # small input sets (smoke, quick) must not print as 0.0
    return f"{v:6.1f}" if v >= 10 else f"{v:6.3g}"


def print_summary(out: Path) -> None:
    """s/MP and s/informative-MP per cluster, scope, input set and remedy: Σ seconds ÷ Σ
    megapixels over the timed steps (hrvs_ray.metrics.group_figures), as the report shows, and
    the counted GFLOP/s as a share of the scope's measured ceiling."""
    from ..metrics import GROUP_KEYS, derive, gflops, group_figures, timed
    from ..metrics.flags import ceiling_note, ceiling_notes, other_cpu_note, steal_note, step_ceilings
    from ..scopes import scope_key
    from ..store import read_results

    res = read_results(out)
    d = timed(derive(res.steps.to_pandas()))
    if d.empty:
        print("no timed steps recorded")
        return
    nodes = res.nodes.to_pandas()
    d["ceiling"] = step_ceilings(d, nodes)
    d["pct_ceiling"] = 100 * d["gflops"] / d["ceiling"]
    keys = GROUP_KEYS
    f = group_figures(d, keys)
    pct = _pct_of_ceiling(d, keys)
    rates = {tuple(k): gflops(g) for k, g in d.groupby(keys)}
    rows = [[*(str(r[k]) for k in keys), str(int(r["steps"])), f"{r['s_per_mp']:.3f}",
             f"{r['s_per_informative_mp']:.3f}", f"{r['peak_rss_bytes'] / 1e9:.2f}",
             _gflops_text(rates.get(tuple(r[k] for k in keys))), pct.get(tuple(r[k] for k in keys), "n/a")]
            for _, r in sorted(f.iterrows(), key=lambda ir: (ir[1][keys[0]], scope_key(ir[1][keys[1]]),
                                                            *(ir[1][k] for k in keys[2:])))]
    head = ["cluster", "scope", "input set", "remedy"][:len(keys)] + ["steps", "s/MP", "s/inf-MP", "peak GB",
                                                                      "GFLOP/s", "% ceiling"]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    print()
    for r in [head] + rows:
        print("  ".join(v.ljust(w) if i < len(keys) else v.rjust(w)
                        for i, (v, w) in enumerate(zip(r, widths, strict=True))))
    print("(Σ seconds ÷ Σ megapixels over the timed steps of all runs, warm-up excluded, as in the report; "
          "peak GB = largest per-step peak RSS; GFLOP/s = Σ counted FLOPs ÷ Σ seconds; % ceiling = that over "
          "the scope's measured ceiling)")
    for note in (ceiling_note(d["pct_ceiling"]), steal_note(d), other_cpu_note(d), *ceiling_notes(nodes)):
        if note:
            print(f"warning: {note}")


def _gflops_text(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{v:.1f}"


def _pct_of_ceiling(d: Any, keys: list[str]) -> dict[tuple, str]:
    """Per group: its GFLOP/s (ratio of sums) as a share of its measured ceiling; '!' above 105 %."""
    from ..metrics.flags import CEILING_LIMIT
    out = {}
    for key, g in d.groupby(keys):
        v = 100 * g["flops"].sum() / 1e9 / g["seconds"].sum() / g["ceiling"].mean()
        out[tuple(key)] = "n/a" if v != v else f"{v:.0f}%" + ("!" if v > 100 * CEILING_LIMIT else "")
    return out

"""Split policies: which of one optimizer step's images each data-parallel rank trains.

Pure: no numpy needed, no torch, no ray. Every rank count trains the same global batch (the
1-rank cell's step); the policy only decides who trains what, and how it is padded:

- ``shard`` (default): dealt in order as torch's ``DistributedSampler`` deals them: position
  i goes to rank ``i % ranks``. Each rank pads its images to its own largest h and w.
- ``balanced``: image counts equal ±1, dealt to make the largest rank's padded pixels small,
  since padded pixels are the work and the slowest rank sets the step's pace. Each rank pads
  to its own largest h and w.
- ``uniform``: the positions of ``shard``, but every rank pads to the step's largest h and w:
  equal work per image slot, the most padding.

A rank's padded pixels = its image count × its largest h × its largest w (each rounded up to
a multiple of ``shape_round`` px when that is > 0; under ``uniform`` the step's largest).

``balanced``'s algorithm (deterministic: a pure function of the shapes, ties by position):

1. Starting points. (a) For each of three orders of the positions -- by (h, w) descending,
   by (w, h) descending, by area descending, ties by position -- cut the order into
   ``ranks`` contiguous runs (run k to rank k), so similar shapes share a rank. The runs'
   sizes are ``n // ranks``, and the last ``n % ranks`` runs (the smallest images) take one
   more. (b) ``shard``'s own deal. Contiguous runs keep the total padding low, but the
   run of the largest images is often the worst rank: step 2 then spreads the largest
   images over the ranks (two large and two small images on 2 ranks end one large image
   each), which is what lowers the slowest rank.
2. Improvement, from each starting point: find the worst rank (largest padded pixels, the
   lowest rank on a tie). Among every swap of one of its images with one image of another
   rank, and every move of one of its images to a rank holding one image fewer (counts
   stay equal ±1), take the one whose two ranks end with the smallest larger value (then
   the smallest sum, then the lowest rank and positions), provided that value is below the
   worst rank's. Repeat until no swap or move qualifies. Each accepted step lowers the
   worst rank and leaves the other rank below the old worst, so the ranks' values, sorted
   in descending order, fall lexicographically: the search ends.
3. The result with the smallest largest-rank value wins (then the smallest total, then the
   first starting point in the order above). Because ``shard``'s deal is a starting point
   and a step never raises the largest value, ``balanced`` never leaves its largest rank
   more padded pixels than ``shard`` does; where ``shard`` (improved) is best it is used.

It is a local search, not an exact optimum (the exact problem is a partition problem); on
steps small enough to enumerate, ``tests/plan/test_rank_split.py`` measures how close.

A step with fewer images than ranks leaves some ranks without images (as torch's
sampler would with ``drop_last``-free short batches): their list is empty, their padded
pixels 0 and their pass shape (0, 0).

Loss scale: each rank's loss is multiplied by its share ``n_r / n`` (``rank_shares``); with
DDP's gradient average over ``ranks`` the executor multiplies by ``ranks`` too, so unequal
counts give the gradient one rank would compute on the whole batch.

Composing with the batching policies (grouping first, then the split): the split works on
the images of one optimizer step as ``plan.policies`` grouped them (``pad``'s slice,
``bucket``'s regrouped batch, ``accumulate``'s batch). Under ``accumulate`` each rank
accumulates its own share, in its step order, in micro-batches of ``micro_batch`` images,
each padded to its own largest image (``uniform``: to the step's largest); the split itself
is decided on whole shares, as above. ``rank_padded_px(..., micro_batch=k)`` counts that.
"""
from __future__ import annotations

from collections.abc import Sequence

from .padding import round_up

SPLITS = ("shard", "balanced", "uniform")


def _check(shapes: Sequence[tuple[int, int]], ranks: int, policy: str) -> None:
    if policy not in SPLITS:
        raise ValueError(f"unknown split {policy!r}: one of {', '.join(SPLITS)}")
    if ranks < 1:
        raise ValueError(f"ranks must be >= 1, got {ranks}")


def _shard(n: int, ranks: int) -> list[list[int]]:
    return [list(range(r, n, ranks)) for r in range(ranks)]


def _padded(hs: list[int], ws: list[int], count: int, shape_round: int) -> int:
    if count == 0:
        return 0
    return count * round_up(max(hs), shape_round) * round_up(max(ws), shape_round)


def _improve(shapes: Sequence[tuple[int, int]], start: list[list[int]], shape_round: int) -> list[list[int]]:
    """Step 2 of the module's algorithm: swaps and moves out of the worst rank while they lower it."""
    groups = [sorted(g) for g in start]
    h = [s[0] for s in shapes]
    w = [s[1] for s in shapes]

    def value(g: list[int]) -> int:
        return _padded([h[i] for i in g], [w[i] for i in g], len(g), shape_round)

    def without(g: list[int], i: int) -> tuple[int, int]:
        """(largest h, largest w) of g without position i (0 when empty)."""
        rest = [x for x in g if x != i]
        return (max((h[x] for x in rest), default=0), max((w[x] for x in rest), default=0))

    while True:
        vals = [value(g) for g in groups]
        worst = max(range(len(groups)), key=lambda r: (vals[r], -r))
        top = vals[worst]
        if top == 0:
            return groups
        gw = groups[worst]
        rest_w = {i: without(gw, i) for i in gw}
        best: tuple | None = None
        for o, go in enumerate(groups):
            if o == worst:
                continue
            rest_o = {j: without(go, j) for j in go}
            ho = max((h[j] for j in go), default=0)
            wo = max((w[j] for j in go), default=0)
            for i in gw:
                hw_, ww_ = rest_w[i]
                if len(gw) > len(go):      # a move keeps counts equal ±1 only from the larger side
                    nw = (len(gw) - 1) * round_up(hw_, shape_round) * round_up(ww_, shape_round) if len(gw) > 1 else 0
                    no = (len(go) + 1) * round_up(max(ho, h[i]), shape_round) * round_up(max(wo, w[i]), shape_round)
                    cand = (max(nw, no), nw + no, o, i, -1)
                    if cand[0] < top and (best is None or cand < best):
                        best = cand
                for j in go:
                    ho_, wo_ = rest_o[j]
                    nw = len(gw) * round_up(max(hw_, h[j]), shape_round) * round_up(max(ww_, w[j]), shape_round)
                    no = len(go) * round_up(max(ho_, h[i]), shape_round) * round_up(max(wo_, w[i]), shape_round)
                    cand = (max(nw, no), nw + no, o, i, j)
                    if cand[0] < top and (best is None or cand < best):
                        best = cand
        if best is None:
            return groups
        _, _, o, i, j = best
        groups[worst] = sorted([x for x in gw if x != i] + ([j] if j >= 0 else []))
        groups[o] = sorted([x for x in groups[o] if x != j] + [i])


def _runs(order: list[int], ranks: int) -> list[list[int]]:
    n = len(order)
    base, extra = divmod(n, ranks)
    sizes = [base + (1 if k >= ranks - extra else 0) for k in range(ranks)]   # the smallest images take the +1
    out, at = [], 0
    for s in sizes:
        out.append(sorted(order[at:at + s]))
        at += s
    return out


def _balanced(shapes: Sequence[tuple[int, int]], ranks: int, shape_round: int) -> list[list[int]]:
    n = len(shapes)
    pos = range(n)
    orders = (sorted(pos, key=lambda i: (-shapes[i][0], -shapes[i][1], i)),
              sorted(pos, key=lambda i: (-shapes[i][1], -shapes[i][0], i)),
              sorted(pos, key=lambda i: (-shapes[i][0] * shapes[i][1], i)))
    starts = [_runs(o, ranks) for o in orders] + [_shard(n, ranks)]
    best: tuple | None = None
    for k, start in enumerate(starts):
        got = _improve(shapes, start, shape_round)
        px = rank_padded_px(shapes, got, "balanced", shape_round)
        key = (max(px, default=0), sum(px), k)
        if best is None or key < best[0]:
            best = (key, got)
    assert best is not None
    return best[1]


def split_step(shapes: Sequence[tuple[int, int]], ranks: int, policy: str,
               shape_round: int = 0) -> list[list[int]]:
    """The positions (into ``shapes``: one optimizer step's images, (h, w) as trained, in the
    step's order) each rank trains, each rank's list in the step's order. Deterministic."""
    _check(shapes, ranks, policy)
    if policy == "balanced" and ranks > 1 and len(shapes) > 1:
        return _balanced(shapes, ranks, shape_round)
    return _shard(len(shapes), ranks)


def _step_hw(shapes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    return (max((h for h, _ in shapes), default=0), max((w for _, w in shapes), default=0))


def pass_shape(shapes: Sequence[tuple[int, int]], assignment: Sequence[Sequence[int]], rank: int, policy: str,
               shape_round: int = 0) -> tuple[int, int]:
    """The padded (H, W) rank ``rank`` trains at: its own largest h and w (``uniform``: the
    step's), rounded up to ``shape_round`` px when > 0; (0, 0) for a rank without images."""
    _check(shapes, len(assignment), policy)
    mine = [shapes[i] for i in assignment[rank]]
    if not mine:
        return (0, 0)
    h, w = _step_hw(shapes) if policy == "uniform" else _step_hw(mine)
    return (round_up(h, shape_round), round_up(w, shape_round))


def rank_padded_px(shapes: Sequence[tuple[int, int]], assignment: Sequence[Sequence[int]], policy: str,
                   shape_round: int = 0, micro_batch: int = 0) -> list[int]:
    """Each rank's pixels as trained, padding included (per channel plane). ``micro_batch`` > 0
    (``accumulate``): the rank trains its share in consecutive micro-batches of that many
    images, each padded to its own largest image (``uniform``: to the step's largest)."""
    _check(shapes, len(assignment), policy)
    step = _step_hw(shapes)
    out = []
    for r, mine in enumerate(assignment):
        if not micro_batch:
            h, w = pass_shape(shapes, assignment, r, policy, shape_round)
            out.append(len(mine) * h * w)
            continue
        total = 0
        for s in range(0, len(mine), micro_batch):
            part = [shapes[i] for i in mine[s:s + micro_batch]]
            h, w = step if policy == "uniform" else _step_hw(part)
            total += len(part) * round_up(h, shape_round) * round_up(w, shape_round)
        out.append(total)
    return out


def rank_shares(assignment: Sequence[Sequence[int]]) -> list[float]:
    """n_r / n for each rank: the factor its loss is scaled by (0 for every rank of an empty step)."""
    n = sum(len(a) for a in assignment)
    return [len(a) / n if n else 0.0 for a in assignment]

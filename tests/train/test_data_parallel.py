"""One data-parallel step's gradients against one process on the whole batch.

Two real processes, a real gloo process group and real DDP; the model has no BatchNorm, so
ranks that see different images still compute exactly what one process would (BatchNorm's
per-rank batch statistics are the one expected difference: tests/cluster/test_ray_train.py
bounds it on the real cell)."""
from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hrvs_ray.train.data_parallel import loss_scale
from hrvs_ray.train.model import train_step

# the global batch: six images of three sizes (already padded per pass below), dealt 4 + 2
SHAPES = [(20, 24), (16, 16), (20, 24), (12, 20), (16, 16), (20, 24)]
RANK_POSITIONS = [[0, 1, 2, 3], [4, 5]]


def _net() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(6, 8, 3, stride=2), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5))


def _batch(positions: list[int], micro: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The images at ``positions``, padded to the step's largest image (the ``uniform``
    split: the same tensors whatever rank holds them), in passes of ``micro`` images."""
    g = torch.Generator().manual_seed(11)
    images = [torch.randn(3, h, w, generator=g) for h, w in SHAPES]
    labels = torch.arange(len(SHAPES)) % 5
    H, W = max(h for h, _ in SHAPES), max(w for _, w in SHAPES)
    out = []
    for s in range(0, len(positions), micro):
        part = positions[s:s + micro]
        x = torch.zeros(len(part), 3, H, W)
        for k, p in enumerate(part):
            h, w = SHAPES[p]
            x[k, :, (H - h) // 2:(H - h) // 2 + h, (W - w) // 2:(W - w) // 2 + w] = images[p]
        out.append((x, labels[part]))
    return out


MICRO = (6, 1)      # one pass per rank; accumulation (one image per pass, DDP's no_sync)


def _rank(rank: int, world: int, init: str, out: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        for micro in MICRO:
            model = _net()
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            opt = torch.optim.SGD(model.parameters(), lr=0.0)   # lr 0: .grad stays what DDP averaged
            mine = RANK_POSITIONS[rank]
            loss = train_step(ddp, opt, _batch(mine, micro), "float32",
                              loss_scale(len(mine), len(SHAPES), world), ddp.no_sync)
            out[rank, micro] = ([p.grad.clone() for p in model.parameters()], float(loss))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks_ran(tmp_path_factory) -> dict:
    """Both ranks' gradients and losses, for each pass size (one process group for all)."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        out = manager.dict()
        init = f"file://{tmp_path_factory.mktemp('dp') / 'rendezvous'}"
        procs = [ctx.Process(target=_rank, args=(r, 2, init, out)) for r in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0, 0]
        return dict(out)


@pytest.mark.slow
@pytest.mark.parametrize("micro", MICRO, ids=["one-pass", "accumulate"])
def test_unequal_ranks_give_the_whole_batch_gradient(ranks_ran, micro):
    got = {r: ranks_ran[r, micro] for r in (0, 1)}
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = train_step(model, opt, _batch(list(range(len(SHAPES))), micro), "float32")
    want = [p.grad for p in model.parameters()]
    for r in (0, 1):          # DDP leaves the same averaged gradient on every rank
        for a, b in zip(got[r][0], want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the global batch's mean loss is the share-weighted sum of the ranks' own mean losses
    shares = [len(p) / len(SHAPES) for p in RANK_POSITIONS]
    assert sum(s * got[r][1] for r, s in enumerate(shares)) == pytest.approx(float(loss), rel=1e-5)
    # unequal counts matter: the unscaled average of the two ranks' gradients is not the batch's
    assert abs(got[0][1] - got[1][1]) > 1e-4


def test_loss_scale_sums_to_the_rank_count():
    """Shares times ranks: DDP's division by the rank count leaves the shares, which sum to 1."""
    counts = [3, 1, 2]
    assert sum(loss_scale(c, 6, 3) for c in counts) == pytest.approx(3.0)
    assert loss_scale(2, 4, 2) == 1.0

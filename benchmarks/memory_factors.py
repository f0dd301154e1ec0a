"""Per-pixel memory factors of the remedies, measured: the constants of hrvs_ray.plan.memory_model.

    python -m benchmarks.memory_factors [--shape 8,3,512,640] [--steps 2] [--repeats 3] [--quick]

Each setting (precision × memory format × checkpointing) runs in a fresh process: ResNet18 +
Adam, the same random batch, ``--steps`` training steps; the peak RSS over the steps minus
the RSS before the first one, less gradients and Adam state (3 × the weights), is the
per-pixel part: activations, workspaces and the allocator's retained heap. (One later
step's own growth is no good here: the heap kept from the step before hides most of it.)
Prints, per setting, growth in bytes per pixel and the factor against fp32 + contiguous +
no checkpointing (the ratio the memory model multiplies the paper's 430 B/px by), and
growth per pixel of the ``accumulate`` policy's largest pass is that of a batch of its size.
Each repeat runs all eight settings anew.
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from typing import Any

from benchmarks.harness import REPO, Benchmark, main

CHILD = r"""
import json, sys, torch
from hrvs_ray.config import ModelSpec, NetworkSpec, OptimizerSpec
from hrvs_ray.probes import memory
from hrvs_ray.train.model import build_model, build_optimizer, train_step
prec, fmt, ckpt, shape, steps = (sys.argv[1], sys.argv[2], sys.argv[3], tuple(map(int, sys.argv[4].split(","))),
                                  int(sys.argv[5]))
torch.set_num_threads(2)
model = build_model(NetworkSpec(), 0, ckpt, fmt); model.train()
opt = build_optimizer(OptimizerSpec(), model)
g = torch.Generator().manual_seed(0)
x = torch.randn(*shape, generator=g)
if fmt == "channels_last":
    x = x.contiguous(memory_format=torch.channels_last)
y = torch.zeros(shape[0], dtype=torch.long)
baseline = memory.rss_bytes()
memory.reset_peak_rss()
for _ in range(steps):
    train_step(model, opt, [(x, y)], prec)
peak = max(memory.peak_rss_bytes(), memory.rss_bytes())
# gradients and Adam's two moments are allocated by the first step: not per-pixel costs
state = 3 * sum(p.numel() * p.element_size() for p in model.parameters())
print(json.dumps({"growth": peak - baseline - state}))
"""


def measure(prec: str, fmt: str, ckpt: str, shape: str, steps: int) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, prec, fmt, ckpt, shape, str(steps)],
                         capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])["growth"]


SETTINGS = list(itertools.product(("float32", "bfloat16"), ("contiguous", "channels_last"), ("none", "stages")))


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--shape", default="8,3,512,640")
    ap.add_argument("--steps", type=int, default=2)


def once(args: argparse.Namespace, _ctx: Any) -> dict[str, float]:
    n, _, h, w = map(int, args.shape.split(","))
    px = n * h * w
    got: dict[str, float] = {}
    base = None
    for prec, fmt, ckpt in SETTINGS:
        g = measure(prec, fmt, ckpt, args.shape, args.steps)
        base = base or g
        got[f"{prec} {fmt} {ckpt} B/px"] = g / px
        got[f"{prec} {fmt} {ckpt} factor"] = g / base if base else float("nan")
    return got


def info(args: argparse.Namespace, _ctx: Any) -> dict[str, Any]:
    n, _, h, w = map(int, args.shape.split(","))
    return {"batch": args.shape, "megapixels": n * h * w / 1e6,
            "what": f"peak over {args.steps} steps above the pre-step RSS, less 3x the weights; fresh process each"}


BENCH = Benchmark("memory_factors", __doc__.splitlines()[0], once, add_arguments=add_arguments,
                  quick={"shape": "2,3,128,160", "steps": 1}, info=info,
                  units={f"{p} {f} {c} {k}": u for p, f, c in SETTINGS for k, u in (("B/px", "B/px"), ("factor", "x"))})

if __name__ == "__main__":
    sys.exit(main(BENCH))

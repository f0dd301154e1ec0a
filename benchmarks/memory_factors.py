"""Per-pixel memory factors of the remedies, measured: the constants of hrvs_ray.plan.memory_model.

    python benchmarks/memory_factors.py [--shape 4,3,512,640] [--steps 3]

Each setting (precision × memory format × checkpointing) runs in a fresh process: ResNet18 +
Adam, the same random batch, ``--steps`` training steps; the peak RSS over the steps minus
the RSS before the first one, less gradients and Adam state (3 × the weights), is the
per-pixel part: activations, workspaces and the allocator's retained heap. (One later
step's own growth is no good here: the heap kept from the step before hides most of it.)
Prints, per setting, growth in bytes per pixel and the factor against fp32 + contiguous +
no checkpointing (the ratio the memory model multiplies the paper's 430 B/px by), and
growth per pixel of the ``accumulate`` policy's largest pass is that of a batch of its size.
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys

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
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["growth"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="8,3,512,640")
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()
    n, _, h, w = map(int, args.shape.split(","))
    px = n * h * w
    base = None
    print(f"batch {args.shape} = {px / 1e6:.2f} MP; "
          f"peak over {args.steps} steps above the pre-step RSS, fresh process each")
    for prec, fmt, ckpt in itertools.product(("float32", "bfloat16"), ("contiguous", "channels_last"),
                                             ("none", "stages")):
        g = measure(prec, fmt, ckpt, args.shape, args.steps)
        base = base or g
        print(f"{prec:<9} {fmt:<13} {ckpt:<6} {g / 1e6:8.1f} MB  {g / px:6.1f} B/px  factor {g / base:5.2f}")


if __name__ == "__main__":
    main()

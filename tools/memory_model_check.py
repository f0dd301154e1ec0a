"""Does the memory model calibrated on one sweep predict another sweep's peaks on this machine?

    python -m tools.memory_model_check [--keep DIR]

Runs two sweeps on the quick synthetic dataset, one run, node scope, with *different* batch
sizes: A (MR&VS 16, HR&VS 4, LR&FS 128 at 64x64) and B (MR&VS 8, HR&VS 2, LR&FS 48 at 96x96).
Fits the model on A's timed steps (``memory_fit.json``, as the driver stores it), predicts
every timed step of B from its pass pixels, and prints the in-sample error on A, the
out-of-sample error on B (median and worst |predicted - measured| / measured of the step's
peak RSS), and the built-in model's error on B for comparison.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from hrvs_ray.metrics import timed
from hrvs_ray.plan.memory_calibration import load_calibration
from hrvs_ray.plan.memory_model import estimate_step_bytes
from hrvs_ray.remedy_axes import Remedy
from hrvs_ray.store import read_results

SWEEP = """name: {name}
dataset: {{kind: synthetic, path: {repo}/data/synthetic-quick, subset: train,
          synthetic: {{count: 300, scale: 0.1, seed: 0, quality: 90}}, cache: {repo}/.hrvs-cache}}
input_sets:
  LR&FS: {{resize: fixed, size: [{lr}, {lr}], batch_size: {lrb}}}
  MR&VS: {{resize: shorter_side, size: 100, batch_size: {mrb}}}
  HR&VS: {{resize: none, batch_size: {hrb}}}
training: {{warmup_steps: 1, steps: 4, runs: 1, seed: {seed}}}
scopes: [node]
"""


def sweep(tmp: Path, name: str, **kw) -> Path:
    repo = Path(__file__).resolve().parents[1]
    p = tmp / f"{name}.yaml"
    p.write_text(SWEEP.format(name=name, repo=repo, **kw))
    out = tmp / name
    r = subprocess.run([sys.executable, "-m", "hrvs_ray.cli", "sweep", str(p), "--out", str(out), "--no-progress",
                        "--no-report"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"sweep {name} failed:\n{r.stdout}\n{r.stderr}")
    return out


def errors(pred: np.ndarray, meas: np.ndarray) -> str:
    e = np.abs(pred - meas) / meas
    return f"median {np.median(e):.1%}, worst {e.max():.1%} over {len(e)} steps"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", help="write the two results folders here instead of a temporary one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(args.keep or t)
        tmp.mkdir(parents=True, exist_ok=True)
        a = sweep(tmp, "calib-a", lr=64, lrb=128, mrb=16, hrb=4, seed=2021)
        b = sweep(tmp, "calib-b", lr=96, lrb=48, mrb=8, hrb=2, seed=7)
        cal = load_calibration(a)
        for key, f in cal.fits.items():
            print(f"fit on A {key}: {f.base_bytes / 1e9:.3f} GB + {f.bytes_per_pixel:.0f} B/px "
                  f"({f.slope_from}, {f.steps} steps)")
        for name, folder in (("A (in-sample)", a), ("B (out-of-sample)", b)):
            s = timed(read_results(folder).steps.to_pandas())
            meas = s["peak_rss_bytes"].to_numpy(dtype=float)
            pred = np.array([cal.predict(int(px), Remedy()) for px in s["pass_px"]], dtype=float)
            print(f"calibrated, {name}: {errors(pred, meas)}")
            by = s.assign(pred=pred).groupby("input_set").agg(measured=("peak_rss_bytes", "max"),
                                                              predicted=("pred", "max"))
            for iset, r in by.iterrows():
                print(f"    {iset}: measured peak {r.measured / 1e9:.2f} GB, predicted {r.predicted / 1e9:.2f} GB")
        builtin = np.array([estimate_step_bytes(int(px)) for px in s["pass_px"]], dtype=float)
        print(f"built-in model, B: {errors(builtin, meas)}")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# GPU check for the remedies (issue 10): one short script for a lent GPU machine.
#   bash benchmarks/gpu_check.sh [PYTHON]
# 1. a smoke sweep on model.device: cuda with every remedy (3 batching × 2 precisions ×
#    2 memory formats × 2 checkpointing = 24 cells on MR&VS + HR&VS, tiny synthetic data);
# 2. the same sweep again into a second folder: fingerprints and losses must repeat;
# 3. device_peak_bytes filled on every step; bf16 vs fp32 time and device-memory ratios.
# Prints one summary block; exit 0 only if every check holds.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

"$py" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device; nothing to check")
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY

cat >"$work/gpu.yaml" <<YAML
name: gpu-check
dataset:
  kind: synthetic
  path: $work/ds
  subset: train
  synthetic: {count: 120, scale: 0.1, seed: 0, quality: 90}
  cache: $work/cache
input_sets:
  MR&VS: {resize: shorter_side, size: 100, batch_size: 16}
  HR&VS: {resize: none, batch_size: 4}
model: {arch: resnet18, num_classes: 29, device: cuda}
training: {warmup_steps: 1, steps: 3, runs: 1, seed: 2021}
scopes: [node]
remedies:
  batching: [pad, bucket, accumulate]
  precision: [float32, bfloat16]
  memory_format: [contiguous, channels_last]
  checkpointing: [none, stages]
  window: 4
  micro_batch: 1
execution: {exclusive: true, cell_timeout_s: 600, retries: 0}
YAML

for out in a b; do
  "$py" -m hrvs_ray.cli sweep "$work/gpu.yaml" --out "$work/$out" --no-progress --no-report \
    >"$work/$out.log" 2>&1 || { tail -40 "$work/$out.log"; exit 1; }
done

"$py" - "$work" <<'PY'
import sys
from hrvs_ray.metrics import derive, group_figures, timed
from hrvs_ray.store import read_results
work = sys.argv[1]
a, b = (read_results(f"{work}/{x}") for x in "ab")
ca = a.cells.to_pandas()
bad = ca[ca["status"] != "ok"]
sa, sb = (derive(r.steps.to_pandas()).sort_values(["cell_id", "step"]).reset_index(drop=True) for r in (a, b))
same_fp = (sa["batch_fingerprint"] == sb["batch_fingerprint"]).all()
same_loss = (sa["loss"].map(float.hex) == sb["loss"].map(float.hex))
peak_ok = sa["device_peak_bytes"].notna().all() and (sa["device_peak_bytes"] > 0).all()
t = timed(sa)
def figs(keys):  # the one statistic (Σ s ÷ Σ MP) and the largest device peak per group
    f = group_figures(t, keys).set_index(keys)
    return f.assign(s=f["s_per_informative_mp"], mem=t.groupby(keys)["device_peak_bytes"].max())
g = figs(["input_set", "precision"])
print(f"cells ok: {int((ca['status'] == 'ok').sum())}/{len(ca)}")
for _, r in bad.iterrows():
    print("  FAILED", r["cell_id"], (r["error"] or "").splitlines()[0])
print(f"fingerprints identical on repeat: {same_fp}")
print(f"losses bitwise identical on repeat: {int(same_loss.sum())}/{len(same_loss)} steps")
nondet = sorted(set(sa.loc[~same_loss, "remedy"]))
if nondet:
    print("  not bitwise repeatable:", ", ".join(nondet))
print(f"device_peak_bytes on every step: {peak_ok}")
for iset in sorted(set(t["input_set"])):
    f32, bf16 = g.loc[(iset, "float32")], g.loc[(iset, "bfloat16")]
    print(f"{iset}: bf16/fp32 s per informative MP {bf16.s / f32.s:.2f}x, device peak {bf16.mem / f32.mem:.2f}x")
print("per remedy (Σ s ÷ Σ informative MP over timed steps, max device peak GB):")
for (iset, rem), r in figs(["input_set", "remedy"]).iterrows():
    print(f"  {iset:<6} {rem:<22} {r.s:.4f} s/inf-MP  {r.mem / 1e9:.2f} GB")
sys.exit(0 if bad.empty and same_fp and peak_ok else 1)
PY

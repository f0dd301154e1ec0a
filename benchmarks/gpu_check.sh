#!/usr/bin/env bash
# GPU check for the remedies (issue 10): one short script for a lent GPU machine.
#   bash benchmarks/gpu_check.sh [PYTHON]
# 1. a smoke sweep on model.device: cuda with every remedy (3 batching × 2 precisions ×
#    2 memory formats × 2 checkpointing = 24 cells on MR&VS + HR&VS, tiny synthetic data);
# 2. the same sweep again into a second folder: fingerprints and losses must repeat;
# 3. device_peak_bytes filled on every step; bf16 vs fp32 time and device-memory ratios;
# 4. the GPU side of issue 17: cudnn.benchmark autotunes every new input shape. ResNet18 +
#    Adam over 30 distinct shapes, then the same shapes again, with benchmark off / on, and
#    with the shapes rounded up to multiples of 32 px (shape_round), each in a fresh process
#    (the autotuner's cache is per process): time of first-seen vs repeated shapes and peak
#    device memory (allocated and reserved). The sweep's cells always run benchmark off.
# 5. torch.compile on CUDA (issue 27): eager and dynamic on MR&VS, cold compiler caches, the
#    report's Compiling figures printed (steady-state ratio to eager with its interval,
#    compile seconds, compiles per distinct pass shape, break-even images) and its answer.
# 0. First of all `hrvs-ray node-info`: a lent host may expose the hardware counters (PMU) that
#    the development VMs lack, and the node description says what the tool sees there.
# Prints one summary block; exit 0 only if every check holds. Order: 0, 4, 5, then 1-3 (the
# longest last, so a lent machine's time limit cuts the least).
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

echo "node-info (what hrvs-ray sees on this host: topology, scopes, counters):"
"$py" -m hrvs_ray.cli node-info 2>&1 | sed -u "s/^/  /" || echo "  node-info failed"

# The autotune part first: it is short and needs nothing but torch, so its answer comes back
# even if the sweeps outrun the time a lent machine gives.
SECONDS=0
cat >"$work/autotune.py" <<'PY'
import json, sys, time
import torch, torchvision
bench, rnd = sys.argv[1] == "on", int(sys.argv[2])
torch.backends.cudnn.benchmark = bench
torch.manual_seed(0)
model = torchvision.models.resnet18(num_classes=29).cuda()
opt = torch.optim.Adam(model.parameters())
up = lambda v: -(-v // rnd) * rnd if rnd else v
shapes = [(up(160 + 7 * i), up(200 + 11 * i)) for i in range(30)]   # 30 distinct before rounding

def step(h, w):
    x = torch.randn(4, 3, h, w, device="cuda")
    y = torch.zeros(4, dtype=torch.long, device="cuda")
    torch.cuda.synchronize()
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    torch.cuda.synchronize()
    return time.perf_counter() - t

step(96, 96)                      # CUDA context, cuBLAS handles, Adam state: not the shapes' cost
torch.cuda.reset_peak_memory_stats()
first = [step(h, w) for h, w in shapes]
again = [step(h, w) for h, w in shapes]
print(json.dumps({"distinct": len(set(shapes)), "first_s": sum(first), "again_s": sum(again),
                  "alloc_gb": torch.cuda.max_memory_allocated() / 1e9,
                  "reserved_gb": torch.cuda.max_memory_reserved() / 1e9}))
PY

tune_rc=0
echo "cudnn.benchmark per new shape (ResNet18 + Adam, batch 4, 30 shapes, then the same 30 again):"
for rnd in 0 32; do
  for bench in off on; do
    line=$("$py" "$work/autotune.py" "$bench" "$rnd" 2>"$work/tune.err" | tail -1) || {
      tune_rc=1; tail -5 "$work/tune.err"; continue; }
    "$py" - "$bench" "$rnd" "$line" <<'PY'
import json, sys
bench, rnd, r = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
print(f"  benchmark {bench:<3} shape_round {rnd or 'none':<4} {r['distinct']:>2} distinct shapes: "
      f"first pass {r['first_s']:.2f} s, repeat {r['again_s']:.2f} s ({r['first_s'] / r['again_s']:.1f}x), "
      f"peak device memory {r['alloc_gb']:.2f} GB allocated / {r['reserved_gb']:.2f} GB reserved")
PY
  done
done
echo "autotune part: ${SECONDS} s"

# Both GPU sweeps train on the same tiny synthetic set (generated once, by the first).
dataset="dataset:
  kind: synthetic
  path: $work/ds
  subset: train
  synthetic: {count: 120, scale: 0.1, seed: 0, quality: 90}
  cache: $work/cache"

# torch.compile on CUDA: eager and dynamic on MR&VS, each compiled cell with a cold cache of
# its own; 1 warm-up + 2 timed steps (3 pass shapes), then the timed batches replayed.
SECONDS=0
compile_rc=0
cat >"$work/compile.yaml" <<YAML
name: gpu-compile
$dataset
input_sets:
  MR&VS: {resize: shorter_side, size: 100, batch_size: 16}
model: {arch: resnet18, num_classes: 29, device: cuda}
training: {warmup_steps: 1, steps: 2, runs: 1, seed: 2021}
scopes: [node]
remedies:
  compile: [eager, dynamic]
  compile_cache: cold
execution: {exclusive: true, cell_timeout_s: 600, retries: 0}
YAML
set +e
"$py" -m hrvs_ray.cli sweep "$work/compile.yaml" --out "$work/compile" --no-progress --no-report 2>&1 |
  sed -u "s/^/  [compile] /"
compile_rc=${PIPESTATUS[0]}
set -e
if (( compile_rc == 0 )); then
  "$py" - "$work/compile" <<'PY' || compile_rc=$?
import sys
from pathlib import Path
from hrvs_ray.report import compile_section, epoch
from hrvs_ray.report.load import load
m = load([Path(sys.argv[1])])
views, _ = epoch.plan_views(m)
t = compile_section.table(m, views)
print("torch.compile on CUDA, MR&VS (the report's Compiling figures):")
print("  " + " | ".join(t.columns))
for row in t.rows:
    print("  " + " | ".join(str(getattr(v, "text", v)) for v in row))
for a in compile_section.answers(t):
    print("  answer:", a)
PY
fi
echo "compile part: exit $compile_rc after ${SECONDS} s"

SECONDS=0
cat >"$work/gpu.yaml" <<YAML
name: gpu-check
$dataset
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

# The sweeps' own output goes to the screen as it comes (prefixed): on a lent machine's time
# limit, a silent sweep tells nothing about where it stood (the first lent run ended so).
for out in a b; do
  t0=$SECONDS
  set +e
  "$py" -m hrvs_ray.cli sweep "$work/gpu.yaml" --out "$work/$out" --no-progress --no-report 2>&1 |
    sed -u "s/^/  [sweep $out] /"
  rc=${PIPESTATUS[0]}
  set -e
  echo "sweep $out: exit $rc after $((SECONDS - t0)) s"
  (( rc == 0 )) || exit 1
done

sweep_rc=0
"$py" - "$work" <<'PY' || sweep_rc=$?
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

echo "sweep part (two sweeps + checks): ${SECONDS} s"
exit $(( sweep_rc || tune_rc || compile_rc ))

#!/usr/bin/env bash
# Every GPU measurement of the speed issue in one script, sized to finish within 8 minutes on a
# fresh accelerator machine, setup included (accelerator time comes in 15-minute allowances:
# room for one rerun): the gpu-vitb I-JEPA step (jepax with XLA attention, then cuDNN flash
# attention on 16-padded token counts; PyTorch eager and torch.compile), compile time and
# recompiles, and the compile-time-vs-depth comparison of model.scan_layers.
#
# Setup: a Python that has jax (CUDA), flax, optax and torch, as the lent machines' image
# does; the project's other needs on this path travel as wheels in .whl/ (download them where
# pip works with `bash benchmarks/gpu_wheels.sh`) and are installed here without the network.
# Elsewhere: pip install -e .[bench,cuda13] first.
#
# Each measurement prints its JSON line as soon as it finishes, under its own time limit (a
# timed-out or failed one prints a "failed" line instead), into ${OUT:-benchmarks/results}/
# gpu.jsonl, so a run cut short still returns what it measured.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
  $py -m pip install -q --no-index --no-deps --no-compile --target /tmp/jepax_site .whl/*.whl \
    || exit 1
  export PYTHONPATH="$PYTHONPATH:/tmp/jepax_site"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"

measure() {  # measure SECONDS COMMAND...: its JSON lines, or one line saying it failed
  local limit=$1; shift
  timeout "$limit" "$@"
  local rc=$?
  [ $rc -eq 0 ] || echo "{\"failed\": \"$*\", \"exit\": $rc, \"limit_s\": $limit}"
}
{
  $py -m benchmarks.table --machine
  measure 150 $py -m benchmarks.ijepa_step --preset=gpu-vitb --rounds=5 --steps=10 --warmup=5
  measure 90 $py -m benchmarks.ijepa_step --preset=gpu-vitb --rounds=5 --steps=10 --warmup=5 \
      --attention=cudnn --pad-multiple=16 --no-torch-compile
  measure 60 $py -m benchmarks.compile --preset=gpu-vitb --attention=cudnn --pad-multiple=16
  measure 120 $py -m benchmarks.scan_compile --sizes=B,H --step-time=0
} 2> "$out/gpu.stderr" | tee "$out/gpu.jsonl"
$py -m benchmarks.table --results "$out"/*.jsonl --into=benchmarks/README.md

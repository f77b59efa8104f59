#!/usr/bin/env bash
# Every GPU measurement of the speed issue in one script (about 6-8 minutes on one H100):
# the gpu-vitb I-JEPA step (jepax with XLA attention and with cuDNN flash attention on
# 16-padded token counts; PyTorch eager and torch.compile), compile time / recompiles, and the
# cpu-tiny step for reference. JSON lines go to stdout and to ${OUT:-benchmarks/results}/gpu.jsonl.
# Needs: pip install -e .[bench,cuda13]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
py=${PYTHON:-python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
{
  $py -m benchmarks.table --machine
  $py -m benchmarks.ijepa_step --preset=gpu-vitb --rounds=5 --steps=10 --warmup=5
  $py -m benchmarks.ijepa_step --preset=gpu-vitb --rounds=5 --steps=10 --warmup=5 \
      --attention=cudnn --pad-multiple=16 --no-torch-compile
  $py -m benchmarks.compile --preset=gpu-vitb --attention=cudnn --pad-multiple=16
} 2> "$out/gpu.stderr" | tee "$out/gpu.jsonl"
$py -m benchmarks.table --results "$out"/*.jsonl --into=benchmarks/README.md

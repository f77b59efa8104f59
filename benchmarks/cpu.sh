#!/usr/bin/env bash
# Every CPU measurement in one script (about 20 minutes on 2 idle cores): the
# cpu-tiny step against PyTorch eager, stage by stage and op by op, time to first step / recompiles, the data pipeline,
# and the on-paper memory plan for large ViTs (checked against XLA's memory analysis).
# JSON lines go to ${OUT:-benchmarks/results}/cpu.jsonl and the table in benchmarks/README.md
# is regenerated from them. Needs: pip install -e .[bench]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
py=${PYTHON:-python}
{
  $py -m benchmarks.table --machine
  $py -m benchmarks.ijepa_step --preset=cpu-tiny --rounds=6 --steps=3
  $py -m benchmarks.ijepa_step --preset=cpu-tiny --rounds=6 --steps=3 --cpu-devices=auto
  $py -m benchmarks.ijepa_parts --preset=cpu-tiny
  $py -m benchmarks.profile_step --preset=cpu-tiny
  $py -m benchmarks.compile --preset=cpu-tiny --repeats=3
  $py -m benchmarks.scan_compile --sizes=S,B,L,H --step-time=6
  $py -m benchmarks.data_pipeline
  $py -m benchmarks.gemm
  $py -m benchmarks.memory_plan --check
  $py -m benchmarks.variants --run-steps=30 --config=experiments/ijepa.py \
      --config=experiments/s_jepa.py --config=experiments/t_jepa.py \
      --config=experiments/brain_jepa.py --config=experiments/a_jepa.py \
      --config=experiments/point_jepa.py --config=experiments/jepa3d.py \
      --config=experiments/mc_jepa.py --config=experiments/ti_jepa.py:random_encoders \
      --config=experiments/ui_jepa.py \
      --config=experiments/act_jepa.py --config=experiments/text_mlm.py
  $py -m benchmarks.point_tokenizer --config=experiments/point_jepa.py --config=experiments/jepa3d.py
  $py -m benchmarks.sequence_models --config=experiments/copying.py
  $py -m benchmarks.sequence_models --config=experiments/arithmetic.py
} 2> "$out/cpu.stderr" | tee "$out/cpu.jsonl"
$py -m benchmarks.table --results "$out"/*.jsonl --into=benchmarks/README.md

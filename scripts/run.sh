#!/usr/bin/env bash
# One command: install, then pretrain Brain-JEPA on the shipped real fMRI (experiments/brain_jepa.py,
# about 35 minutes on 2 cores) and evaluate it; the downstream table and plot land in
# runs/brain_jepa/results/. Extra arguments go to jepax.main, e.g.
#   bash scripts/run.sh --config=experiments/ijepa.py          # I-JEPA on Fashion-MNIST
#   bash scripts/run.sh --config=experiments/brain_jepa.py:tiny --workdir=runs/brain_jepa_tiny
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh fmri
config=experiments/brain_jepa.py
workdir=""
rest=()
for arg in "$@"; do
  case "$arg" in
    --config=*) config="${arg#--config=}" ;;
    --workdir=*) workdir="${arg#--workdir=}"; rest+=("$arg") ;;
    *) rest+=("$arg") ;;
  esac
done
.venv/bin/python -m jepax.main --config="$config" ${rest[@]+"${rest[@]}"}
if [[ "$config" == experiments/brain_jepa.py* ]]; then
  .venv/bin/python scripts/record_brain_jepa.py --workdir="${workdir:-runs/brain_jepa}"
fi

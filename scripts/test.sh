#!/usr/bin/env bash
# One command: install (with test extras), then run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k masks
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh test,bench,eeg,tables,notebook,docs,fmri,audio,points,flow,image_text,robotics,ui
# braindecode is the PyTorch reference for S-JEPA parity tests only. Without --no-deps pip would
# replace the CPU torch to satisfy its torchaudio pin (tests/braindecode_reference.py explains).
.venv/bin/python -m pip install -q --no-deps braindecode==1.8.1
.venv/bin/python -m pip install -q einops==0.8.2 skorch==1.4.0 mne-bids==0.20.0 torchinfo==1.8.0 \
  wfdb==4.3.1 pydantic==2.14.4 docstring_inheritance==3.0.0 linear_attention_transformer==0.19.1
# kaldi-native-fbank (the C++ Kaldi port) is the reference A-JEPA's log-Mel features are tested against.
.venv/bin/python -m pip install -q kaldi-native-fbank==1.22.4
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$status"

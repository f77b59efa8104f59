#!/usr/bin/env bash
# One command: install (with test extras), then run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k masks
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh test,bench,points
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$status"

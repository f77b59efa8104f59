#!/usr/bin/env bash
# Downloads, where pip works, the wheels benchmarks/gpu.sh installs on an accelerator machine
# that cannot fetch anything but already has jax (CUDA), flax, optax and torch: the project's
# other needs on the benchmarks' import path (pure Python). They go to .whl/ (git-ignored);
# send that folder along with the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl "ml_collections==1.1.0"
ls .whl

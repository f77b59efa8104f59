"""jepax: Joint-Embedding Predictive Architectures in JAX/Flax, sharded on any device mesh."""

import sys as _sys

if _sys.argv[:1] == ["-m"] and "jepax.main" in getattr(_sys, "orig_argv", ()):
    # `python -m jepax.main` is being located: from here on SIGTERM/SIGINT request a clean stop
    # (jepax.preemption), also while the heavy modules below load.
    from jepax import preemption as _preemption

    _preemption.install(command_line=True)

from flax import nnx as _nnx

# Parameters are created abstractly and sharded by jepax's own logical rules
# (jepax.sharding), so Flax must not try to shard them eagerly at construction.
_nnx.use_eager_sharding(False)

__version__ = "0.1.0"

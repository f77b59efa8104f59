"""jepax: Joint-Embedding Predictive Architectures in JAX/Flax, sharded on any device mesh."""

from flax import nnx as _nnx

# Parameters are created abstractly and sharded by jepax's own logical rules
# (jepax.sharding), so Flax must not try to shard them eagerly at construction.
_nnx.use_eager_sharding(False)

__version__ = "0.1.0"

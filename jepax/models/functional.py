"""Flax NNX modules used as pure functions of parameter pytrees.

A module is built once abstractly (``nnx.eval_shape``) to get its graph definition and the
logical sharding names of its parameters; parameters live as plain nested dicts (easy to
checkpoint, shard and feed to optax) and are merged back into the module inside traced code.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from flax import nnx

from jepax import sharding


class Functional:
    def __init__(self, make: Callable[[nnx.Rngs], nnx.Module]):
        self._make = make
        abstract = nnx.eval_shape(lambda: make(nnx.Rngs(0)))
        self.graphdef, self.abstract_state = nnx.split(abstract, nnx.Param)

    def init(self, key: jax.Array) -> dict:
        """Fresh parameters (call under jit with out_shardings to create them sharded)."""
        return nnx.to_pure_dict(nnx.state(self._make(nnx.Rngs(key)), nnx.Param))

    def specs(self, mesh, rules) -> Any:
        """PartitionSpecs of the parameters, as a dict shaped like `init`'s output."""
        return sharding.param_specs(self.abstract_state, mesh, rules)

    def __call__(self, params: dict, *args, **kwargs):
        return nnx.merge(self.graphdef, params)(*args, **kwargs)

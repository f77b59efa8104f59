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


class KeyStream:
    """The part of nnx.Rngs that module constructors use (`rngs.params()`), with the same keys
    (the base key folded with a running count) but the count kept in Python.

    nnx.Rngs stores its count in a Variable; under tracing every update asks the tracer for
    its sharding, and JAX answers with an error message built by walking the whole trace so
    far, which made building the I-JEPA models take ~10 s."""

    def __init__(self, key: jax.Array | int):
        self._key = jax.random.key(key) if isinstance(key, int) else key
        self._count = 0

    def params(self) -> jax.Array:
        key = jax.random.fold_in(self._key, self._count)
        self._count += 1
        return key


class Functional:
    def __init__(self, make: Callable[[KeyStream], nnx.Module]):
        self._make = make
        abstract = nnx.eval_shape(lambda: make(KeyStream(0)))
        self.graphdef, self.abstract_state = nnx.split(abstract, nnx.Param)

    def init(self, key: jax.Array) -> dict:
        """Fresh parameters (call under jit with out_shardings to create them sharded)."""
        return nnx.to_pure_dict(nnx.state(self._make(KeyStream(key)), nnx.Param))

    def specs(self, mesh, rules) -> Any:
        """PartitionSpecs of the parameters, as a dict shaped like `init`'s output."""
        return sharding.param_specs(self.abstract_state, mesh, rules)

    def __call__(self, params: dict, *args, **kwargs):
        return nnx.merge(self.graphdef, params)(*args, **kwargs)

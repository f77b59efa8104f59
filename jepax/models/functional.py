"""Flax NNX modules used as pure functions of parameter pytrees.

A module is built once abstractly (``nnx.eval_shape``) to get its graph definition and the
logical sharding names of its parameters; parameters live as plain nested dicts (easy to
checkpoint, shard and feed to optax) and are merged back into the module inside traced code.
"""

from __future__ import annotations

import collections
from typing import Any, Callable

import jax
import jax.numpy as jnp
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


def draw_deferred(params: nnx.State, key: jax.Array) -> None:
    """Fill the parameters marked `init_std` (layers.deferred_normal) in place: all those of one
    shape and dtype come from one truncated-normal draw (on [-2, 2], scaled by each one's std),
    sliced along a new leading axis, so the sharding of each parameter still propagates."""
    groups = collections.defaultdict(list)
    for _, var in nnx.to_flat_state(params):
        if getattr(var, "init_std", None) is not None:
            groups[(var.shape, jnp.dtype(var.dtype).name)].append(var)
    for i, ((shape, dtype), variables) in enumerate(sorted(groups.items(), key=str)):
        draws = jax.random.truncated_normal(jax.random.fold_in(key, i), -2.0, 2.0,
                                            (len(variables), *shape), dtype)
        for draw, var in zip(draws, variables):
            std = var.init_std
            if isinstance(std, tuple):  # stacked layers (layer_stack): one std per layer
                std = jnp.asarray(std, dtype).reshape((-1,) + (1,) * (len(shape) - 1))
            var.set_value(draw * jnp.asarray(std, dtype))


class Functional:
    def __init__(self, make: Callable[[KeyStream], nnx.Module]):
        self._make = make
        abstract = nnx.eval_shape(lambda: make(KeyStream(0)))
        self.graphdef, self.abstract_state = nnx.split(abstract, nnx.Param)

    def init(self, key: jax.Array) -> dict:
        """Fresh parameters (call under jit with out_shardings to create them sharded)."""
        construct_key, draw_key = jax.random.split(key)
        params = nnx.state(self._make(KeyStream(construct_key)), nnx.Param)
        draw_deferred(params, draw_key)
        return nnx.to_pure_dict(params)

    def specs(self, mesh, rules) -> Any:
        """PartitionSpecs of the parameters, as a dict shaped like `init`'s output."""
        return sharding.param_specs(self.abstract_state, mesh, rules)

    def __call__(self, params: dict, *args, **kwargs):
        return nnx.merge(self.graphdef, params)(*args, **kwargs)

    def method(self, name: str, params: dict, *args, **kwargs):
        """Another method of the module: `method('last_layers', params, x, 4)`."""
        return getattr(nnx.merge(self.graphdef, params), name)(*args, **kwargs)

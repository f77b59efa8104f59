"""The train state pytree and its sharded creation."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P


@flax.struct.dataclass
class TrainState:
    step: jax.Array          # int32 scalar: optimizer updates done
    params: Any              # trained parameters (e.g. {'encoder', 'predictor'})
    opt_state: Any
    target: Any              # EMA target parameters; None for variants without one
    rng: jax.Array           # base key; step keys are fold_in(rng, step)


def _init_fn(variant, tx, seed: int, param_dtype="float32"):
    def init():
        key = jax.random.PRNGKey(seed)
        params_key, rng = jax.random.split(key)
        params = variant.init_params(params_key)
        source = variant.ema_source(params)
        target = None if source is None else jax.tree.map(jnp.copy, source)
        # optimizer moments and the EMA target stay float32 whatever the parameters' dtype
        opt_state = tx.init(params)
        params = jax.tree.map(lambda p: p.astype(param_dtype), params)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=opt_state, target=target, rng=rng)
    return init


def state_shardings(variant, tx, mesh, rules, seed: int = 0,
                    param_dtype="float32") -> TrainState:
    """NamedShardings for every leaf: parameters by the logical rules, optimizer moments like
    their parameters, everything else replicated."""
    abstract = jax.eval_shape(_init_fn(variant, tx, seed, param_dtype))
    to_named = lambda spec: NamedSharding(mesh, spec)
    param_sh = jax.tree.map(to_named, variant.param_specs(mesh, rules),
                            is_leaf=lambda x: isinstance(x, P))
    replicated = NamedSharding(mesh, P())
    # MaskedNode: a parameter the optimizer keeps no state for (optim's frozen parameters)
    masked = lambda x: isinstance(x, optax.MaskedNode)
    opt_sh = optax.tree_map_params(tx, lambda v, s: v if masked(v) else s, abstract.opt_state,
                                   param_sh, transform_non_params=lambda _: replicated,
                                   is_leaf=masked)
    return TrainState(step=replicated, params=param_sh, opt_state=opt_sh,
                      target=variant.ema_source(param_sh), rng=replicated)


def abstract_state(variant, tx, shardings: TrainState, seed: int = 0,
                   param_dtype="float32") -> TrainState:
    """ShapeDtypeStructs carrying the target shardings (for restore and AOT compilation)."""
    abstract = jax.eval_shape(_init_fn(variant, tx, seed, param_dtype))
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract, shardings)


# Initialization runs once: optimizing its code is not worth the compile time (about 4x faster
# to compile on CPU; the values agree to float rounding).
CHEAP_COMPILE = {"xla_backend_optimization_level": 0}


def lower_create(variant, tx, shardings: TrainState, seed: int, param_dtype="float32"):
    """The state initializer, traced and lowered (compile with CHEAP_COMPILE, then call it)."""
    return jax.jit(_init_fn(variant, tx, seed, param_dtype), out_shardings=shardings).lower()


def create(variant, tx, shardings: TrainState, seed: int, param_dtype="float32") -> TrainState:
    """Initialize directly into the shardings: no device ever holds the whole state."""
    return lower_create(variant, tx, shardings, seed, param_dtype).compile(
        compiler_options=CHEAP_COMPILE)()

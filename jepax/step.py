"""Pure train and eval steps: (state, batch) -> (state, metrics), jit-compiled with shardings."""

from __future__ import annotations

import concurrent.futures

import jax
import jax.numpy as jnp
import optax

from jepax.optim import Schedules
from jepax.state import TrainState


def make_train_step(variant, tx: optax.GradientTransformation, sched: Schedules):
    def train_step(state: TrainState, batch):
        rng = jax.random.fold_in(state.rng, state.step)
        (loss, aux), grads = jax.value_and_grad(variant.loss, has_aux=True)(
            state.params, state.target, batch, rng)
        # The optimizer works in float32 whatever the stored dtype (optim.param_dtype): with
        # float32 parameters these casts are no-ops; bfloat16 ones are updated in float32 and
        # rounded back.
        f32 = lambda tree: jax.tree.map(lambda x: x.astype(jnp.float32), tree)
        grads, master = f32(grads), f32(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, master)
        params = jax.tree.map(lambda old, new: new.astype(old.dtype), state.params,
                              optax.apply_updates(master, updates))
        grad_norm = optax.tree.norm(grads)
        metrics = {
            "loss": loss,
            "grad_norm": grad_norm,
            "finite": jnp.isfinite(loss) & jnp.isfinite(grad_norm),
            "lr": sched.lr(state.step),
            "weight_decay": sched.weight_decay(state.step),
            **aux,
        }
        target = state.target
        if target is not None:  # variants without an EMA target keep None
            momentum = sched.ema(state.step)
            target = jax.tree.map(lambda t, p: momentum * t + (1.0 - momentum) * p,
                                  target, variant.ema_source(params))
            metrics["ema"] = momentum
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                                  target=target)
        return new_state, metrics

    return train_step


def lower_train_step(train_step, abstract_state: TrainState, abstract_batch, metrics_sharding):
    """Trace and lower with explicit shardings and a donated state. Its compiled executable
    refuses inputs of other shapes, so a run can never silently recompile."""
    shardings = jax.tree.map(lambda a: a.sharding, abstract_state)
    batch_sh = jax.tree.map(lambda a: a.sharding, abstract_batch)
    jitted = jax.jit(train_step, in_shardings=(shardings, batch_sh),
                     out_shardings=(shardings, metrics_sharding), donate_argnums=0)
    return jitted.lower(abstract_state, abstract_batch)


def step_compile_options() -> dict:
    """On CPU the heavy ops are library calls (YNNPACK matmuls), so LLVM's expensive
    optimization passes cost ~15% of the step's compile time and buy no measurable speed."""
    return {"xla_llvm_disable_expensive_passes": True} if jax.default_backend() == "cpu" else {}


def compile_concurrently(*jobs):
    """Compile (lowered, compiler_options) pairs at the same time and return the executables in
    order. XLA compiles without holding the GIL, so on a multi-core host the train step and the
    state initializer compile side by side instead of one after the other."""
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(lowered.compile, compiler_options=options)
                   for lowered, options in jobs]
        return [f.result() for f in futures]


"""Schedules at given steps and AdamW weight-decay exclusion."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jepax.optim import decay_mask, optimizer, schedules
from tests.helpers import small_ijepa


def make(steps=1000, warmup=100, **optim):
    c = small_ijepa()
    c.optim.update(warmup_steps=warmup, **optim)
    return c.optim, schedules(c.optim, steps)


def test_lr_warmup_then_cosine():
    o, s = make(lr=1e-3, start_lr=2e-4, final_lr=1e-6)
    np.testing.assert_allclose(s.lr(0), 2e-4, rtol=1e-6)
    np.testing.assert_allclose(s.lr(50), 2e-4 + 0.5 * (1e-3 - 2e-4), rtol=1e-5)
    np.testing.assert_allclose(s.lr(100), 1e-3, rtol=1e-6)
    # halfway through the cosine part: mean of peak and final
    np.testing.assert_allclose(s.lr(550), (1e-3 + 1e-6) / 2, rtol=1e-4)
    np.testing.assert_allclose(s.lr(1000), 1e-6, rtol=1e-4)
    assert s.lr(300) > s.lr(600) > s.lr(900)


def test_weight_decay_cosine_increases():
    _, s = make(weight_decay=0.04, final_weight_decay=0.4)
    np.testing.assert_allclose(s.weight_decay(0), 0.04, rtol=1e-6)
    np.testing.assert_allclose(s.weight_decay(500), 0.22, rtol=1e-5)
    np.testing.assert_allclose(s.weight_decay(1000), 0.4, rtol=1e-6)
    assert s.weight_decay(250) < s.weight_decay(750)


def test_ema_linear():
    _, s = make(ema=(0.996, 1.0))
    np.testing.assert_allclose([s.ema(0), s.ema(500), s.ema(1000)], [0.996, 0.998, 1.0], rtol=1e-6)


def test_weight_decay_skips_biases_and_vectors():
    o, s = make(lr=0.1, start_lr=0.1, warmup=0, weight_decay=0.5, final_weight_decay=0.5)
    params = {"kernel": jnp.ones((3, 4)), "bias": jnp.ones(4), "scale": jnp.ones(4),
              "token": jnp.ones((1, 4))}
    assert decay_mask(params) == {"kernel": True, "bias": False, "scale": False, "token": True}
    tx = optimizer(o, s)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_allclose(new["bias"], 1.0)
    np.testing.assert_allclose(new["scale"], 1.0)
    np.testing.assert_allclose(new["kernel"], 1.0 - 0.1 * 0.5, rtol=1e-6)  # decoupled: lr * wd
    np.testing.assert_allclose(new["token"], 1.0 - 0.1 * 0.5, rtol=1e-6)



def test_grad_clip_value_clamps_each_gradient_element_before_adamw():
    common = dict(lr=0.1, start_lr=0.1, warmup=0, weight_decay=0.0, final_weight_decay=0.0)
    o_clip, s = make(grad_clip_value=1.0, **common)
    o_plain, _ = make(**common)
    params = {"w": jnp.zeros((2, 2))}
    grads = [{"w": jnp.array([[3.0, -5.0], [0.5, -0.2]])}, {"w": jnp.array([[0.2, 0.3], [0.5, 0.1]])}]

    def run(o, gradient_steps):
        tx = optimizer(o, s)
        p, state = params, tx.init(params)
        for g in gradient_steps:
            updates, state = tx.update(g, state, p)
            p = optax.apply_updates(p, updates)
        return p["w"]

    clamped = [jax.tree.map(lambda g: jnp.clip(g, -1.0, 1.0), g) for g in grads]
    np.testing.assert_allclose(run(o_clip, grads), run(o_plain, clamped), rtol=1e-6)
    # Adam's second step depends on the first gradient's size, so the clamp is visible there.
    assert not np.allclose(run(o_clip, grads), run(o_plain, grads))


def test_frozen_parameters_are_never_changed_and_get_no_moments_while_the_rest_trains():
    o, s = make(lr=0.1, start_lr=0.1, warmup=0, weight_decay=0.5, final_weight_decay=0.5)
    params = {"pretrained": {"kernel": jnp.ones((3, 4)), "bias": jnp.ones(4)},
              "head": {"kernel": jnp.ones((3, 4))}}
    tx = optimizer(o, s, frozen=("pretrained",))
    grads = jax.tree.map(lambda p: jnp.full_like(p, 2.0), params)  # nonzero, as if not stopped
    p, state = params, tx.init(params)
    for _ in range(2):
        updates, state = tx.update(grads, state, p)
        p = optax.apply_updates(p, updates)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(p["pretrained"]),
                                                     jax.tree.leaves(params["pretrained"])))
    assert not np.allclose(p["head"]["kernel"], 1.0)
    # Adam keeps its two moments for the trained parameters only
    moment_sizes = sorted(a.size for a in jax.tree.leaves(state) if np.ndim(a) > 0)
    assert moment_sizes == [12, 12]


def test_bfloat16_parameters_train_with_float32_moments_and_target(tmp_path):
    from jepax import train
    from jepax.variants.ijepa import IJEPA
    from tests.helpers import init_params, losses, saved_params

    config = small_ijepa(model__dtype="bfloat16", optim__param_dtype="bfloat16", train__steps=3)
    train.run(config, tmp_path)
    last = saved_params(tmp_path)
    kernel = last["params"]["encoder"]["transformer"]["blocks"]["0"]["mlp"]["fc1"]["kernel"]
    start = init_params(IJEPA(config))["encoder"]["transformer"]["blocks"][0]["mlp"]["fc1"]["kernel"]
    assert kernel.dtype == jnp.bfloat16
    assert not np.array_equal(kernel, np.asarray(start.astype(jnp.bfloat16)))  # it trained
    assert {a.dtype for a in jax.tree.leaves(last["target"])} == {np.dtype("float32")}
    moments = [a for a in jax.tree.leaves(last["opt_state"]) if np.ndim(a) > 0]
    assert moments and {a.dtype for a in moments} == {np.dtype("float32")}
    assert all(np.isfinite(losses(tmp_path)))

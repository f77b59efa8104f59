"""The trained side of the deep linear study: networks, losses, full-batch gradient descent.

Encoder ``Wbar = W_L ... W_1`` (depth L, hidden width h >= d), a linear head V.
JEPA: ``1/2 E|V Wbar x - sg(Wbar_T y)|^2`` with the target encoder Wbar_T the online one under
stop-gradient (``model.ema = 0``) or an EMA copy. MAE: ``1/2 E|V Wbar x - y|^2``. Full-batch
gradient descent on the N pairs; the squared losses depend on the data only through the second
moments, so the loss is evaluated from them (the same gradients, O(h^2) per step instead of
O(N h^2)). Balanced small initialization (the paper's): ``W_1 = s B_1``,
``W_l = s B_l B_{l-1}^T``, JEPA head ``s B_L B_L^T`` (MAE decoder ``s B_L^T``) with B_l random
h x d orthonormal columns and ``s = init_scale^(1/L)``, so ``W_{l+1}^T W_{l+1} = W_l W_l^T``
(and ``V^T V = W_L W_L^T``) and the encoder starts at ``wbar(0) = eps = init_scale`` along every
feature.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jepax.config import ConfigError
from jepax.studies.deep_linear.theory import OBJECTIVES

def balanced_init(rng: np.random.Generator, d: int, width: int, depth: int, init_scale: float,
                  objective: str) -> dict:
    """Small balanced init: W_{l+1}^T W_{l+1} = W_l W_l^T, head^T head = W_L W_L^T, and the
    encoder product has singular value init_scale along every input feature."""
    s = init_scale ** (1.0 / depth)
    basis = [np.linalg.qr(rng.standard_normal((width, width)))[0][:, :d] for _ in range(depth)]
    enc = [s * basis[0]] + [s * basis[l] @ basis[l - 1].T for l in range(1, depth)]
    head = s * basis[-1] @ basis[-1].T if objective == "jepa" else s * basis[-1].T
    return {"enc": enc, "head": head}


def encode(enc):
    """The end-to-end encoder matrix W_L ... W_1."""
    out = enc[0]
    for w in enc[1:]:
        out = w @ out
    return out


def jepa_loss(params, target_enc, m):
    """1/2 E|V Wbar x - sg(Wbar_T y)|^2 from the moments; no gradient reaches target_enc."""
    pred = params["head"] @ encode(params["enc"])
    target = jax.lax.stop_gradient(encode(target_enc))
    return 0.5 * (jnp.trace(pred @ m["xx"] @ pred.T) - 2 * jnp.trace(pred @ m["yx"].T @ target.T)
                  + jnp.trace(target @ m["yy"] @ target.T))


def mae_loss(params, m):
    """1/2 E|V Wbar x - y|^2 from the moments."""
    pred = params["head"] @ encode(params["enc"])
    return 0.5 * (jnp.trace(pred @ m["xx"] @ pred.T) - 2 * jnp.trace(pred @ m["yx"].T)
                  + jnp.trace(m["yy"]))


def sample_loss(objective, params, target_enc, x, y):
    """The same losses as a mean over sample pairs (to check the moment form against)."""
    pred = x @ (params["head"] @ encode(params["enc"])).T
    goal = y @ encode(target_enc).T if objective == "jepa" else y
    return 0.5 * jnp.mean(jnp.sum((pred - goal) ** 2, axis=1))


def feature_values(wbar):
    """Singular value of the encoder along each input feature: |Wbar e_i| (last axis: features)."""
    return np.linalg.norm(np.asarray(wbar), axis=-2)


def balance_residual(params) -> float:
    """max_l |W_{l+1}^T W_{l+1} - W_l W_l^T| / |W_l W_l^T| over the layer pairs, head included."""
    mats = list(params["enc"]) + [params["head"]]
    worst = 0.0
    for lower, upper in zip(mats[:-1], mats[1:]):
        gram = np.asarray(lower @ lower.T)
        worst = max(worst, float(np.linalg.norm(np.asarray(upper.T @ upper) - gram)
                                 / np.linalg.norm(gram)))
    return worst


def _step(objective, m, lr, ema, carry):
    params, target = carry
    if objective == "jepa":
        grads = jax.grad(jepa_loss)(params, target, m)
    else:
        grads = jax.grad(mae_loss)(params, m)
    params = jax.tree.map(lambda p, g: p - lr * g, params, grads)
    if objective == "jepa":  # EMA target (ema = 0: the online encoder, under stop-gradient)
        target = jax.tree.map(lambda t, p: ema * t + (1 - ema) * p, target, params["enc"])
    return params, target


@partial(jax.jit, static_argnames=("objective", "records"))
def _train(params, target, m, lr, ema, inner, objective, records):
    # A scan over records of a fori_loop over `inner` steps: one compile per shape and objective,
    # whatever the step count and learning rate.
    def chunk(carry, _):
        carry = jax.lax.fori_loop(0, inner, lambda i, c: _step(objective, m, lr, ema, c), carry)
        return carry, encode(carry[0]["enc"])

    (params, target), curve = jax.lax.scan(chunk, (params, target), None, length=records)
    return params, target, curve


def train(objective: str, params: dict, m: dict, lr: float, steps: int, records: int,
          ema: float = 0.0):
    """Full-batch gradient descent; returns (params, times (records,), encoder matrices
    (records, h, d)) recorded every steps / records steps.

    Runs in float64: at depth 5 a step changes a weight by ~1e-7 of its value, below float32's
    resolution."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective={objective!r}: use 'jepa' or 'mae'")
    inner = max(1, steps // records)
    with jax.enable_x64(True):
        as64 = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)
        params, m = as64(params), as64(m)
        params, _, curve = _train(params, params["enc"], m, jnp.float64(lr), jnp.float64(ema),
                                  inner, objective, records)
        curve = np.asarray(curve)
        params = jax.tree.map(np.asarray, params)
    times = lr * inner * np.arange(1, records + 1)
    return params, times, curve


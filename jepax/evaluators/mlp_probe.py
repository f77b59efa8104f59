"""MLP and ResNet-style MLP trained on frozen outputs (T-JEPA's downstream protocol), one fit per
seed, all seeds trained at once (vmapped) in one compiled program.

* ``mlp_probe``: [linear -> ReLU -> dropout] x depth -> linear;
* ``resnet_probe``: the tabular ResNet of Gorishniy et al. (2021): linear to ``width``, then
  ``depth`` blocks x + dropout(linear(dropout(ReLU(linear(norm(x)))))) with a hidden layer of
  2 x width, then norm -> ReLU -> linear. LayerNorm stands in for BatchNorm (no running
  statistics to carry), the one change from the paper's block.

Inputs are standardized with the training rows' mean and std. AdamW with a cosine learning rate
over a fixed number of epochs, no early stopping (the released code stops on a validation split
that is its test split). Cross-entropy for classes, squared error for regression targets.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jepax.evaluators.base import check
from jepax.evaluators.supervised import SupervisedProbe


class MLPProbe(SupervisedProbe):
    DEFAULTS = {**SupervisedProbe.DEFAULTS, "width": 128, "depth": 2, "dropout": 0.1,
                "epochs": 10, "batch_size": 256, "lr": 1e-3, "weight_decay": 1e-4}
    arch = "mlp"

    def __init__(self, name, config_block):
        super().__init__(name, config_block)
        check(name, config_block, positive=("width", "depth", "epochs", "batch_size", "lr"),
              nonnegative=("dropout", "weight_decay"))

    def fit_predict(self, train_x, train_y, test_x, classify):
        b = self.block
        train_x, test_x = np.asarray(train_x, np.float32), np.asarray(test_x, np.float32)
        mean, std = train_x.mean(0), train_x.std(0) + 1e-6
        xtr, xte = (train_x - mean) / std, (test_x - mean) / std
        outputs = int(train_y.max()) + 1 if classify else 1
        batch = min(b["batch_size"], len(xtr))
        steps = b["epochs"] * (len(xtr) // batch)
        order = np.stack([_batches(np.random.default_rng(s), len(xtr), batch, b["epochs"])
                          for s in range(b["seeds"])])
        keys = jax.random.split(jax.random.key(0), b["seeds"])
        out = _train_and_predict(keys, jnp.asarray(order), jnp.asarray(xtr), jnp.asarray(train_y),
                                 jnp.asarray(xte), float(b["lr"]), float(b["weight_decay"]),
                                 arch=self.arch, width=b["width"], depth=b["depth"],
                                 dropout=float(b["dropout"]), outputs=outputs, steps=steps,
                                 classify=classify)
        out = np.asarray(out)
        return list(out.argmax(-1) if classify else out[..., 0])


class ResNetProbe(MLPProbe):
    arch = "resnet"


def _batches(rng, n: int, batch: int, epochs: int) -> np.ndarray:
    """(epochs * n // batch, batch) row indices: a new order each epoch, remainder dropped."""
    per_epoch = n // batch
    return np.concatenate([rng.permutation(n)[:per_epoch * batch].reshape(per_epoch, batch)
                           for _ in range(epochs)]).astype(np.int32)


def _dense(key, d_in, d_out):
    """torch.nn.Linear's init: U(-1/sqrt(d_in), 1/sqrt(d_in)) for weights and biases."""
    k1, k2 = jax.random.split(key)
    bound = d_in ** -0.5
    return {"w": jax.random.uniform(k1, (d_in, d_out), minval=-bound, maxval=bound),
            "b": jax.random.uniform(k2, (d_out,), minval=-bound, maxval=bound)}


def _norm(d):
    return {"scale": jnp.ones(d), "bias": jnp.zeros(d)}


def _init(key, arch, d_in, width, depth, outputs):
    keys = iter(jax.random.split(key, 2 * depth + 2))
    if arch == "mlp":
        return {"layers": [_dense(next(keys), d_in if i == 0 else width, width) for i in range(depth)],
                "head": _dense(next(keys), width, outputs)}
    return {"stem": _dense(next(keys), d_in, width),
            "blocks": [{"norm": _norm(width), "up": _dense(next(keys), width, 2 * width),
                        "down": _dense(next(keys), 2 * width, width)} for _ in range(depth)],
            "norm": _norm(width), "head": _dense(next(keys), width, outputs)}


def _apply(params, x, key, dropout, arch):
    """Logits / predictions; dropout active when `key` is not None."""
    linear = lambda p, h: h @ p["w"] + p["b"]

    def drop(h, i):
        if key is None or dropout == 0:
            return h
        keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1 - dropout, h.shape)
        return jnp.where(keep, h / (1 - dropout), 0.0)

    def norm(p, h):
        mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
        return (h - mu) * jax.lax.rsqrt(var + 1e-5) * p["scale"] + p["bias"]

    if arch == "mlp":
        for i, layer in enumerate(params["layers"]):
            x = drop(jax.nn.relu(linear(layer, x)), i)
        return linear(params["head"], x)
    x = linear(params["stem"], x)
    for i, block in enumerate(params["blocks"]):
        h = drop(jax.nn.relu(linear(block["up"], norm(block["norm"], x))), 2 * i)
        x = x + drop(linear(block["down"], h), 2 * i + 1)
    return linear(params["head"], jax.nn.relu(norm(params["norm"], x)))


@functools.partial(jax.jit, static_argnames=("arch", "width", "depth", "dropout", "outputs",
                                             "steps", "classify"))
def _train_and_predict(keys, order, x, y, test_x, lr, weight_decay, *, arch, width, depth,
                       dropout, outputs, steps, classify):
    """Train one model per key (vmapped over seeds) and predict `test_x` with each."""
    tx = optax.adamw(optax.cosine_decay_schedule(lr, steps), weight_decay=weight_decay)

    def objective(params, xb, yb, key):
        out = _apply(params, xb, key, dropout, arch)
        if classify:
            return optax.softmax_cross_entropy_with_integer_labels(out, yb).mean()
        return jnp.mean((out[:, 0] - yb) ** 2)

    def one_seed(key, batches):
        init_key, key = jax.random.split(key)
        params = _init(init_key, arch, x.shape[1], width, depth, outputs)

        def step(carry, inputs):
            params, state = carry
            i, idx = inputs
            grads = jax.grad(objective)(params, x[idx], y[idx], jax.random.fold_in(key, i))
            updates, state = tx.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, tx.init(params)),
                                      (jnp.arange(steps), batches))
        return _apply(params, test_x, None, dropout, arch)

    return jax.vmap(one_seed)(keys, order)

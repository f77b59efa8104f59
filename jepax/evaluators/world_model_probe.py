"""World-model probe: how well a frozen encoder's outputs predict the future.

A linear map from the standardized frozen outputs to the next K states (``label``, (K, P) per
example) is fitted by Adam on the training split with a squared error over the steps marked
valid (``valid``: (K,) per example; steps past an episode's end are left out of the fit and the
score), then scored on the test split: ``<name>_rmse`` over every valid step and feature (in
the units of the label arrays) and ``<name>_rmse_last`` at the furthest horizon.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jepax.config import ConfigError
from jepax.evaluators.base import FeatureEvaluator, check


class WorldModelProbe(FeatureEvaluator):
    DEFAULTS = {**FeatureEvaluator.DEFAULTS, "label": "future", "valid": "future_valid",
                "steps": 500, "lr": 1e-3, "weight_decay": 1e-4}

    def __init__(self, name, config_block):
        super().__init__(name, config_block)
        check(name, config_block, positive=("steps", "lr"), nonnegative=("weight_decay",))
        self.columns = (f"{name}_rmse",)

    def check_data(self, data):
        used = super().check_data(data)
        for role in ("train", "test"):
            split = self.block[f"{role}_split"]
            if self.block["valid"] not in data.keys(split):
                raise ConfigError(f"evals.{self.name}.valid={self.block['valid']!r}: the {split!r} "
                                  f"examples have no such key (they have "
                                  f"{sorted(data.keys(split))}); set --config.evals.{self.name}.valid")
        return used

    def evaluate(self, row):
        b = self.block
        train = row.data(b["train_split"], b["train_examples"])
        if b["outputs"] not in train:
            return {}
        test = row.data(b["test_split"], b["test_examples"])
        x, xt = (np.asarray(d[b["outputs"]], np.float32).reshape(len(d[b["outputs"]]), -1)
                 for d in (train, test))
        # Features constant on the training split (blank pixels) are centred, not scaled up.
        mean, std = x.mean(0), x.std(0)
        std = np.where(std > 1e-3, std, 1.0)
        w = fit(jnp.asarray((x - mean) / std), jnp.asarray(train[b["label"]], jnp.float32),
                jnp.asarray(train[b["valid"]]), steps=b["steps"], lr=b["lr"],
                weight_decay=b["weight_decay"])
        pred = np.asarray(apply(w, jnp.asarray((xt - mean) / std)))
        err = (pred - test[b["label"]]) ** 2 * test[b["valid"]][..., None]
        count = test[b["valid"]].sum() * err.shape[-1]
        last = test[b["valid"]][:, -1].sum() * err.shape[-1]
        return {f"{self.name}_rmse": float(np.sqrt(err.sum() / count)),
                f"{self.name}_rmse_last": float(np.sqrt(err[:, -1].sum() / max(last, 1)))}


def apply(w, x):
    k, p = w["shape"]
    return (x @ w["kernel"] + w["bias"]).reshape(len(x), k, p)


def fit(x, y, valid, *, steps: int, lr: float, weight_decay: float):
    """Full-batch AdamW on the masked squared error; deterministic."""
    k, p = y.shape[1:]
    params = {"kernel": jnp.zeros((x.shape[1], k * p)), "bias": jnp.zeros(k * p)}
    opt = optax.adamw(lr, weight_decay=weight_decay)
    weights = valid[..., None].astype(jnp.float32)

    def loss(params):
        pred = (x @ params["kernel"] + params["bias"]).reshape(y.shape)
        return (((pred - y) ** 2) * weights).sum() / jnp.maximum(weights.sum() * p, 1.0)

    @jax.jit
    def train(params):
        def one(carry, _):
            params, state = carry
            grads = jax.grad(loss)(params)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None
        return jax.lax.scan(one, (params, opt.init(params)), None, length=steps)[0][0]
    return {**train(params), "shape": (k, p)}

"""Linear probe: multinomial logistic regression on standardized frozen features (L-BFGS)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jepax.evaluators.base import FeatureEvaluator, check


class LinearProbe(FeatureEvaluator):
    """Linear probe on frozen outputs: test accuracy (and train accuracy, to see overfitting).

    Metrics are named after the block: `<name>_acc` (`linear_probe_acc` for the usual block
    name), so several probe blocks (tasks, window lengths) can share one results table."""

    DEFAULTS = {**FeatureEvaluator.DEFAULTS, "steps": 500, "weight_decay": 1e-4}
    columns = ("linear_probe_acc",)

    def __init__(self, name, config_block):
        super().__init__(name, config_block)
        check(name, config_block, positive=("steps",), nonnegative=("weight_decay",))
        self.columns = (f"{name}_acc",)

    def evaluate(self, row):
        data = self.split_data(row)
        if data is None:
            return {}
        res = linear_probe(*data, steps=self.block["steps"],
                           weight_decay=self.block["weight_decay"])
        return {f"{self.name}_train_acc": res["linear_probe_train_acc"],
                f"{self.name}_acc": res["linear_probe_acc"]}


def linear_probe(train_x, train_y, test_x, test_y, *, steps: int = 500,
                 weight_decay: float = 1e-4) -> dict:
    """Test accuracy of a softmax classifier fit to (train_x, train_y) with L2 penalty."""
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    predict = fit_linear_probe(train_x, train_y, steps=steps, weight_decay=weight_decay,
                               num_classes=num_classes)
    acc = lambda x, y: float(np.mean(predict(x) == y))
    return {"linear_probe_train_acc": acc(train_x, train_y), "linear_probe_acc": acc(test_x, test_y)}


def fit_linear_probe(train_x, train_y, *, steps: int = 500, weight_decay: float = 1e-4,
                     num_classes: int | None = None):
    """Fit the probe on standardized features; returns predict(x) -> class ids."""
    probe = fit_probe(train_x, train_y, steps=steps, weight_decay=weight_decay,
                      num_classes=num_classes)
    return lambda x: np.argmax(np.asarray(probe_logits(probe, x)), 1)


def fit_probe(train_x, train_y, *, steps: int = 500, weight_decay: float = 1e-4,
              num_classes: int | None = None) -> dict:
    """The fitted probe: the features' standardization ('mean', 'std') and the softmax
    classifier's 'kernel' and 'bias' (a fine-tuning head can start from it)."""
    train_x = np.asarray(train_x, np.float32)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    num_classes = int(train_y.max()) + 1 if num_classes is None else num_classes
    w = _fit(jnp.asarray((train_x - mean) / std), jnp.asarray(train_y), num_classes, steps,
             weight_decay)
    return {"mean": mean, "std": std, **w}


def probe_logits(probe, x):
    return _logits(probe, jnp.asarray((np.asarray(x, np.float32) - probe["mean"]) / probe["std"]))


def _logits(w, x):
    return x @ w["kernel"] + w["bias"]


@functools.partial(jax.jit, static_argnames=("num_classes", "steps"))
def _fit(x, y, num_classes, steps, weight_decay):
    def objective(w):
        ce = optax.softmax_cross_entropy_with_integer_labels(_logits(w, x), y).mean()
        return ce + 0.5 * weight_decay * jnp.sum(w["kernel"] ** 2)

    w0 = {"kernel": jnp.zeros((x.shape[1], num_classes)), "bias": jnp.zeros(num_classes)}
    return minimize_lbfgs(objective, w0, steps)


def minimize_lbfgs(objective, params, steps: int):
    """`steps` iterations of optax's L-BFGS (zoom line search) on `objective(params)`; traceable
    (jit / vmap it from outside)."""
    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry, _):
        w, state = carry
        value, grad = value_and_grad(w, state=state)
        updates, state = solver.update(grad, state, w, value=value, grad=grad,
                                       value_fn=objective)
        return (optax.apply_updates(w, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, solver.init(params)), length=steps)
    return params

"""Fine-tuning: the evaluated encoder, unfrozen, under a head, trained on a labelled split and
scored on another (the recipe of Brain-JEPA's downstream code, MAE's before it):

* head: the model's average-pooled `features` -> LayerNorm -> Linear (weights N(0, 2e-5),
  zero bias); classes from the labels (classification) or one output (regression, targets
  standardized with the training split's mean and std);
* AdamW (betas 0.9 / 0.999), lr = base_lr * batch_size / 256 on a half-cycle cosine to min_lr
  after warmup, weight decay on matrices only (no decay for biases and norms);
* layer-wise lr decay (BEiT): blocks.i gets layer_decay^(L + 1 - (i + 1)), the tokenizer and
  positions layer_decay^(L + 1), the final norm and head 1 (L = number of blocks). The released
  code names the encoder's parameters 'encoder.blocks...', which its rule (written for
  'blocks...') never matches, so every parameter there gets scale 1: ``official=True`` does
  the same.
Drop-path (0.1 in the released config) is not applied: jepax's blocks have none.

Rows without a model (baselines) are skipped; 'random init' fine-tunes the same architecture
from its random initialization (supervised training from scratch, the same steps and batch: the
same wall time); `scratch_layer_decay` (None: `layer_decay`) sets its layer-wise decay, which
from scratch only slows layers that have nothing to keep. Metrics are named after the block:
`<name>_acc`, or `<name>_r` and `<name>_mse` (MSE in units of the training targets' variance)
for regression, and `<name>_minutes` (the fine-tuning's wall time).
"""

from __future__ import annotations

import re
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

from jepax.config import ConfigError
from jepax.evaluators.base import RANDOM_INIT, check
from jepax.layer_stack import stacked_layers
from jepax.optim import decay_mask
from jepax.sharding import path_key


class FineTune:
    DEFAULTS = {"task": "classification", "label": "label", "train_split": "train",
                "train_examples": 10000, "test_split": "test", "test_examples": 10000,
                "steps": 200, "batch_size": 16, "base_lr": 1e-3, "min_lr": 1e-6,
                "warmup_steps": 0, "weight_decay": 0.05, "layer_decay": 0.75,
                "scratch_layer_decay": None, "official": False, "seed": 0}

    def __init__(self, name, config_block):
        self.name, self.block = name, config_block
        self.every = int(config_block["every"])
        check(name, config_block, positive=("steps", "batch_size", "base_lr", "train_examples",
                                            "test_examples"),
              nonnegative=("every", "min_lr", "warmup_steps", "weight_decay"))
        if config_block["task"] not in ("classification", "regression"):
            raise ConfigError(f"evals.{name}.task={config_block['task']!r}: use 'classification' "
                              "or 'regression'")
        for key in ("layer_decay", "scratch_layer_decay"):
            value = config_block[key]
            if (value is not None or key == "layer_decay") and not 0 < value <= 1:
                raise ConfigError(f"evals.{name}.{key}={value} must be in (0, 1]")
        self.columns = ((f"{name}_acc",) if config_block["task"] == "classification"
                        else (f"{name}_r", f"{name}_mse"))

    def evaluate(self, row):
        if row.params is None:
            return {}
        variant, params = row.variant, row.params
        b = self.block
        train = row.data(b["train_split"], b["train_examples"])
        test = row.data(b["test_split"], b["test_examples"])
        inputs = variant.eval_inputs
        layer_decay = b["layer_decay"]
        if row.name == RANDOM_INIT and b["scratch_layer_decay"] is not None:
            layer_decay = b["scratch_layer_decay"]
        start = time.perf_counter()
        result = fine_tune(variant, _to_host(params),
                           {k: train[k] for k in inputs}, train[b["label"]],
                           {k: test[k] for k in inputs}, test[b["label"]],
                           layer_decay=layer_decay, **{
                               k: b[k] for k in ("task", "steps", "batch_size", "base_lr",
                                                 "min_lr", "warmup_steps", "weight_decay",
                                                 "official", "seed")})
        result["minutes"] = (time.perf_counter() - start) / 60
        return {f"{self.name}_{k}": v for k, v in result.items()}


def _to_host(tree):
    """The evaluated parameters as host arrays (fine-tuning runs on this process's default
    device, whatever the training mesh)."""
    return jax.tree.map(lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True)),
                        tree)


def layer_scales(params, layer_decay: float, official: bool = False):
    """Per-parameter lr multipliers (BEiT's layer-wise decay, by parameter path); blocks stored
    stacked (model.scan_layers) get one multiplier per layer along their leading axis."""
    paths = jax.tree_util.tree_flatten_with_path(params)[0]

    def layers(path, leaf) -> list[int]:
        """The blocks (0-based) a parameter belongs to."""
        if m := re.search(r"blocks/(\d+)/", path_key(path)):
            return [int(m.group(1))]
        return list(range(np.shape(leaf)[0])) if stacked_layers(path) else []

    depth = max((i + 1 for p, leaf in paths for i in layers(p, leaf)), default=0)
    top = depth + 1  # L + 1: final norm and head

    def scale(path, leaf):
        if official:
            return 1.0
        if stacked_layers(path):
            per_layer = np.asarray([layer_decay ** (top - i - 1) for i in layers(path, leaf)],
                                   np.float32)
            return per_layer.reshape((-1,) + (1,) * (np.ndim(leaf) - 1))
        block = layers(path, leaf)
        n = path_key(path)
        layer = block[0] + 1 if block else (0 if n.startswith(("tokenizer", "positions")) else top)
        return float(layer_decay ** (top - layer))

    return jax.tree_util.tree_map_with_path(scale, params)


def _schedule(base_lr, min_lr, warmup, steps):
    def lr(step):
        step = jnp.asarray(step, jnp.float32)
        warm = base_lr * step / jnp.maximum(warmup, 1)
        progress = (step - warmup) / jnp.maximum(steps - warmup, 1)
        cosine = min_lr + (base_lr - min_lr) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        return jnp.where(step < warmup, warm, cosine)
    return lr


def fine_tune(variant, encoder_params, train_inputs, train_y, test_inputs, test_y, *, task,
              steps, batch_size, base_lr, min_lr, warmup_steps, weight_decay, layer_decay,
              official, seed) -> dict:
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    regression = task == "regression"
    if regression:
        y_mean, y_std = float(train_y.mean()), float(train_y.std() + 1e-12)
        fit_y = ((train_y - y_mean) / y_std).astype(np.float32)
        outputs = 1
    else:
        fit_y = train_y.astype(np.int32)
        outputs = int(max(train_y.max(), test_y.max())) + 1
    width = jax.eval_shape(lambda p, x: variant.outputs(p, x)["features"], encoder_params,
                           {k: v[:1] for k, v in train_inputs.items()}).shape[-1]
    rng = np.random.default_rng(seed)
    params = {"encoder": encoder_params,
              "head": {"norm_scale": np.ones(width, np.float32),
                       "norm_bias": np.zeros(width, np.float32),
                       "kernel": (rng.standard_normal((width, outputs)) * 2e-5).astype(np.float32),
                       "bias": np.zeros(outputs, np.float32)}}
    scales = {"encoder": layer_scales(encoder_params, layer_decay, official),
              "head": jax.tree.map(lambda _: 1.0, params["head"])}
    lr = base_lr * batch_size / 256
    # Layer scales multiply AdamW's whole update (lr * (direction + decay)), as torch's
    # per-group lr does.
    tx = optax.adamw(_schedule(lr, min_lr, warmup_steps, steps), b1=0.9, b2=0.999,
                     weight_decay=weight_decay, mask=decay_mask(params))
    opt_state = tx.init(params)

    def predict(p, inputs):
        f = variant.outputs(p["encoder"], inputs)["features"]
        h = p["head"]
        mu, var = f.mean(-1, keepdims=True), f.var(-1, keepdims=True)
        f = (f - mu) * jax.lax.rsqrt(var + 1e-6) * h["norm_scale"] + h["norm_bias"]
        return f @ h["kernel"] + h["bias"]

    def loss_fn(p, inputs, y):
        out = predict(p, inputs)
        if regression:
            return jnp.mean((out[:, 0] - y) ** 2)
        return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()

    @jax.jit
    def step(p, opt_state, inputs, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, inputs, y)
        updates, opt_state = tx.update(grads, opt_state, p)
        updates = jax.tree.map(lambda u, s: u * s, updates, scales)
        return optax.apply_updates(p, updates), opt_state, loss

    n = len(fit_y)
    order = np.array([], np.int64)
    for _ in range(steps):
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(n)])
        idx, order = order[:batch_size], order[batch_size:]
        batch = {k: v[idx] for k, v in train_inputs.items()}
        params, opt_state, _ = step(params, opt_state, batch, fit_y[idx])

    predict_jit = jax.jit(predict)
    preds = []
    m = len(test_y)
    for start in range(0, m, batch_size):
        chunk = {k: v[start:start + batch_size] for k, v in test_inputs.items()}
        pad = batch_size - len(chunk[next(iter(chunk))])
        chunk = {k: np.concatenate([v, np.repeat(v[-1:], pad, 0)]) for k, v in chunk.items()}
        preds.append(np.asarray(predict_jit(params, chunk))[:batch_size - pad])
    out = np.concatenate(preds)
    if regression:
        pred = out[:, 0]
        target = (test_y - y_mean) / y_std
        r = float(np.corrcoef(pred, target)[0, 1]) if pred.std() > 0 else 0.0
        return {"r": r, "mse": float(np.mean((pred - target) ** 2))}
    return {"acc": float(np.mean(out.argmax(-1) == test_y))}

"""Labelled downstream tasks: per task, a linear probe on frozen features and full fine-tuning.

For each name in ``tasks`` the variant's eval source has the splits '<task>_train' and
'<task>_test'; a task whose splits the data lacks is skipped, said once before training (e.g.
the shipped tasks when the user trains on their own folder, or 'folder' when they don't); no
task at all is an error. Columns '<task>_probe_acc' and '<task>_finetune_acc'.

* probe: multinomial logistic regression on standardized frozen features
  (evaluators/linear_probe.py); every row, baselines included (their features, e.g. MFCCs);
* fine-tune (model rows only): the variant's ``fine_tune_init(eval_params, key)`` (the encoder and
  whatever its regularization trains) under a head, AdamW with linear warmup and cosine decay,
  cross-entropy; training batches go through ``variant.fine_tune_features(params, inputs, key)``
  (the variant's input masking), the test set through it with ``key=None``. 'random init'
  fine-tuned this way is supervised training from scratch (``finetune_random_init=False`` skips
  it, e.g. for an ablation run whose random-init row is another run's). ``head``:
  'linear_probe' (default; LP-FT, Kumar et al. 2022): the pooled features standardized per
  dimension (BatchNorm without affine: the batch's statistics in training, the training set's
  under the fine-tuned encoder at test) into a linear layer that starts as the row's fitted
  probe; 'layernorm': MAE's head (LayerNorm + a linear layer initialised N(0, 2e-5)).
  Why: a short fine-tune cannot grow MAE's fresh head on pooled features whose between-example
  spread is a small part of their norm (A-JEPA's spoken digits, random init: norm 9.3, spread
  0.74), and a probe's fixed standardization magnifies every drift of the features as the
  encoder trains or its input is masked. A-JEPA's spoken digits, random init, 150 steps of
  batch 32, regularized masking: 0.24 with MAE's head, 0.25 from the probe with its fixed
  standardization, 0.90 with this head, vs 0.86 for the frozen probe.
"""

from __future__ import annotations

import functools
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

from data_pipelines.errors import DataError
from jepax.config import ConfigError
from jepax.evaluators.base import RANDOM_INIT, check
from jepax.evaluators.linear_probe import fit_probe, probe_logits

log = logging.getLogger("jepax")


class Downstream:
    DEFAULTS = dict(tasks=(), label="label", train_examples=None, test_examples=None,
                    probe_steps=500, probe_weight_decay=1e-4, finetune=True,
                    finetune_random_init=True, finetune_steps=300, head="linear_probe",
                    batch_size=32, lr=5e-4, warmup_steps=30, weight_decay=0.05, seed=0)
    HEADS = ("linear_probe", "layernorm")

    def __init__(self, name, config_block):
        b = self.block = config_block
        self.every = int(b["every"])
        check(name, b, positive=("probe_steps", "finetune_steps", "batch_size", "lr",
                                 "train_examples", "test_examples"),
              nonnegative=("every", "probe_weight_decay", "warmup_steps", "weight_decay"))
        if b["head"] not in self.HEADS:
            raise ConfigError(f"evals.{name}.head={b['head']!r}: use one of {self.HEADS}")
        self._use(tuple(b["tasks"]))

    def _use(self, tasks):
        self.tasks = tasks
        self.columns = tuple(f"{t}_{kind}_acc" for t in tasks
                             for kind in ("probe", "finetune")[:1 + bool(self.block["finetune"])])

    def check_data(self, data):
        """Keep the tasks the evaluation data has (the others are said once); DataError when
        none is left, ConfigError when a task's examples lack the label."""
        available, skipped = [], []
        for task in self.tasks:
            try:
                sizes = [data.size(f"{task}_{part}") for part in ("train", "test")]
            except DataError as e:
                skipped.append(f"{task} ({e})")
                continue
            if min(sizes) == 0:
                skipped.append(f"{task} (an empty split)")
                continue
            if self.block["label"] not in data.keys(f"{task}_train"):
                raise ConfigError(f"downstream task {task!r} has no {self.block['label']!r} key; "
                                  "set this evaluator's label")
            available.append(task)
        if not available:
            raise DataError(f"none of the downstream tasks {list(self.tasks)} is in the data: "
                            + "; ".join(skipped))
        if skipped:
            log.info("downstream tasks skipped: %s", "; ".join(skipped))
        self._use(tuple(available))

    def evaluate(self, row):
        b, out = self.block, {}
        for task in self.tasks:
            train = row.data(f"{task}_train", b["train_examples"])
            test = row.data(f"{task}_test", b["test_examples"])
            probe = None
            if "features" in train:
                classes = int(max(train[b["label"]].max(), test[b["label"]].max())) + 1
                probe = fit_probe(train["features"], train[b["label"]], steps=b["probe_steps"],
                                  weight_decay=b["probe_weight_decay"], num_classes=classes)
                predicted = np.argmax(np.asarray(probe_logits(probe, test["features"])), 1)
                out[f"{task}_probe_acc"] = float(np.mean(predicted == test[b["label"]]))
            if b["finetune"] and row.params is not None and (
                    b["finetune_random_init"] or row.name != RANDOM_INIT):
                if not hasattr(row.variant, "fine_tune_features"):
                    raise ConfigError(f"{type(row.variant).__name__} has no fine_tune_features; "
                                      "set finetune=False in this evaluator's block")
                t0 = time.perf_counter()
                out[f"{task}_finetune_acc"] = fine_tune(row.variant, _to_host(row.params), train,
                                                        test, b, probe)
                log.info("%s %s fine-tuned: acc %.3f (%.0fs)", row.name, task,
                         out[f"{task}_finetune_acc"], time.perf_counter() - t0)
        return out


def _to_host(tree):
    """Fine-tuning runs on this process's default device, whatever the training mesh."""
    return jax.tree.map(lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True)),
                        tree)


def fine_tune(variant, encoder, train, test, b, probe=None) -> float:
    """Test accuracy after fine-tuning `encoder` under a head on `train` (module docstring);
    `probe` (fit_probe's, on this encoder's features) is the 'linear_probe' head's start."""
    label = b["label"]
    classes = int(max(train[label].max(), test[label].max())) + 1
    key = jax.random.key(b["seed"])
    k_init, k_head, k_steps = jax.random.split(key, 3)
    inputs = lambda arrays, idx: {k: arrays[k][idx] for k in variant.eval_inputs}
    model = variant.fine_tune_init(encoder, k_init)
    width = jax.eval_shape(variant.fine_tune_features, model,
                           inputs(train, slice(0, 1))).shape[-1]
    if b["head"] == "layernorm":
        head = {"scale": jnp.ones(width), "bias": jnp.zeros(width),
                "kernel": 2e-5 * jax.random.normal(k_head, (width, classes)),
                "logit_bias": jnp.zeros(classes)}
    elif probe is None:
        raise ConfigError("head='linear_probe' needs the row's frozen features; use "
                          "head='layernorm'")
    else:
        head = {"kernel": jnp.asarray(probe["kernel"]), "logit_bias": jnp.asarray(probe["bias"])}
    params = {"model": model, "head": head}
    steps = b["finetune_steps"]
    tx, step, features, predict = _programs(variant, b["head"], steps, b["lr"],
                                            b["warmup_steps"], b["weight_decay"])
    rng = np.random.default_rng(b["seed"])
    n, batch = len(train[label]), min(b["batch_size"], len(train[label]))
    state, order = tx.init(params), np.array([], np.int64)
    for i in range(steps):
        if len(order) < batch:
            order = np.concatenate([order, rng.permutation(n)])
        idx, order = order[:batch], order[batch:]
        params, state = step(params, state, inputs(train, idx), train[label][idx].astype(np.int32),
                             jax.random.fold_in(k_steps, i))

    def batched(fn, arrays):  # fixed-size batches (the last padded): one compilation
        m, out = len(arrays[label]), []
        for start in range(0, m, batch):
            idx = np.minimum(np.arange(start, start + batch), m - 1)
            out.append(np.asarray(fn(inputs(arrays, idx)))[:m - start])
        return np.concatenate(out)

    stats = None
    if b["head"] == "linear_probe":  # the fine-tuned encoder's training-set statistics
        h = batched(lambda x: features(params, x), train)
        stats = (h.mean(0), h.std(0) + 1e-6)
    predictions = batched(lambda x: predict(params, x, stats), test)
    return float(np.mean(predictions == test[label]))


@functools.lru_cache(maxsize=4)
def _programs(variant, head_kind: str, steps: int, lr: float, warmup_steps: int,
              weight_decay: float):
    """(optimizer, train step, features, predict) of fine-tuning, compiled once for every row
    of a run (the pretrained and the random-init encoder share the shapes)."""
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, min(warmup_steps, steps - 1), steps)
    tx = optax.adamw(schedule, weight_decay=weight_decay,
                     mask=lambda p: jax.tree.map(lambda x: jnp.ndim(x) > 1, p))

    def logits(p, x, key, stats=None):
        h = variant.fine_tune_features(p["model"], x, key)
        head = p["head"]
        if head_kind == "layernorm":
            h = (h - h.mean(-1, keepdims=True)) * jax.lax.rsqrt(h.var(-1, keepdims=True) + 1e-6)
            h = h * head["scale"] + head["bias"]
        elif stats is None:  # training: standardized over the batch (BatchNorm, no affine)
            h = (h - h.mean(0)) * jax.lax.rsqrt(h.var(0) + 1e-12)
        else:
            h = (h - stats[0]) / stats[1]
        return h @ head["kernel"] + head["logit_bias"]

    @jax.jit
    def step(p, state, x, y, key):
        loss_fn = lambda p: optax.softmax_cross_entropy_with_integer_labels(
            logits(p, x, key), y).mean()
        grads = jax.grad(loss_fn)(p)
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state

    features = jax.jit(lambda p, x: variant.fine_tune_features(p["model"], x, None))
    predict = jax.jit(lambda p, x, stats: logits(p, x, None, stats).argmax(-1))
    return tx, step, features, predict

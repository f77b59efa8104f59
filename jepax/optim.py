"""Optimizer and schedules from the config (I-JEPA recipe by default).

* learning rate: linear warmup from ``start_lr`` to ``lr``, then cosine to ``final_lr``;
* weight decay: cosine from ``weight_decay`` to ``final_weight_decay`` (it *increases*);
* EMA momentum of the target encoder: linear from ``ema[0]`` to ``ema[1]``;
* AdamW with decay only on parameters of rank > 1 (biases, norm scales and other vectors are
  excluded), optional element-wise gradient clamping (``grad_clip_value``, as T-JEPA's
  released code) and global-norm clipping (``grad_clip``);
* frozen parameters (a variant's ``frozen``: top-level keys of its params, e.g. pretrained
  encoders it builds on) are never changed: their updates, decay included, are zero, and the
  optimizer keeps no moments for them (half the memory of a frozen ViT-H is not spent on Adam).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import optax

from jepax import layer_stack


@dataclasses.dataclass(frozen=True)
class Schedules:
    lr: Callable
    weight_decay: Callable
    ema: Callable


def schedules(optim_config, total_steps: int) -> Schedules:
    o = optim_config
    warmup = min(int(o.warmup_steps), total_steps)
    lr = optax.warmup_cosine_decay_schedule(
        init_value=o.start_lr, peak_value=o.lr, warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1), end_value=o.final_lr)
    # cosine_decay_schedule goes from init to init * alpha: alpha = final / init rises when > 1.
    if o.weight_decay > 0:
        wd = optax.cosine_decay_schedule(init_value=o.weight_decay, decay_steps=total_steps,
                                         alpha=o.final_weight_decay / o.weight_decay)
    else:
        wd = optax.constant_schedule(0.0)
    ema = optax.linear_schedule(o.ema[0], o.ema[1], total_steps)
    return Schedules(lr=lr, weight_decay=wd, ema=ema)


def decay_mask(params):
    """True where weight decay applies: parameters with more than one dimension (per layer,
    for blocks stored stacked by model.scan_layers)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, p: p.ndim - layer_stack.stacked_layers(path) > 1, params)


def frozen_labels(frozen: tuple[str, ...]):
    """params -> 'frozen' for every parameter under one of the top-level keys in `frozen`,
    'trained' for the rest. (Written over paths, not dict items, because optax also calls
    labels on a placeholder tree.)"""
    def labels(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: ("frozen" if path and getattr(path[0], "key", None) in frozen
                             else "trained"), params)
    return labels


def optimizer(optim_config, sched: Schedules,
              frozen: tuple[str, ...] = ()) -> optax.GradientTransformation:
    o = optim_config
    tx = optax.adamw(sched.lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=sched.weight_decay,
                     mask=decay_mask)
    if o.grad_clip > 0:
        tx = optax.chain(optax.clip_by_global_norm(o.grad_clip), tx)
    if o.grad_clip_value > 0:
        tx = optax.chain(optax.clip(o.grad_clip_value), tx)
    if frozen:  # frozen parameters get a zero update and no optimizer state (no Adam moments)
        tx = optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()},
                                   frozen_labels(tuple(frozen)))
    return tx

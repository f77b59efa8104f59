"""Collapse monitors every JEPA variant logs with its loss, with one definition so the numbers
compare across variants and runs.

- ``target_std`` / ``target_std_min``: for each feature of the layer-normed target features, the
  standard deviation across the examples of the batch at one token position, averaged over
  positions; then its mean and its minimum over features. 0 means the target encoder ignores its
  input, the collapse a JEPA can fall into. A positional offset shared by every input is not
  spread (a std over all tokens would count it, and hide the collapse).
- ``pred_std``: the predictions' standard deviation over all valid predicted tokens, averaged
  over features; 0 means the predictor outputs one vector everywhere.

The training loop warns when ``target_std`` falls below ``logging.collapse_warning``; RankMe and
the centred effective rank come from the `rankme` and `collapse` evaluators.
"""

from __future__ import annotations

import jax.numpy as jnp

from jepax.models.layers import normalize_features


def collapse_monitors(targets, pred, valid=None) -> dict:
    """targets: (B, ..., D) the target encoder's features of every token (layer-normed here, so
    unnormalized targets are measured on the same scale); pred: (..., D) the predictions;
    valid: pred.shape[:-1] weights of the real predicted tokens (None: all)."""
    t = normalize_features(targets.astype(jnp.float32))
    per_feature = jnp.std(t, axis=0).reshape(-1, t.shape[-1]).mean(0)
    return {"target_std": per_feature.mean(), "target_std_min": per_feature.min(),
            "pred_std": token_std(pred, valid)}


def token_std(x, valid=None):
    """Mean over features of the std over every (valid) token; `valid` has x.shape[:-1]."""
    x = x.astype(jnp.float32)
    w = jnp.ones(x.shape[:-1], jnp.float32) if valid is None else valid.astype(jnp.float32)
    w = w[..., None] / jnp.maximum(w.sum(), 1.0)
    leading = tuple(range(x.ndim - 1))
    mean = (x * w).sum(leading)
    return jnp.sqrt((((x - mean) ** 2) * w).sum(leading)).mean()

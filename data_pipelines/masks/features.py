"""T-JEPA feature masks: a random context subset of a row's features and target subsets of the
rest, as index lists into the token sequence [REG..., feature_0, ..., feature_{D-1}].

Per batch (as T-JEPA's ``MaskCollator``): the context size ``n_ctx`` and the target size
``n_tgt`` are drawn once, each ``min + round((max - min) * u)`` with ``min, max = round(D *
share)`` from the configured share ranges, redrawn until ``n_ctx + n_tgt <= D``. Per row: a random
context of ``n_ctx`` features, then ``num_targets`` random subsets of ``n_tgt`` of the remaining
features (targets may overlap each other, never the context).

Indexing (``official``):

* False (default): the [REG] tokens are always in the context (never masked, never predicted)
  and feature j is token ``n_reg + j``;
* True: the released code's behaviour. Its collator draws feature ids 0..D-1 and its encoder
  gathers them from the sequence that starts with the [REG] tokens, so id j picks token j: a
  [REG] token is in the context or a target only when id < n_reg is drawn, and the last n_reg
  features are never in either.

The sizes vary per batch, so index lists are padded to fixed capacities (the largest possible
sizes) with validity masks: one compiled step serves every batch.
"""

from __future__ import annotations

import dataclasses

import numpy as np


class FeatureMaskError(ValueError):
    """Mask settings that cannot produce valid masks for this many features."""


@dataclasses.dataclass(frozen=True)
class FeatureMaskSpec:
    n_features: int
    n_reg: int = 1
    context_share: tuple[float, float] = (0.2, 0.4)
    target_share: tuple[float, float] = (0.2, 0.4)
    num_targets: int = 4
    official: bool = False


class FeatureMasks:
    def __init__(self, spec: FeatureMaskSpec):
        self.spec = spec
        d = spec.n_features
        self.context_range = _counts(d, spec.context_share, "context_share")
        self.target_range = _counts(d, spec.target_share, "target_share")
        if self.context_range[0] + self.target_range[0] > d:
            raise FeatureMaskError(
                f"the smallest context ({self.context_range[0]}) and target "
                f"({self.target_range[0]}) together exceed the {d} features; lower "
                "mask.context_share or mask.target_share")
        if spec.num_targets < 1:
            raise FeatureMaskError(f"mask.num_targets={spec.num_targets} must be >= 1")
        reg = 0 if spec.official else spec.n_reg
        self.context_capacity = reg + min(self.context_range[1], d - self.target_range[0])
        self.target_capacity = min(self.target_range[1], d - self.context_range[0])

    def sizes(self, rng: np.random.Generator) -> tuple[int, int]:
        """(n_ctx, n_tgt) for one batch."""
        d = self.spec.n_features
        while True:
            n_ctx, n_tgt = (lo + int(np.round((hi - lo) * rng.random()))
                            for lo, hi in (self.context_range, self.target_range))
            if n_ctx + n_tgt <= d:
                return n_ctx, n_tgt

    def sample_batch(self, rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
        """context_idx/valid (B, context_capacity), target_idx/valid (B, M, target_capacity)."""
        s = self.spec
        n_ctx, n_tgt = self.sizes(rng)
        order = np.argsort(rng.random((batch, s.n_features)), axis=1)
        context, rest = np.sort(order[:, :n_ctx], 1), order[:, n_ctx:]
        pick = np.argsort(rng.random((batch, s.num_targets, rest.shape[1])), axis=2)[..., :n_tgt]
        targets = np.sort(np.take_along_axis(rest[:, None, :], pick, axis=2), 2)
        if not s.official:  # token ids: the [REG] tokens come first and always stay in context
            reg = np.broadcast_to(np.arange(s.n_reg), (batch, s.n_reg))
            context = np.concatenate([reg, context + s.n_reg], axis=1)
            targets = targets + s.n_reg
        context_idx, context_valid = _pad(context, self.context_capacity)
        target_idx, target_valid = _pad(targets, self.target_capacity)
        return {"context_idx": context_idx, "context_valid": context_valid,
                "target_idx": target_idx, "target_valid": target_valid}


def _counts(d: int, share: tuple[float, float], name: str) -> tuple[int, int]:
    lo, hi = share
    if not 0 < lo <= hi <= 1:
        raise FeatureMaskError(f"mask.{name}={tuple(share)} must satisfy 0 < min <= max <= 1")
    # Python's round (half to even), as the released collator.
    counts = round(d * lo), round(d * hi)
    if counts[0] < 1:
        raise FeatureMaskError(f"mask.{name}={tuple(share)} selects no feature of {d}; raise "
                               f"the minimum share to at least {0.5 / d:.3f}")
    return counts


def _pad(idx: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad the last axis to `capacity` with index 0 marked invalid."""
    n = idx.shape[-1]
    pad = [(0, 0)] * (idx.ndim - 1) + [(0, capacity - n)]
    valid = np.pad(np.ones(idx.shape, bool), pad)
    return np.pad(idx, pad).astype(np.int32), valid

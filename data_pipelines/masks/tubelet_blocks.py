"""Video masks of V-JEPA / UI-JEPA over a (time slices, rows, columns) tubelet grid.

Each example gets several mask *groups*; each group is one (context, target) pair and the
encoder and predictor run once per group (V-JEPA's multi-mask training):

* ``short``: ``short_blocks`` (8) spatial blocks of ``short_scale`` (0.15) of the rows x columns,
  aspect ratio in ``aspect`` (0.75-1.5), each spanning every time slice;
* ``long``: ``long_blocks`` (2) such blocks of ``long_scale`` (0.7);
* ``temporal`` (UI-JEPA's temporal masking): ``temporal_slices`` (6) of the time slices masked
  whole (every token of them), chosen at random but never one contiguous run (a run is
  redrawn): the paper's best setting masks 6 of 8 slices non-contiguously.

Spatial groups: the target is the union of the group's blocks over all time slices and the
context every other token; temporal: the target is the masked slices, the context the rest.
Block sides are ``round(sqrt(scale * H * W * aspect))`` x ``round(sqrt(scale * H * W / aspect))``
clipped to the grid, placed uniformly (V-JEPA's _MaskGenerator, without its per-batch
size draw: here every example draws its own sizes). A group whose context keeps fewer than
``min_context`` tokens is redrawn.

Token index = (t * H + h) * W + w, the tubelet tokenizer's row-major order. Output per example:
``context_idx`` (G, C), ``context_valid`` (G, C), ``target_idx`` (G, 1, T), ``target_valid``
(G, 1, T), fixed capacities (multiblock.resolve_capacity; the exact maximum by default).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from data_pipelines.masks.multiblock import (MaskConfigError, block_size, pack, resolve_capacity,
                                             spec_from_config)

MAX_RESAMPLES = 200
GROUPS = ("short", "long", "temporal")


@dataclasses.dataclass(frozen=True)
class TubeletMaskSpec:
    grid: tuple[int, int, int]               # (time slices, rows, columns)
    groups: tuple[str, ...] = GROUPS
    short_blocks: int = 8
    short_scale: float = 0.15
    long_blocks: int = 2
    long_scale: float = 0.7
    aspect: tuple[float, float] = (0.75, 1.5)
    temporal_slices: int = 6
    min_context: int = 1
    context_capacity: Any = None             # None (exact max) | 'auto' | int
    target_capacity: Any = None
    pad_multiple: int = 1

    @classmethod
    def from_config(cls, mask_config, grid) -> "TubeletMaskSpec":
        return spec_from_config(cls, mask_config, grid)

    def validate(self) -> None:
        t, h, w = self.grid
        unknown = set(self.groups) - set(GROUPS)
        if not self.groups or unknown:
            raise MaskConfigError(f"mask.groups={self.groups}: use a non-empty subset of {GROUPS}")
        for name in ("short_scale", "long_scale"):
            if not 0 < getattr(self, name) <= 1:
                raise MaskConfigError(f"mask.{name}={getattr(self, name)} must be in (0, 1] "
                                      "(a fraction of the rows x columns)")
        lo, hi = self.aspect
        if not 0 < lo <= hi:
            raise MaskConfigError(f"mask.aspect={self.aspect} must satisfy 0 < low <= high")
        if self.short_blocks < 1 or self.long_blocks < 1:
            raise MaskConfigError("mask.short_blocks and mask.long_blocks must be at least 1")
        if "temporal" in self.groups:
            if not 1 <= self.temporal_slices < t:
                raise MaskConfigError(
                    f"mask.temporal_slices={self.temporal_slices} must be in [1, {t}) for "
                    f"{t} time slices (data.frames / model.tubelet_frames)")
        if not 0 <= self.min_context < t * h * w:
            raise MaskConfigError(f"mask.min_context={self.min_context} must be in "
                                  f"[0, {t * h * w})")


def contiguous(slices: np.ndarray) -> bool:
    """True when the sorted slice indices form one unbroken run."""
    return bool(slices[-1] - slices[0] == len(slices) - 1)


class TubeletMasks:
    """Call per example: ``masks(rng)`` -> the four index arrays of every group."""

    def __init__(self, spec: TubeletMaskSpec):
        spec.validate()
        self.spec = spec
        self.num_groups = len(spec.groups)
        t, h, w = spec.grid
        exact_target = {"short": t * h * w, "long": t * h * w,
                        "temporal": spec.temporal_slices * h * w}
        exact_context = {"short": t * h * w, "long": t * h * w,
                         "temporal": (t - spec.temporal_slices) * h * w}
        self.context_capacity = self._capacity(
            spec.context_capacity, max(exact_context[g] for g in spec.groups), "context")
        self.target_capacity = self._capacity(
            spec.target_capacity, max(exact_target[g] for g in spec.groups), "target")

    def _capacity(self, setting, exact: int, which: str) -> int:
        def sampled():
            rng = np.random.default_rng(0)
            return [len(pair[0 if which == "context" else 1])
                    for _ in range(512) for pair in self._sample(rng)]
        return resolve_capacity(setting, exact, which, self.spec.pad_multiple, sampled)

    # -- drawing -----------------------------------------------------------------------------
    def _spatial(self, rng, blocks: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """(context, target) token indices of one spatial group, each block over all slices."""
        t, h, w = self.spec.grid
        for _ in range(MAX_RESAMPLES):
            covered = np.zeros((h, w), bool)
            for _ in range(blocks):
                bh, bw = block_size(scale, rng.uniform(*self.spec.aspect), h * w, (h, w))
                top, left = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
                covered[top:top + bh, left:left + bw] = True
            masked = np.broadcast_to(covered, (t, h, w)).reshape(-1)
            if (~masked).sum() >= max(self.spec.min_context, 1):
                return np.flatnonzero(~masked), np.flatnonzero(masked)
        raise MaskConfigError(
            f"{blocks} blocks of scale {scale} left fewer than mask.min_context="
            f"{self.spec.min_context} context tokens in {MAX_RESAMPLES} draws on a {t}x{h}x{w} "
            "grid: lower the block scale or count")

    def _temporal(self, rng) -> tuple[np.ndarray, np.ndarray]:
        t, h, w = self.spec.grid
        k = self.spec.temporal_slices
        while True:  # 1 <= k < t (validate) leaves a non-contiguous choice when k >= 2
            slices = np.sort(rng.choice(t, k, replace=False))
            if k == 1 or not contiguous(slices):
                break
        masked = np.zeros(t, bool)
        masked[slices] = True
        per_token = np.repeat(masked, h * w)
        return np.flatnonzero(~per_token), np.flatnonzero(per_token)

    def _sample(self, rng) -> list[tuple[np.ndarray, np.ndarray]]:
        s = self.spec
        draw = {"short": lambda: self._spatial(rng, s.short_blocks, s.short_scale),
                "long": lambda: self._spatial(rng, s.long_blocks, s.long_scale),
                "temporal": lambda: self._temporal(rng)}
        return [draw[g]() for g in s.groups]

    def __call__(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        pairs = self._sample(rng)
        ctx = [pack(c, self.context_capacity, rng) for c, _ in pairs]
        tgt = [pack(t, self.target_capacity, rng) for _, t in pairs]
        return {"context_idx": np.stack([c[0] for c in ctx]),
                "context_valid": np.stack([c[1] for c in ctx]),
                "target_idx": np.stack([t[0] for t in tgt])[:, None],
                "target_valid": np.stack([t[1] for t in tgt])[:, None]}

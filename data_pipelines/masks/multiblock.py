"""I-JEPA multi-block masks: several target blocks and one context block with the targets removed.

Two semantics, both emitting fixed-capacity index arrays with validity masks so that one compiled
train step serves every batch:

``jepax`` (default, per example)
    Each example draws its own block sizes: scale and aspect ratio independently and uniformly,
    side lengths ``round(sqrt(scale * N * aspect))`` x ``round(sqrt(scale * N / aspect))`` clipped to
    the grid, positions uniform over *every* placement (blocks may touch the last row/column).
    The context keeps every patch of its block that no target covers; if fewer than
    ``min_context`` remain, the whole example is resampled. Nothing is truncated to a batch minimum.

``official`` (``mask.official=True``; facebookresearch/ijepa ``MaskCollator``)
    Reproduces the reference collator's documented quirks:
    * block sizes are drawn once per *batch*, and one uniform number sets both the scale and the
      aspect ratio (they are perfectly correlated); ``max_keep = int(N * scale)``;
    * side lengths are capped at grid-1 and the top-left corner is drawn from ``[0, H - h)``, so
      blocks never touch the last row or column;
    * a block must hold *more than* ``min_keep`` patches (targets too); after 20 failed draws of
      the context, one more target is ignored when removing targets (overlap becomes possible);
    * each batch's index lists are truncated to the batch minimum (row-major order, so the
      bottom-right patches of larger contexts are dropped). Truncated entries are marked invalid.
    The RNG stream is numpy's, not torch's: same distribution, different draws.

Capacities: ``None`` means the exact maximum any example can need (nothing is ever dropped);
``'auto'`` means the 99th percentile of 4096 simulated examples (seed 0), so the rare longer list
is randomly subsampled; an integer is used as given. Capacities are rounded up to
``pad_multiple`` (accelerator-friendly sequence lengths).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np

from data_pipelines.masks.block_area import largest_jepax_block, largest_official_block

log = logging.getLogger(__name__)

MAX_RESAMPLES = 200  # jepax semantics: redraws before declaring the config unsatisfiable
OFFICIAL_TIMEOUT = 20  # official collator: failed draws before relaxing the context constraint


class MaskConfigError(ValueError):
    """Mask settings that cannot produce valid masks."""


def spec_from_config(cls, mask_config, grid):
    """A frozen mask-spec dataclass from the config's values for its fields (`grid` given):
    config lists become tuples (the spec stays hashable), numbers in them floats (a config may
    write (1, 1))."""
    names = {f.name for f in dataclasses.fields(cls)} - {"grid"}
    kwargs = {k: mask_config[k] for k in names if k in mask_config}
    kwargs = {k: tuple(float(x) if isinstance(x, (int, float)) else x for x in v)
              if isinstance(v, (list, tuple)) else v for k, v in kwargs.items()}
    return cls(grid=tuple(grid), **kwargs)


@dataclasses.dataclass(frozen=True)
class MultiBlockSpec:
    grid: tuple[int, int]
    num_targets: int = 4
    target_scale: tuple[float, float] = (0.15, 0.2)
    target_aspect: tuple[float, float] = (0.75, 1.5)
    context_scale: tuple[float, float] = (0.85, 1.0)
    context_aspect: tuple[float, float] = (1.0, 1.0)
    min_context: int = 10
    allow_overlap: bool = False
    official: bool = False
    context_capacity: Any = None  # None | 'auto' | int
    target_capacity: Any = None
    pad_multiple: int = 1

    @classmethod
    def from_config(cls, mask_config, grid: tuple[int, int]) -> "MultiBlockSpec":
        return spec_from_config(cls, mask_config, grid)

    def validate(self) -> None:
        for name in ("target_scale", "context_scale"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi <= 1:
                raise MaskConfigError(
                    f"mask.{name}={getattr(self, name)} must satisfy 0 < low <= high <= 1 "
                    "(fractions of the patch grid), e.g. (0.15, 0.2)")
        for name in ("target_aspect", "context_aspect"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise MaskConfigError(f"mask.{name}={getattr(self, name)} must satisfy "
                                      "0 < low <= high, e.g. (0.75, 1.5)")
        if self.num_targets < 1:
            raise MaskConfigError(f"mask.num_targets={self.num_targets} must be at least 1")
        if not 0 <= self.min_context < self.grid[0] * self.grid[1]:
            raise MaskConfigError(
                f"mask.min_context={self.min_context} must be in [0, {self.grid[0] * self.grid[1]})"
                f" for a {self.grid[0]}x{self.grid[1]} patch grid")
        if self.official and min(self.grid) < 2:
            raise MaskConfigError("official mask semantics need a patch grid of at least 2x2")


def block_size(scale: float, aspect: float, n: int, grid) -> tuple[int, int]:
    area = scale * n
    h = int(round(math.sqrt(area * aspect)))
    w = int(round(math.sqrt(area / aspect)))
    return min(max(h, 1), grid[0]), min(max(w, 1), grid[1])


def _official_block_size(u: float, scale, aspect, grid) -> tuple[int, int]:
    s = scale[0] + u * (scale[1] - scale[0])
    max_keep = int(grid[0] * grid[1] * s)
    ar = aspect[0] + u * (aspect[1] - aspect[0])
    h = int(round(math.sqrt(max_keep * ar)))
    w = int(round(math.sqrt(max_keep / ar)))
    return max(min(h, grid[0] - 1), 0), max(min(w, grid[1] - 1), 0)


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple


def resolve_capacity(setting, exact_max: int, which: str, pad_multiple: int, sampled_counts) -> int:
    """A list's fixed capacity: None = the exact maximum; 'auto' = the 99th percentile of
    `sampled_counts()` (sizes drawn with seed 0); an int as given. Rounded up to pad_multiple,
    never above the (rounded) exact maximum."""
    if setting is None:
        cap = exact_max
    elif setting == "auto":
        cap = min(exact_max, int(np.ceil(np.quantile(sampled_counts(), 0.99))))
    else:
        cap = int(setting)
        if cap < 1:
            raise MaskConfigError(f"mask.{which}_capacity={setting} must be positive, 'auto' or None")
    return min(_round_up(max(cap, 1), pad_multiple), _round_up(exact_max, pad_multiple))


def pack(idx: np.ndarray, capacity: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-capacity (indices, valid): a random sorted subset if too long (a list with
    duplicates may keep them), else the list as given, padded."""
    if len(idx) > capacity:
        idx = np.sort(idx[rng.choice(len(idx), capacity, replace=False)])
    out = np.zeros(capacity, np.int32)
    out[:len(idx)] = idx
    return out, np.arange(capacity) < len(idx)


class MultiBlockMasks:
    """Samples I-JEPA masks; call per example (jepax semantics) or per batch (official)."""

    def __init__(self, spec: MultiBlockSpec):
        spec.validate()
        self.spec = spec
        self.num_patches = spec.grid[0] * spec.grid[1]
        max_target, max_context = self._max_sizes()
        self.target_capacity = self._capacity(spec.target_capacity, max_target, "target")
        self.context_capacity = self._capacity(spec.context_capacity, max_context, "context")

    # -- capacities -------------------------------------------------------------------------
    def _max_sizes(self) -> tuple[int, int]:
        """Largest target block and context block any example can produce, exactly
        (block_area.py); a list that still exceeds its capacity is subsampled, never an error."""
        s, g = self.spec, self.spec.grid
        if s.official:
            largest = lambda scale, aspect: largest_official_block(scale, aspect, g,
                                                                   _official_block_size)
        else:
            largest = lambda scale, aspect: largest_jepax_block(scale, aspect, g)
        return (largest(s.target_scale, s.target_aspect),
                largest(s.context_scale, s.context_aspect))

    def _capacity(self, setting, exact_max: int, which: str) -> int:
        return resolve_capacity(setting, exact_max, which, self.spec.pad_multiple,
                                lambda: self._sampled_counts(which))

    def _sampled_counts(self, which: str) -> list[int]:
        rng = np.random.default_rng(0)
        if self.spec.official:
            counts = []
            for _ in range(64):
                sizes = self._official_sizes(rng, 64)
                counts.extend(sizes[which])
            return counts
        return [self._sample_blocks(rng)[1 if which == "context" else 2] for _ in range(4096)]

    # -- jepax semantics ---------------------------------------------------------------------
    def _random_block(self, rng, scale, aspect) -> np.ndarray:
        g = self.spec.grid
        h, w = block_size(rng.uniform(*scale), rng.uniform(*aspect), self.num_patches, g)
        top = rng.integers(0, g[0] - h + 1)
        left = rng.integers(0, g[1] - w + 1)
        block = np.zeros(g, bool)
        block[top:top + h, left:left + w] = True
        return block

    def _sample_blocks(self, rng):
        s = self.spec
        for _ in range(MAX_RESAMPLES):
            targets = [self._random_block(rng, s.target_scale, s.target_aspect)
                       for _ in range(s.num_targets)]
            context = self._random_block(rng, s.context_scale, s.context_aspect)
            if not s.allow_overlap:
                context &= ~np.logical_or.reduce(targets)
            n_ctx = int(context.sum())
            if n_ctx >= s.min_context:
                return targets, n_ctx, max(int(t.sum()) for t in targets), context
        raise MaskConfigError(
            f"could not keep mask.min_context={s.min_context} context patches in "
            f"{MAX_RESAMPLES} draws on a {s.grid[0]}x{s.grid[1]} grid with {s.num_targets} targets of "
            f"scale {s.target_scale}: lower min_context, num_targets or target_scale")

    def __call__(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One example's masks (jepax semantics)."""
        targets, _, _, context = self._sample_blocks(rng)
        ctx_idx, ctx_valid = pack(np.flatnonzero(context), self.context_capacity, rng)
        packed = [pack(np.flatnonzero(t), self.target_capacity, rng) for t in targets]
        return {
            "context_idx": ctx_idx, "context_valid": ctx_valid,
            "target_idx": np.stack([p[0] for p in packed]),
            "target_valid": np.stack([p[1] for p in packed]),
        }

    # -- official semantics ------------------------------------------------------------------
    def _official_block(self, rng, size, acceptable=None) -> tuple[np.ndarray, np.ndarray]:
        """One block of the given size, constrained by `acceptable` masks; (indices, complement)."""
        g, h, w = self.spec.grid, size[0], size[1]
        tries, timeout = 0, OFFICIAL_TIMEOUT
        for _ in range(OFFICIAL_TIMEOUT * (self.spec.num_targets + 2)):
            top = rng.integers(0, max(g[0] - h, 1))
            left = rng.integers(0, max(g[1] - w, 1))
            mask = np.zeros(g, bool)
            mask[top:top + h, left:left + w] = True
            if acceptable is not None:
                for region in acceptable[:max(len(acceptable) - tries, 0)]:
                    mask &= region
            idx = np.flatnonzero(mask)
            if len(idx) > self.spec.min_context:
                complement = np.ones(g, bool)
                complement[top:top + h, left:left + w] = False
                return idx, complement
            timeout -= 1
            if timeout == 0:
                tries, timeout = tries + 1, OFFICIAL_TIMEOUT
        # The reference loops forever here (e.g. a target block can never exceed min_keep).
        raise MaskConfigError(
            f"official mask semantics need blocks of more than min_context={self.spec.min_context}"
            f" patches, but a {h}x{w} block on a {g[0]}x{g[1]} grid cannot provide them: lower "
            "mask.min_context, raise the block scales, or use mask.official=False")

    def _official_sizes(self, rng, batch_size):
        """Draw one batch's blocks; returns indices per example and their counts."""
        s = self.spec
        t_size = _official_block_size(rng.uniform(), s.target_scale, s.target_aspect, s.grid)
        c_size = _official_block_size(rng.uniform(), s.context_scale, (1.0, 1.0), s.grid)
        targets, contexts = [], []
        for _ in range(batch_size):
            blocks = [self._official_block(rng, t_size) for _ in range(s.num_targets)]
            targets.append([b[0] for b in blocks])
            acceptable = None if s.allow_overlap else [b[1] for b in blocks]
            contexts.append(self._official_block(rng, c_size, acceptable)[0])
        return {"targets": targets, "contexts": contexts,
                "target": [len(t) for ts in targets for t in ts],
                "context": [len(c) for c in contexts]}

    def sample_batch(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        """A batch's masks under the official collator's semantics (see module docstring)."""
        drawn = self._official_sizes(rng, batch_size)
        keep_t = min(drawn["target"])
        keep_c = min(drawn["context"])
        ctx = [pack(c[:keep_c], self.context_capacity, rng) for c in drawn["contexts"]]
        tgt = [[pack(t[:keep_t], self.target_capacity, rng) for t in ts]
               for ts in drawn["targets"]]
        return {
            "context_idx": np.stack([c[0] for c in ctx]),
            "context_valid": np.stack([c[1] for c in ctx]),
            "target_idx": np.stack([np.stack([t[0] for t in ts]) for ts in tgt]),
            "target_valid": np.stack([np.stack([t[1] for t in ts]) for ts in tgt]),
        }

"""Point-JEPA masks: contiguous ranges of the patch sequence (Saito et al., 2024).

The sequencer (jepax.models.point_ops.nearest_neighbour_order) orders a cloud's patches so that
neighbours in the sequence are neighbours in space; a contiguous range of sequence positions is
then a spatially contiguous region. As the reference code (pointjepa/modules/target_sampler.py
and context_sampler.py), drawn once per *batch* and shared by its clouds:

* one ratio r ~ U(target_ratio); each of `num_targets` blocks holds ``max(1, int(G * r))``
  consecutive positions starting at a uniform position (blocks may overlap);
* the context: the positions no target covers, in sequence order; r_c ~ U(context_ratio), and a
  contiguous run of ``max(1, int(r_c * remaining))`` of those remaining positions starting at a
  uniform offset (it may step over a target range, never into it).

Fixed capacities (the largest possible sizes) with validity masks keep one compiled step.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines.masks.multiblock import MaskConfigError
from data_pipelines.masks.patch_blocks import PatchBlocks


@dataclasses.dataclass(frozen=True)
class SequenceBlocks(PatchBlocks):
    context_ratio: tuple[float, float] = (0.4, 0.75)

    def check(self):
        if self.context_capacity < 1 or self.tokens - self.target_size(self.target_ratio[0]) < 1:
            raise MaskConfigError(
                f"{self.tokens} patches leave no context after a target of ratio "
                f"{self.target_ratio[0]}; lower mask.target_ratio or raise model.num_groups")

    def target_size(self, ratio: float) -> int:
        return max(1, int(self.tokens * ratio))

    @property
    def target_capacity(self) -> int:
        return self.target_size(self.target_ratio[1])

    @property
    def context_capacity(self) -> int:
        # Largest context: the fewest covered positions (all targets on one smallest range).
        remaining = self.tokens - self.target_size(self.target_ratio[0])
        return max(1, int(self.context_ratio[1] * remaining))

    def __call__(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """{'target_idx' (M, T) int32, 'target_valid' (M, T), 'context_idx' (C,) int32,
        'context_valid' (C,)}: sequence positions, padded entries repeat a valid one."""
        size = self.target_size(rng.uniform(*self.target_ratio))
        starts = rng.integers(0, self.tokens - size + 1, self.num_targets)
        targets = starts[:, None] + np.arange(size)
        covered = np.zeros(self.tokens, bool)
        covered[targets.ravel()] = True
        remaining = np.flatnonzero(~covered)
        n_ctx = max(1, int(rng.uniform(*self.context_ratio) * len(remaining)))
        start = rng.integers(0, len(remaining) - n_ctx + 1)
        context = remaining[start:start + n_ctx]
        return {**_padded("target", targets, self.target_capacity),
                **_padded("context", context, self.context_capacity)}


def _padded(name: str, idx: np.ndarray, capacity: int) -> dict[str, np.ndarray]:
    """idx (..., n) -> (..., capacity) indices (padding repeats the first) and validity."""
    n = idx.shape[-1]
    pad = np.repeat(idx[..., :1], capacity - n, axis=-1)
    valid = np.arange(capacity) < n
    return {f"{name}_idx": np.concatenate([idx, pad], -1).astype(np.int32),
            f"{name}_valid": np.broadcast_to(valid, idx.shape[:-1] + (capacity,)).copy()}

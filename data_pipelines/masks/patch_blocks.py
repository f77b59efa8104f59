"""What the point-patch mask samplers share (sequence_blocks: Point-JEPA, spatial_blocks:
3D-JEPA): the patch count, the number of target blocks and the ratio ranges, checked once."""

from __future__ import annotations

import dataclasses

from data_pipelines.masks.multiblock import MaskConfigError


@dataclasses.dataclass(frozen=True)
class PatchBlocks:
    tokens: int
    num_targets: int = 4
    target_ratio: tuple[float, float] = (0.15, 0.2)
    context_ratio: tuple[float, float] = (0.85, 1.0)

    def __post_init__(self):
        for name in ("target_ratio", "context_ratio"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi <= 1:
                raise MaskConfigError(f"mask.{name}=({lo}, {hi}) must satisfy 0 < lo <= hi <= 1")
        if self.num_targets < 1:
            raise MaskConfigError(f"mask.num_targets={self.num_targets} must be >= 1")
        self.check()

    def check(self) -> None:
        """Sampler-specific settings that cannot produce a context (raise MaskConfigError)."""

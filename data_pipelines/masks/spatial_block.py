"""S-JEPA's spatial block masking over an electrode montage (any channel set).

For each of `contexts` masks per example: a random centre electrode (distinct centres within
an example); every electrode within `radius` of it (Euclidean, positions in units of the head
radius) forms the masked block and is hidden with all its time tokens; the context is the
electrodes outside the block (all of them, or a random `context_channels` of them); each of
`targets` targets per context is `target_channels` electrodes drawn from the block (all of the
block when it is smaller). Shapes are fixed by the montage: the context capacity is the
largest possible outside set (the smallest block), targets have capacity `target_channels`;
validity masks mark real entries.

The head radius is the mean distance of the montage's electrodes from the head-frame origin
(MNE's head coordinates put the origin between the ears), so radius 1 is about 9 cm on an adult
head and the released radii 0.4 / 0.6 / 0.8 are 3.5 / 5 / 7 cm.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class SpatialBlockSpec:
    radius: float = 0.6
    contexts: int = 8
    targets: int = 2
    target_channels: int = 8
    context_channels: int | None = None   # None: every electrode outside the block


class SpatialBlockMasks:
    """Draws one example's masks: ``masks(rng) -> dict`` of channel indices + validity."""

    def __init__(self, positions: np.ndarray, spec: SpatialBlockSpec):
        positions = np.asarray(positions, np.float64)
        n = len(positions)
        self.spec = spec
        self.positions = positions / np.linalg.norm(positions, axis=1).mean()
        distances = np.linalg.norm(self.positions[:, None] - self.positions[None], axis=-1)
        self.blocks = distances < spec.radius                     # (centre, channel)
        sizes = self.blocks.sum(1)
        if spec.contexts > n:
            raise ValueError(f"mask.contexts={spec.contexts} needs as many distinct centre "
                             f"electrodes, but the montage has {n}")
        if sizes.max() == n:
            raise ValueError(f"mask.radius={spec.radius} covers every electrode from some "
                             f"centre (no context left); use a smaller radius")
        outside = n - sizes.min()
        self.context_capacity = outside if spec.context_channels is None else min(
            spec.context_channels, n - sizes.max())
        if self.context_capacity < 1:
            raise ValueError(f"mask.context_channels={spec.context_channels} leaves no context")
        self.target_capacity = spec.target_channels

    def __call__(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        s, n = self.spec, len(self.positions)
        ctx = np.zeros((s.contexts, self.context_capacity), np.int32)
        ctx_valid = np.zeros(ctx.shape, bool)
        tgt = np.zeros((s.contexts, s.targets, self.target_capacity), np.int32)
        tgt_valid = np.zeros(tgt.shape, bool)
        for k, centre in enumerate(rng.choice(n, s.contexts, replace=False)):
            inside, outside = np.flatnonzero(self.blocks[centre]), np.flatnonzero(~self.blocks[centre])
            if s.context_channels is not None:
                outside = np.sort(rng.choice(outside, self.context_capacity, replace=False))
            ctx[k, :len(outside)], ctx_valid[k, :len(outside)] = outside, True
            take = min(len(inside), self.target_capacity)
            for m in range(s.targets):
                tgt[k, m, :take] = np.sort(rng.choice(inside, take, replace=False))
                tgt_valid[k, m, :take] = True
        return {"context_channels": ctx, "context_valid": ctx_valid,
                "target_channels": tgt, "target_valid": tgt_valid}

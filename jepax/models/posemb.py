"""Positional embeddings: fixed sin-cos (1-D, 2-D, 3-D) as numpy constants, and Brain-JEPA's
learnable brain-gradient positions.

Sin-cos: each axis gets an equal share of the channels; within a share, half are sines and half
cosines of the position times geometrically spaced frequencies (1 / 10000^(2i/d)), as in MAE /
I-JEPA.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jepax.models.layers import dense_init, zeros


def sincos_1d(dim: int, positions: np.ndarray, *, base: float = 10000.0,
              interleave: bool = False) -> np.ndarray:
    """(len(positions), dim) embedding of scalar positions; dim must be even.

    Frequencies 1 / base^(2i/dim). Channels are [sines | cosines] (MAE / I-JEPA), or with
    `interleave` sin, cos, sin, cos, ... (the Transformer paper's layout, used by T-JEPA's
    encoder with base 100)."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dimension, got {dim}")
    omega = 1.0 / base ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = np.asarray(positions, np.float64).reshape(-1)[:, None] * omega[None, :]
    if interleave:
        return np.stack([np.sin(angles), np.cos(angles)], axis=2).reshape(len(angles), dim) \
            .astype(np.float32)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)


@functools.lru_cache(maxsize=64)
def sincos_nd(dim: int, grid: tuple[int, ...]) -> np.ndarray:
    """(prod(grid), dim) embedding of a row-major grid; dim must split evenly over the axes.

    The first half of the channels encodes the *last* grid axis (width), matching the
    MAE/I-JEPA convention for 2-D (w first, then h)."""
    n_axes = len(grid)
    if dim % (2 * n_axes):
        raise ValueError(f"sin-cos embedding of a {n_axes}-D grid needs dim divisible by "
                         f"{2 * n_axes}, got {dim}")
    coords = np.meshgrid(*[np.arange(g, dtype=np.float64) for g in grid], indexing="ij")
    parts = [sincos_1d(dim // n_axes, c.reshape(-1)) for c in reversed(coords)]
    out = np.concatenate(parts, axis=1)
    out.flags.writeable = False  # cached: shared by every caller
    return out


def sincos_2d(dim: int, height: int, width: int) -> np.ndarray:
    return sincos_nd(dim, (height, width))


class Constant:
    """A trace-time constant array held by a module (nnx keeps it out of the parameters)."""

    def __init__(self, value):
        self.value = np.asarray(value, np.float32)
        self.value.flags.writeable = False


class RoiTimePositions(nnx.Module):
    """Positions of a (ROI, time patch) token grid, token = roi * time_patches + t, as
    Brain-JEPA's GradTs_2dPE: [1-D sin-cos of the time-patch index (dim / 2) | spatial (dim / 2)].

    Spatial half: with `roi_features` (ROI, m) (functional gradients, or anatomical coordinates
    for the paper's ablation), a learnable Linear(m -> dim / 2) of each ROI's features, repeated
    over its time patches, the whole block min-max rescaled to [-1, 1]; without (None), the 1-D
    sin-cos of the ROI index (a plain 2-D sin-cos grid, the other ablation)."""

    def __init__(self, roi_features, time_patches: int, dim: int, *, dtype, rngs: nnx.Rngs,
                 rois: int | None = None):
        if dim % 4:
            raise ValueError(f"ROI x time positions need a width divisible by 4, got {dim}")
        self.time_patches = time_patches
        self.rois = len(roi_features) if roi_features is not None else rois
        t = np.tile(np.arange(time_patches), self.rois)
        self.temporal = Constant(sincos_1d(dim // 2, t))
        if roi_features is None:
            self.features = None
            self.spatial = Constant(sincos_1d(dim // 2, np.repeat(np.arange(self.rois),
                                                                   time_patches)))
            self.proj = None
        else:
            self.features = Constant(roi_features)
            self.spatial = None
            self.proj = nnx.Linear(self.features.value.shape[1], dim // 2, dtype=dtype,
                                   kernel_init=dense_init(None, None), bias_init=zeros(None),
                                   rngs=rngs)

    def __call__(self):
        """(ROI * time_patches, dim) positions."""
        if self.proj is None:
            spatial = jnp.asarray(self.spatial.value)
        else:
            per_roi = self.proj(jnp.asarray(self.features.value))
            lo, hi = per_roi.min(), per_roi.max()
            per_roi = (per_roi - lo) / (hi - lo) * 2 - 1
            spatial = jnp.repeat(per_roi, self.time_patches, axis=0)
        temporal = jnp.asarray(self.temporal.value).astype(spatial.dtype)
        return jnp.concatenate([temporal, spatial], axis=1)

"""Fixed sin-cos positional embeddings (1-D, 2-D, 3-D), as numpy constants.

Each axis gets an equal share of the channels; within a share, half are sines and half cosines of
the position times geometrically spaced frequencies (1 / 10000^(2i/d)), as in MAE / I-JEPA.
"""

from __future__ import annotations

import functools

import numpy as np


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

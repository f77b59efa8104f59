"""The largest block a multi-block sampler draws, computed exactly from its rounding breakpoints.

A block's sides are round(sqrt(area * aspect)) and round(sqrt(area / aspect)). Each side changes
value only where its square root crosses k + 1/2, so along the parameter being drawn the block
size is piecewise constant between known breakpoints: evaluating one point inside every piece
gives every size that occurs with positive probability, and so the exact maximum (a sweep of the
parameters misses pieces narrower than its step).
"""

from __future__ import annotations

import math

import numpy as np


def _pieces(lo: float, hi: float, breakpoints) -> list[float]:
    """One point inside each piece of [lo, hi] cut at `breakpoints` (just lo if lo == hi)."""
    if lo == hi:
        return [lo]
    cuts = np.unique(np.clip(np.concatenate([[lo, hi], np.asarray(breakpoints, float)]), lo, hi))
    return list((cuts[:-1] + cuts[1:]) / 2)


def largest_jepax_block(scale, aspect, grid) -> int:
    """Largest h * w of jepax's sampler: scale and aspect independent, uniform on [lo, hi);
    sides round(sqrt(scale * N * aspect)), round(sqrt(scale * N / aspect)) clipped to [1, grid].

    For a fixed aspect both sides grow with the scale, so the largest blocks come from scales
    just below the top of the range: sides are rounded with ties down there (the limit from
    below), unless the scale range is a single value."""
    n = grid[0] * grid[1]
    (s0, s1), (a0, a1) = scale, aspect
    area = s1 * n
    if s0 == s1:
        side = round
    else:
        side = lambda x: math.ceil(x - 0.5)  # sup over scales < s1: a tie rounds down
    top = int(math.isqrt(int(area * max(a1, 1 / a0))) + 2)
    half = np.arange(top + 1) + 0.5
    breakpoints = np.concatenate([half ** 2 / area, area / half ** 2])
    best = 0
    for a in _pieces(a0, a1, breakpoints):
        h = min(max(side(math.sqrt(area * a)), 1), grid[0])
        w = min(max(side(math.sqrt(area / a)), 1), grid[1])
        best = max(best, h * w)
    return best


def largest_official_block(scale, aspect, grid, block_size) -> int:
    """Largest h * w of the reference collator: one uniform u in [0, 1) sets both scale and
    aspect; `block_size(u, scale, aspect, grid)` is its (h, w) rule, whose area is
    int(N * scale) (a floor) before the square roots. Breakpoints: where N * scale(u) is an
    integer, and where each side's square root crosses k + 1/2 at that area."""
    n = grid[0] * grid[1]
    (s0, s1), (a0, a1) = scale, aspect
    u_of_scale = lambda s: (s - s0) / (s1 - s0) if s1 > s0 else 0.0
    u_of_aspect = lambda a: (a - a0) / (a1 - a0) if a1 > a0 else 0.0
    breakpoints = []
    for m in range(int(n * s0), int(n * s1) + 2):
        breakpoints.append(u_of_scale(m / n))
        if m == 0:
            continue
        half = np.arange(int(math.isqrt(int(m * max(a1, 1 / a0)))) + 3) + 0.5
        breakpoints += [u_of_aspect(a) for a in np.concatenate([half ** 2 / m, m / half ** 2])]
    u_points = _pieces(0.0, 1.0, breakpoints) if (s0, a0) != (s1, a1) else [0.0]
    return max(math.prod(block_size(u, scale, aspect, grid)) for u in u_points)

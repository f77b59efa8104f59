"""Point-cloud geometry on the device: farthest point sampling, k-nearest neighbours, patch
grouping and the nearest-neighbour sequence of patch centres.

All functions are batched over a leading axis, jit-able and free of Python loops over points
(the sequential parts are ``lax.fori_loop`` over the *number of centres*, each iteration a
vectorised pass over all points). Distances are exact squared differences, not the
``|a|^2 + |b|^2 - 2ab`` expansion, so neighbour ranks match a k-d tree's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def squared_distances(a, b):
    """(B, M, 3), (B, N, 3) -> (B, M, N) squared Euclidean distances."""
    return jnp.sum((a[:, :, None, :] - b[:, None, :, :]) ** 2, axis=-1)


def farthest_point_sample(points, num: int, start: int = 0):
    """Indices (B, num) of `num` points picked greedily, each the farthest from those picked
    before; the first is `start`. Deterministic (ties go to the lowest index). The data
    pipeline shuffles each cloud's points, so a fixed start is a random point of the shape."""
    b, n, _ = points.shape
    first = jnp.full((b,), start, jnp.int32)
    chosen = jnp.zeros((b, num), jnp.int32).at[:, 0].set(first)

    def pick(i, carry):
        chosen, nearest, last = carry
        last_point = jnp.take_along_axis(points, last[:, None, None], axis=1)  # (B, 1, 3)
        nearest = jnp.minimum(nearest, jnp.sum((points - last_point) ** 2, axis=-1))
        last = jnp.argmax(nearest, axis=1).astype(jnp.int32)
        return chosen.at[:, i].set(last), nearest, last

    init = (chosen, jnp.full((b, n), jnp.inf, points.dtype), first)
    return jax.lax.fori_loop(1, num, pick, init)[0]


def knn_indices(queries, points, k: int):
    """(B, M, 3) queries, (B, N, 3) points -> (B, M, k) indices of each query's k nearest
    points, nearest first."""
    return jax.lax.top_k(-squared_distances(queries, points), k)[1]


def gather_points(points, idx):
    """points (B, N, C), idx (B, ...) -> (B, ..., C)."""
    flat = idx.reshape(idx.shape[0], -1)
    out = jnp.take_along_axis(points, flat[..., None], axis=1)
    return out.reshape(*idx.shape, points.shape[-1])


def group_points(points, num_groups: int, group_size: int):
    """Patches of a cloud: FPS centres (B, G, 3) and each centre's `group_size` nearest points
    expressed relative to it (B, G, K, 3)."""
    centres = gather_points(points, farthest_point_sample(points, num_groups))
    groups = gather_points(points, knn_indices(centres, points, group_size))
    return groups - centres[:, :, None, :], centres


def nearest_neighbour_order(centres):
    """Point-JEPA's sequencer: (B, G) order of the centres that starts at the one with the
    smallest x + y + z and repeatedly moves to the nearest centre not yet visited, so that
    neighbours in the sequence are neighbours in space."""
    b, g, _ = centres.shape
    dist = squared_distances(centres, centres)
    first = jnp.argmin(centres.sum(-1), axis=1).astype(jnp.int32)
    order = jnp.zeros((b, g), jnp.int32).at[:, 0].set(first)
    visited = jax.nn.one_hot(first, g, dtype=bool)

    def step(i, carry):
        order, visited, last = carry
        row = jnp.take_along_axis(dist, last[:, None, None], axis=1)[:, 0]  # (B, G)
        last = jnp.argmin(jnp.where(visited, jnp.inf, row), axis=1).astype(jnp.int32)
        return order.at[:, i].set(last), visited | jax.nn.one_hot(last, g, dtype=bool), last

    return jax.lax.fori_loop(1, g, step, (order, visited, first))[0]

"""PWC-Net-style coarse-to-fine optical flow (Sun et al., 2018) on a feature pyramid, as pure
functions of parameter dicts, channels last. Flow is (dx, dy) in pixels of its level.

At each level, coarsest first: upsample the coarser flow (x2 in size and value), warp the
second frame's features with it (bilinear sampling), correlate the first frame's features with
the warped ones over a (2r+1)^2 neighbourhood (the local cost volume), and let a small CNN
predict a residual flow from [cost volume, first-frame features, upsampled flow].
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def warp(x, flow):
    """Sample x (B, H, W, C) at p + flow(p) with bilinear interpolation; zeros outside.
    Returns (warped, inside): inside (B, H, W) is 1 where p + flow(p) lies in the image.
    The four neighbours come from one gather (a third of the compile time of four)."""
    b, h, w, c = x.shape
    gy, gx = jnp.meshgrid(jnp.arange(h, dtype=flow.dtype), jnp.arange(w, dtype=flow.dtype),
                          indexing="ij")
    px, py = gx + flow[..., 0], gy + flow[..., 1]
    cx = jnp.floor(px)[..., None] + jnp.array([0.0, 1.0, 0.0, 1.0], flow.dtype)
    cy = jnp.floor(py)[..., None] + jnp.array([0.0, 0.0, 1.0, 1.0], flow.dtype)
    weight = (1 - jnp.abs(px[..., None] - cx)) * (1 - jnp.abs(py[..., None] - cy))
    ok = (cx >= 0) & (cx <= w - 1) & (cy >= 0) & (cy <= h - 1)
    index = (jnp.clip(cy, 0, h - 1) * w + jnp.clip(cx, 0, w - 1)).astype(jnp.int32)
    index = index + (jnp.arange(b, dtype=jnp.int32) * h * w)[:, None, None, None]
    values = x.reshape(b * h * w, c)[index.reshape(-1)].reshape(b, h, w, 4, c)
    out = jnp.sum((weight * ok)[..., None] * values, axis=-2)
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    return out, inside.astype(x.dtype)


def correlation(a, b, radius: int):
    """Local cost volume: out[..., k] = mean over channels of a(p) * b(p + d_k), for the
    (2r+1)^2 displacements d_k = (dy, dx) in row-major order, b zero outside the image."""
    _, h, w, c = a.shape
    padded = jnp.pad(b, ((0, 0), (radius, radius), (radius, radius), (0, 0)))
    return jnp.stack([jnp.mean(a * padded[:, dy:dy + h, dx:dx + w], -1)
                      for dy in range(2 * radius + 1) for dx in range(2 * radius + 1)], -1)


def upsample(flow, factor: int):
    """Bilinear resize of a flow field by `factor`, its values scaled to the new pixels."""
    b, h, w, _ = flow.shape
    return factor * jax.image.resize(flow, (b, h * factor, w * factor, 2), "linear")


def _leaky(x):
    return jnp.where(x > 0, x, 0.1 * x)


def init_decoder(key, feature_dims, *, radius: int, hidden) -> dict:
    """One estimator per level (feature_dims finest first): 3x3 convolutions `hidden` -> 2,
    He-initialised; the last layer starts small so the first flows are near zero."""
    levels = {}
    for level, (dim, k) in enumerate(zip(feature_dims, jax.random.split(key, len(feature_dims)))):
        widths = [(2 * radius + 1) ** 2 + dim + 2, *hidden, 2]
        keys = jax.random.split(k, len(widths) - 1)
        layers = {}
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            std = math.sqrt(2.0 / (9 * c_in)) * (0.1 if i == len(widths) - 2 else 1.0)
            layers[f"conv{i}"] = {"kernel": std * jax.random.normal(keys[i], (3, 3, c_in, c_out)),
                                  "bias": jnp.zeros(c_out)}
        levels[f"level{level}"] = layers
    return levels


def _estimate(layers, x):
    n = len(layers)
    for i in range(n):
        p = layers[f"conv{i}"]
        x = jax.lax.conv_general_dilated(x, p["kernel"], (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["bias"]
        if i < n - 1:
            x = _leaky(x)
    return x


def decode(params, first, second, *, radius: int) -> list:
    """Feature pyramids of frame 1 and frame 2 (finest first) -> flow at every level
    (finest first), each (B, H_l, W_l, 2) in pixels of level l."""
    flows = [None] * len(first)
    flow = None
    for level in reversed(range(len(first))):
        f1, f2 = first[level], second[level]
        if flow is None:  # the coarsest level: nothing to warp by yet
            flow, warped = jnp.zeros((*f1.shape[:3], 2), f1.dtype), f2
        else:
            flow = upsample(flow, 2)
            warped, _ = warp(f2, flow)
        x = jnp.concatenate([correlation(f1, warped, radius), f1, flow], -1)
        flow = flow + _estimate(params[f"level{level}"], x)
        flows[level] = flow
    return flows


def decoder_flops(height: int, width: int, feature_dims, *, radius: int, hidden) -> float:
    """Forward FLOPs of the estimators and cost volumes for one frame pair at the pyramid's
    finest resolution (height, width)."""
    total = 0.0
    for level, dim in enumerate(feature_dims):
        pixels = (height >> level) * (width >> level)
        widths = [(2 * radius + 1) ** 2 + dim + 2, *hidden, 2]
        total += sum(2.0 * pixels * 9 * a * b for a, b in zip(widths[:-1], widths[1:]))
        total += 2.0 * pixels * dim * (2 * radius + 1) ** 2
    return total

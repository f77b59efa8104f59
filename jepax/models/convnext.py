"""ConvNeXt (Liu et al., 2022) as pure functions of parameter dicts, channels last, returning
the feature pyramid: the output of every stage, finest first.

* stem: a `stem` x `stem` convolution with stride `stem` + LayerNorm;
* stage i > 0 starts with LayerNorm + a 2x2 stride-2 convolution (the resolution halves);
* block: 7x7 depthwise convolution -> LayerNorm -> Linear(4C) -> GELU -> Linear(C) -> layer
  scale (init `layer_scale`) -> residual;
* weights: truncated normal, std 0.02; biases zero (the ConvNeXt initialisation).

ConvNeXt-T: depths (3, 3, 9, 3), dims (96, 192, 384, 768), stem 4.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jepax.models.layers import gelu

CONVNEXT_T = dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), stem=4)
KERNEL = 7


def _normal(key, shape, std=0.02):
    return std * jax.random.truncated_normal(key, -2.0, 2.0, shape, jnp.float32)


def _norm(dim):
    return {"scale": jnp.ones(dim), "bias": jnp.zeros(dim)}


def layer_norm(p, x, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def conv(p, x, stride: int = 1, groups: int = 1, padding="SAME"):
    """NHWC convolution with an HWIO kernel and a bias."""
    y = jax.lax.conv_general_dilated(x, p["kernel"], (stride, stride), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     feature_group_count=groups)
    return y + p["bias"]


def _conv_init(key, k, c_in, c_out):
    return {"kernel": _normal(key, (k, k, c_in, c_out)), "bias": jnp.zeros(c_out)}


def _block_init(key, dim, layer_scale):
    k1, k2, k3 = jax.random.split(key, 3)
    return {"dw": _conv_init(k1, KERNEL, 1, dim), "norm": _norm(dim),
            "pw1": {"kernel": _normal(k2, (dim, 4 * dim)), "bias": jnp.zeros(4 * dim)},
            "pw2": {"kernel": _normal(k3, (4 * dim, dim)), "bias": jnp.zeros(dim)},
            "gamma": jnp.full(dim, layer_scale)}


def init(key, *, depths, dims, stem: int, in_channels: int = 3, layer_scale: float = 1e-6):
    keys = iter(jax.random.split(key, 2 + len(depths) + sum(depths)))
    params = {"stem": {**_conv_init(next(keys), stem, in_channels, dims[0]), "norm": _norm(dims[0])}}
    for i, (depth, dim) in enumerate(zip(depths, dims)):
        stage = {f"block{j}": _block_init(next(keys), dim, layer_scale) for j in range(depth)}
        if i:
            stage["down"] = {"norm": _norm(dims[i - 1]), **_conv_init(next(keys), 2, dims[i - 1], dim)}
        params[f"stage{i}"] = stage
    return params


def block(p, x):
    y = conv(p["dw"], x, groups=x.shape[-1])
    y = layer_norm(p["norm"], y)
    y = gelu(y @ p["pw1"]["kernel"] + p["pw1"]["bias"]) @ p["pw2"]["kernel"] + p["pw2"]["bias"]
    return x + p["gamma"] * y


def pyramid(params, x) -> list:
    """(B, H, W, C_in) images -> [stage 0 features (B, H/stem, W/stem, dims[0]), ...,
    stage L-1 features (B, H/(stem 2^(L-1)), ..., dims[L-1])]."""
    stem = params["stem"]
    x = layer_norm(stem["norm"], conv(stem, x, stride=stem["kernel"].shape[0], padding="VALID"))
    levels = []
    for i in range(sum(k.startswith("stage") for k in params)):
        stage = params[f"stage{i}"]
        if "down" in stage:
            x = conv(stage["down"], layer_norm(stage["down"]["norm"], x), stride=2, padding="VALID")
        for j in range(sum(k.startswith("block") for k in stage)):
            x = block(stage[f"block{j}"], x)
        levels.append(x)
    return levels


def flops(height: int, width: int, *, depths, dims, stem: int, in_channels: int = 3) -> float:
    """Forward FLOPs of one image (2 per multiply-add; convolutions and linears)."""
    h, w = height // stem, width // stem
    total = 2.0 * h * w * stem * stem * in_channels * dims[0]
    for i, (depth, dim) in enumerate(zip(depths, dims)):
        if i:
            h, w = h // 2, w // 2
            total += 2.0 * h * w * 4 * dims[i - 1] * dim
        total += depth * 2.0 * h * w * (KERNEL * KERNEL * dim + 8 * dim * dim)
    return total

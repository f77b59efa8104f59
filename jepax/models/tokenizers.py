"""Tokenizers: turn raw inputs into token sequences (image patches on a grid, point-cloud
patches around sampled centres).

A tokenizer has two halves: ``split(inputs) -> (B, N, F)`` raw per-token features (no
parameters) and ``embed(tokens) -> (B, N, D)``. Encoders select the kept tokens *between* the
halves, so masked tokens are never embedded and the backward pass has no scatter.

The table tokenizer (:class:`FeatureTokenizer`) is the exception: every feature has its own
parameters, so it embeds the whole row (a handful of tokens) and the encoder selects after."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from einops import rearrange
from flax import nnx

from jepax.models.layers import deferred_normal, dense_init, layer_norm, zeros
from jepax.models.point_ops import group_points


class PatchEmbed(nnx.Module):
    """Non-overlapping p x p patches -> linear projection (a conv with stride = kernel = p)."""

    def __init__(self, patch_size: int, channels: int, dim: int, *, dtype, rngs: nnx.Rngs):
        self.patch_size = patch_size
        self.proj = nnx.Linear(patch_size * patch_size * channels, dim, dtype=dtype,
                               kernel_init=dense_init(None, "embed"), bias_init=zeros("embed"),
                               rngs=rngs)

    def split(self, images):
        """(B, H, W, C) -> (B, H/p * W/p, p*p*C) flattened patches in row-major order."""
        p = self.patch_size
        return rearrange(images, "b (h p) (w q) c -> b (h w) (p q c)", p=p, q=p)

    def embed(self, patches):
        return self.proj(patches)

    def __call__(self, images):
        return self.embed(self.split(images))


class TubeletEmbed(nnx.Module):
    """Video (B, T, H, W, C) -> non-overlapping tubelets of `frames` x p x p (V-JEPA's Conv3d
    with kernel = stride = (frames, p, p)), token order (t, h, w) row-major -> linear projection."""

    def __init__(self, frames: int, patch_size: int, channels: int, dim: int, *, dtype,
                 rngs: nnx.Rngs):
        self.frames, self.patch_size = frames, patch_size
        self.proj = nnx.Linear(frames * patch_size * patch_size * channels, dim, dtype=dtype,
                               kernel_init=dense_init(None, "embed"), bias_init=zeros("embed"),
                               rngs=rngs)

    def split(self, video):
        """(B, T, H, W, C) -> (B, T/f * H/p * W/p, f*p*p*C)."""
        p = self.patch_size
        return rearrange(video, "b (t f) (h p) (w q) c -> b (t h w) (f p q c)", f=self.frames,
                         p=p, q=p)

    def embed(self, tubelets):
        return self.proj(tubelets)


class RoiPatches(nnx.Module):
    """fMRI (B, ROI, T) -> (B, ROI * T/p, p) non-overlapping time patches, ROI-major (token =
    roi * T/p + t) -> linear projection (Brain-JEPA's Conv2d with kernel and stride (1, p))."""

    def __init__(self, patch: int, dim: int, *, dtype, rngs: nnx.Rngs, init_std: float = 0.02):
        self.patch = patch
        self.proj = nnx.Linear(patch, dim, dtype=dtype,
                               kernel_init=dense_init(None, "embed", scale=init_std / 0.02),
                               bias_init=zeros("embed"), rngs=rngs)

    def split(self, bold):
        return rearrange(bold, "b r (t p) -> b (r t) p", p=self.patch)

    def embed(self, patches):
        return self.proj(patches)
class PointPatchEmbed(nnx.Module):
    """Point-cloud patches (Point-BERT / Point-MAE / Point-JEPA tokenizer).

    ``split``: farthest point sampling picks `num_groups` patch centres and each centre's
    `group_size` nearest points, expressed relative to the centre (jepax.models.point_ops);
    ``embed``: a mini-PointNet per patch: a shared per-point MLP (3 -> h1 -> h2), max-pool,
    the pooled feature concatenated to every point, a second shared MLP (2 h2 -> h3 -> dim) and
    a max-pool. The reference uses BatchNorm inside the MLPs; here it is LayerNorm over the
    channels (the train loop keeps no running statistics, and a patch's token then does not
    depend on the other clouds in its batch). `norm='frozen_batch'`: a per-channel scale and
    bias instead, what a BatchNorm computes at inference (the reference's converted weights)."""

    NORMS = ("layer", "frozen_batch")

    def __init__(self, num_groups: int, group_size: int, dim: int, hidden=(128, 256, 512), *,
                 dtype, rngs: nnx.Rngs, norm: str = "layer"):
        h1, h2, h3 = hidden
        self.num_groups, self.group_size = num_groups, group_size
        dense = lambda i, o, bias=True: nnx.Linear(
            i, o, use_bias=bias, dtype=dtype, kernel_init=dense_init(None, None),
            bias_init=zeros(None), rngs=rngs)
        self.fc1, self.fc2 = dense(3, h1, bias=False), dense(h1, h2)
        self.fc3, self.fc4 = dense(2 * h2, h3, bias=False), dense(h3, dim)
        make_norm = layer_norm if norm == "layer" else ChannelAffine
        self.norm1 = make_norm(h1, dtype=dtype, rngs=rngs)
        self.norm2 = make_norm(h3, dtype=dtype, rngs=rngs)

    def split(self, points):
        """(B, N, 3) -> patches (B, G, K, 3) relative to their centres, centres (B, G, 3)."""
        return group_points(points, self.num_groups, self.group_size)

    def embed(self, groups):
        """(B, G, K, 3) -> (B, G, dim)."""
        x = self.fc2(nnx.relu(self.norm1(self.fc1(groups))))
        pooled = jnp.broadcast_to(x.max(axis=-2, keepdims=True), x.shape)
        x = self.fc4(nnx.relu(self.norm2(self.fc3(jnp.concatenate([pooled, x], axis=-1)))))
        return x.max(axis=-2)

    def __call__(self, points):
        """(B, N, 3) -> tokens (B, G, dim), centres (B, G, 3)."""
        groups, centres = self.split(points)
        return self.embed(groups), centres


class ChannelAffine(nnx.Module):
    """x * scale + bias per channel (a BatchNorm frozen at its running statistics, folded)."""

    def __init__(self, dim: int, *, dtype, rngs: nnx.Rngs):
        ones = nnx.with_partitioning(nnx.initializers.ones_init(), ("norm",))
        self.scale = nnx.Param(ones(rngs.params(), (dim,), jnp.float32))
        self.bias = nnx.Param(zeros("norm")(rngs.params(), (dim,), jnp.float32))
        self.dtype = dtype

    def __call__(self, x):
        return x * self.scale[...].astype(self.dtype) + self.bias[...].astype(self.dtype)


def _symmetric_uniform(*names, bound: float):
    """U(-bound, bound): torch's kaiming_uniform(a=sqrt(5)) on a (n, dim) tensor has bound
    1/sqrt(dim), the FT-Transformer tokenizer's init."""
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return nnx.with_partitioning(init, names)


class FeatureTokenizer(nnx.Module):
    """One token per table feature (FT-Transformer style), after ``n_reg`` learned [REG] tokens:

    * numerical feature j (MinMax-scaled value x): ``x * W[j] + b[j]``;
    * categorical feature j (label code c): ``E_j[c] + b[j]``, one embedding table per feature
      (stored as one table with per-feature offsets, so the lookup is a single gather);
    * [REG] token r: a learned vector (T-JEPA's code makes it a numerical token of constant
      input 1 with no bias, which is the same thing).

    Output order: [REG..., numerical..., categorical...], shape (B, n_reg + n_num + n_cat, dim).
    """

    def __init__(self, n_numerical: int, cardinalities: tuple[int, ...], dim: int, *,
                 n_reg: int = 1, dtype=jnp.float32, rngs: nnx.Rngs):
        self.n_numerical, self.n_reg = n_numerical, n_reg
        self.cardinalities = tuple(int(c) for c in cardinalities)
        self.offsets = tuple(int(o) for o in np.cumsum((0,) + self.cardinalities[:-1]))
        self.dtype = dtype
        uniform = _symmetric_uniform(None, "embed", bound=dim ** -0.5)
        param = lambda init, rows: nnx.Param(init(rngs.params(), (rows, dim), jnp.float32))
        self.reg = param(uniform, n_reg) if n_reg else None
        self.num_weight = param(uniform, n_numerical) if n_numerical else None
        self.num_bias = param(uniform, n_numerical) if n_numerical else None
        if self.cardinalities:
            table = deferred_normal(None, "embed", std=0.02)
            self.cat_table = param(table, sum(self.cardinalities))
            self.cat_bias = param(uniform, len(self.cardinalities))
        else:
            self.cat_table = self.cat_bias = None

    @property
    def n_tokens(self) -> int:
        return self.n_reg + self.n_numerical + len(self.cardinalities)

    def __call__(self, numerical, categorical):
        """numerical (B, n_num) float, categorical (B, n_cat) int codes -> (B, n_tokens, dim)."""
        batch = numerical.shape[0]
        parts = []
        if self.reg is not None:
            parts.append(jnp.broadcast_to(self.reg[...], (batch,) + self.reg.shape))
        if self.num_weight is not None:
            x = numerical.astype(jnp.float32)[..., None]
            parts.append(x * self.num_weight[...] + self.num_bias[...])
        if self.cat_table is not None:
            codes = categorical.astype(jnp.int32) + jnp.asarray(self.offsets, jnp.int32)
            parts.append(self.cat_table[...][codes] + self.cat_bias[...])
        return jnp.concatenate(parts, axis=1).astype(self.dtype)

"""Tokenizers: turn raw inputs into token sequences (image patches on a grid, point-cloud
patches around sampled centres).

A tokenizer has two halves: ``split(inputs) -> (B, N, F)`` raw per-token features (no
parameters) and ``embed(tokens) -> (B, N, D)``. Encoders select the kept tokens *between* the
halves, so masked tokens are never embedded and the backward pass has no scatter."""

from __future__ import annotations

import jax.numpy as jnp
from einops import rearrange
from flax import nnx

from jepax.models.layers import dense_init, layer_norm, zeros
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


class PointPatchEmbed(nnx.Module):
    """Point-cloud patches (Point-BERT / Point-MAE / Point-JEPA tokenizer).

    ``split``: farthest point sampling picks `num_groups` patch centres and each centre's
    `group_size` nearest points, expressed relative to the centre (jepax.models.point_ops);
    ``embed``: a mini-PointNet per patch: a shared per-point MLP (3 -> h1 -> h2), max-pool,
    the pooled feature concatenated to every point, a second shared MLP (2 h2 -> h3 -> dim) and
    a max-pool. The reference uses BatchNorm inside the MLPs; here it is LayerNorm over the
    channels (the train loop keeps no running statistics, and a patch's token then does not
    depend on the other clouds in its batch)."""

    def __init__(self, num_groups: int, group_size: int, dim: int, hidden=(128, 256, 512), *,
                 dtype, rngs: nnx.Rngs):
        h1, h2, h3 = hidden
        self.num_groups, self.group_size = num_groups, group_size
        dense = lambda i, o, bias=True: nnx.Linear(
            i, o, use_bias=bias, dtype=dtype, kernel_init=dense_init(None, None),
            bias_init=zeros(None), rngs=rngs)
        self.fc1, self.fc2 = dense(3, h1, bias=False), dense(h1, h2)
        self.fc3, self.fc4 = dense(2 * h2, h3, bias=False), dense(h3, dim)
        self.norm1 = layer_norm(h1, dtype=dtype, rngs=rngs)
        self.norm2 = layer_norm(h3, dtype=dtype, rngs=rngs)

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

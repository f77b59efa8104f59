"""Tokenizers: turn raw inputs into token sequences on a known grid.

A tokenizer has two halves: ``split(inputs) -> (B, N, F)`` raw per-token features (no
parameters) and ``embed(tokens) -> (B, N, D)``. Encoders select the kept tokens *between* the
halves, so masked tokens are never embedded and the backward pass has no scatter."""

from __future__ import annotations

from einops import rearrange
from flax import nnx

from jepax.models.layers import dense_init, zeros


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

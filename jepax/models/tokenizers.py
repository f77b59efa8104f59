"""Tokenizers: turn raw inputs into token sequences on a known grid."""

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

    def __call__(self, images):
        """(B, H, W, C) -> (B, H/p * W/p, dim), patches in row-major order."""
        p = self.patch_size
        patches = rearrange(images, "b (h p) (w q) c -> b (h w) (p q c)", p=p, q=p)
        return self.proj(patches)

"""Text transformer and text-to-image cross-attention.

* :class:`TextEncoder`: word embedding + fixed 1-D sin-cos positions + pre-LN transformer whose
  attention ignores padding; (B, L) word ids -> (B, L, D).
* :class:`Crosser`: TI-JEPA's fusion module. Image tokens (queries) attend to text tokens (keys
  and values, padding masked); each block is x + cross_attn(ln(x), ln(text)), then
  x + mlp(ln(x)); a final LayerNorm. Image and text widths are projected to the crosser's width
  first, as the official ``x_t2i_module`` does.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jepax.models.layers import MLP, attention, dense_init, deferred_normal, layer_norm, zeros
from jepax.models.posemb import sincos_1d
from jepax.models.vit import Transformer
from jepax.sharding import constrain

PAD = 0  # word id of padding (data_pipelines.image_text)


def text_mask(tokens):
    """(B, L) bool: the real words. An empty caption keeps its first position, so attention
    over it stays defined."""
    valid = tokens != PAD
    return valid.at[:, 0].set(valid[:, 0] | ~valid.any(axis=1))


class TextEncoder(nnx.Module):
    def __init__(self, vocab_size: int, max_tokens: int, *, dim, depth, heads, mlp_ratio, dtype,
                 attention_impl, rngs):
        self.embed = nnx.Embed(vocab_size, dim, dtype=dtype, rngs=rngs,
                               embedding_init=deferred_normal(None, "embed", std=0.02))
        self.max_tokens, self.dim = max_tokens, dim
        self.transformer = Transformer(dim, depth, heads, mlp_ratio, dtype=dtype,
                                       attention_impl=attention_impl, rngs=rngs)

    def __call__(self, tokens):
        pos = jnp.asarray(sincos_1d(self.dim, np.arange(tokens.shape[1])))
        x = self.embed(tokens) + pos[None].astype(self.embed.dtype or jnp.float32)
        x = constrain(x, ("batch", "seq", None))
        return self.transformer(x, text_mask(tokens))


class CrossAttention(nnx.Module):
    """Multi-head attention of queries x (B, N, D) over keys/values t (B, L, D)."""

    def __init__(self, dim: int, heads: int, *, dtype, out_scale: float = 1.0, rngs):
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nnx.Linear(dim, dim, dtype=dtype, kernel_init=dense_init("embed", None),
                            bias_init=zeros(None), rngs=rngs)
        self.kv = nnx.Linear(dim, 2 * dim, dtype=dtype, kernel_init=dense_init("embed", None),
                             bias_init=zeros(None), rngs=rngs)
        self.proj = nnx.Linear(dim, dim, dtype=dtype,
                               kernel_init=dense_init(None, "embed", scale=out_scale),
                               bias_init=zeros("embed"), rngs=rngs)

    def __call__(self, x, t, key_mask):
        b, n, d = x.shape
        h = self.heads
        q = self.q(x).reshape(b, n, h, d // h)
        k, v = jnp.split(self.kv(t).reshape(b, t.shape[1], 2, h, d // h), 2, axis=2)
        out = attention(q, k[:, :, 0], v[:, :, 0], key_mask, "xla")
        return self.proj(out.reshape(b, n, d))


class CrossBlock(nnx.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, *, layer_id: int, dtype, rngs):
        rescale = (2.0 * layer_id) ** -0.5  # as the ViT blocks (I-JEPA's fix_init_weight)
        self.norm_x = layer_norm(dim, dtype=dtype, rngs=rngs)
        self.norm_t = layer_norm(dim, dtype=dtype, rngs=rngs)
        self.attn = CrossAttention(dim, heads, dtype=dtype, out_scale=rescale, rngs=rngs)
        self.norm2 = layer_norm(dim, dtype=dtype, rngs=rngs)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dtype=dtype, out_scale=rescale, rngs=rngs)

    def __call__(self, x, t, key_mask):
        x = x + self.attn(self.norm_x(x), self.norm_t(t), key_mask)
        x = x + self.mlp(self.norm2(x))
        return constrain(x, ("batch", "seq", None))


class Crosser(nnx.Module):
    def __init__(self, image_dim: int, text_dim: int, *, dim, depth, heads, mlp_ratio, dtype,
                 rngs):
        self.image_in = nnx.Linear(image_dim, dim, dtype=dtype, rngs=rngs,
                                   kernel_init=dense_init(None, "embed"), bias_init=zeros("embed"))
        self.text_in = nnx.Linear(text_dim, dim, dtype=dtype, rngs=rngs,
                                  kernel_init=dense_init(None, "embed"), bias_init=zeros("embed"))
        self.blocks = nnx.List([CrossBlock(dim, heads, mlp_ratio, layer_id=i + 1, dtype=dtype,
                                           rngs=rngs) for i in range(depth)])
        self.norm = layer_norm(dim, dtype=dtype, rngs=rngs)

    def __call__(self, image_tokens, text_tokens, text_valid):
        """(B, N, D_img) image tokens, (B, L, D_txt) text tokens, (B, L) bool -> (B, N, D)."""
        x, t = self.image_in(image_tokens), self.text_in(text_tokens)
        for block in self.blocks:
            x = block(x, t, text_valid)
        return self.norm(x)


class MLMHead(nnx.Module):
    """Masked-word prediction: LayerNorm'd features -> logits over the vocabulary."""

    def __init__(self, dim: int, vocab_size: int, *, dtype, rngs):
        self.out = nnx.Linear(dim, vocab_size, dtype=dtype, rngs=rngs,
                              kernel_init=dense_init("embed", None), bias_init=zeros(None))

    def __call__(self, x):
        return self.out(x)

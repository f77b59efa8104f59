"""A token-level transformer for the sequence studies: decoder-only (causal, the copying study)
or encoder-only (bidirectional, the arithmetic study), with any positional encoding of
``jepax.models.positions``.

Pre-LN blocks (x + attn(ln(x)), x + mlp(ln(x))), qkv and output projections with bias, exact
GELU MLP, a final LayerNorm and an untied linear head over the vocabulary. Attention is written
out (logits, bias, mask, softmax) so that every positional encoding is one visible term.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jepax.models import positions as pos
from jepax.models.layers import MLP, WEIGHT_STD, deferred_normal, dense_init, layer_norm, zeros
from jepax.models.posemb import sincos_1d


class PositionalAttention(nnx.Module):
    """Multi-head self-attention with the configured positional encoding."""

    def __init__(self, dim: int, heads: int, *, head_dim: int, encoding: str, causal: bool,
                 masked_heads: int, rpe_clip: int, out_scale: float, rngs):
        self.heads, self.head_dim = heads, head_dim
        self.encoding, self.causal = encoding, causal
        self.masked_heads, self.rpe_clip = masked_heads, rpe_clip
        if encoding == "rope" and head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
        if encoding == "hard_alibi" and not causal:
            raise ValueError("hard-ALiBi windows look back: use it in a causal decoder")
        self.qkv = nnx.Einsum("btd,dshk->sbhtk", (dim, 3, heads, self.head_dim),
                              (3, 1, heads, 1, self.head_dim),
                              kernel_init=dense_init("embed", None, "heads", "kv"),
                              bias_init=zeros(None, None, "heads", None, "kv"), rngs=rngs)
        self.proj = nnx.Einsum("bhtk,hkd->btd", (heads, self.head_dim, dim), (dim,),
                               kernel_init=dense_init("heads", "kv", "embed", scale=out_scale),
                               bias_init=zeros("embed"), rngs=rngs)
        if encoding in pos.RELATIVE:
            self.rpe = nnx.Param(jnp.zeros((2 * rpe_clip + 1, self.head_dim)),
                                 out_sharding=(None, "kv"), init_std=WEIGHT_STD)

    def logits(self, q, k):
        """(B, H, T, T) attention logits before masking, q and k already projected."""
        t = q.shape[2]
        scale = self.head_dim ** -0.5
        if self.encoding == "rope":
            angles = pos.rope_angles(t, self.head_dim)
            q, k = pos.rope(q, angles), pos.rope(k, angles)
        if self.encoding in pos.RELATIVE:
            index = pos.relative_index(t, t, self.rpe_clip)
            out = pos.relative_logits(q, k, self.rpe[...], index, self.encoding == "rpe_kq")
        else:
            out = jnp.einsum("bhik,bhjk->bhij", q, k)
        out = out * scale
        if self.encoding == "alibi":
            out = out + jnp.asarray(pos.alibi_bias(self.heads, t, self.causal), out.dtype)
        return out

    def allowed(self, t: int):
        """(H or 1, T, T) bool: which keys each query may see (None: all)."""
        mask = pos.causal_mask(t)[None] if self.causal else None
        if self.encoding == "hard_alibi":
            mask = mask & pos.hard_alibi_mask(self.heads, self.masked_heads, t)
        return mask

    def weights(self, q, k, key_mask=None):
        """(B, H, T, T) attention weights; key_mask: (B, T) bool (False: padding) or None."""
        logits = self.logits(q, k)
        allowed = self.allowed(q.shape[2])
        allowed = None if allowed is None else jnp.asarray(allowed)[None]
        if key_mask is not None:
            keys = key_mask[:, None, None, :]
            allowed = keys if allowed is None else allowed & keys
        if allowed is not None:
            logits = jnp.where(allowed, logits, jnp.finfo(logits.dtype).min)
        return jax.nn.softmax(logits, axis=-1)

    def __call__(self, x, key_mask=None):
        """x: (B, T, D) -> (B, T, D)."""
        q, k, v = self.qkv(x)
        return self.proj(jnp.einsum("bhij,bhjk->bhik", self.weights(q, k, key_mask), v))


class Block(nnx.Module):
    def __init__(self, dim, heads, mlp_ratio, *, layer_id, attention_kw, rngs):
        rescale = (2.0 * layer_id) ** -0.5  # GPT-2 style: residual projections / sqrt(2 depth)
        self.norm1 = layer_norm(dim, dtype=None, rngs=rngs)
        self.attn = PositionalAttention(dim, heads, out_scale=rescale, rngs=rngs, **attention_kw)
        self.norm2 = layer_norm(dim, dtype=None, rngs=rngs)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dtype=None, out_scale=rescale, rngs=rngs)

    def __call__(self, x, key_mask=None):
        x = x + self.attn(self.norm1(x), key_mask)
        return x + self.mlp(self.norm2(x))


class SequenceTransformer(nnx.Module):
    """tokens (B, T) int -> logits (B, T, vocab)."""

    def __init__(self, vocab: int, *, dim: int, depth: int, heads: int, encoding: str,
                 head_dim: int = 0, causal: bool = True, max_len: int = 0, masked_heads: int = 0,
                 rpe_clip: int = 16, mlp_ratio: float = 4.0, rngs):
        """head_dim 0: dim // heads (heads may also be wider than dim / heads)."""
        pos.check(encoding)
        if not head_dim and dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads {heads}; set head_dim")
        if encoding == "learned" and max_len <= 0:
            raise ValueError("learned positions need max_len > 0 (rows of the position table)")
        self.encoding, self.dim, self.max_len = encoding, dim, max_len
        self.embed = nnx.Embed(vocab, dim, embedding_init=deferred_normal(None, "embed",
                                                                           std=WEIGHT_STD),
                               rngs=rngs)
        if encoding == "learned":
            self.position_table = nnx.Param(jnp.zeros((max_len, dim)), out_sharding=(None, "embed"),
                                            init_std=WEIGHT_STD)
        attention_kw = dict(head_dim=head_dim or dim // heads, encoding=encoding, causal=causal,
                            masked_heads=masked_heads, rpe_clip=rpe_clip)
        self.blocks = nnx.List([Block(dim, heads, mlp_ratio, layer_id=i + 1,
                                      attention_kw=attention_kw, rngs=rngs)
                                for i in range(depth)])
        self.norm = layer_norm(dim, dtype=None, rngs=rngs)
        self.head = nnx.Linear(dim, vocab, kernel_init=dense_init("embed", None),
                               bias_init=zeros(None), rngs=rngs)

    def __call__(self, tokens, key_mask=None):
        x = self.embed(tokens)
        t = tokens.shape[1]
        if self.encoding == "learned":
            if t > self.max_len:
                raise ValueError(f"sequence of {t} tokens, but the learned position table has "
                                 f"{self.max_len} rows; raise model.max_len")
            x = x + self.position_table[:t]
        elif self.encoding == "sincos":
            x = x + jnp.asarray(sincos_1d(self.dim, np.arange(t)))
        for block in self.blocks:
            x = block(x, key_mask)
        return self.head(self.norm(x))

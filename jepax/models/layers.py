"""Transformer layers with logical sharding names on every parameter and activation.

Parameter logical axes: ``embed`` (model width), ``mlp`` (MLP hidden), ``heads`` and ``kv``
(attention heads and per-head width). Activation axes: ``batch``, ``seq``, ``act_heads``,
``act_mlp``. ``jepax.sharding`` maps them to mesh axes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jepax.sharding import constrain

# I-JEPA / timm init: truncated normal (std 0.02) weights, zero biases.
weight_init = nnx.initializers.truncated_normal(stddev=0.02)


def dense_init(*names):
    return nnx.with_partitioning(weight_init, names)


def zeros(*names):
    return nnx.with_partitioning(nnx.initializers.zeros_init(), names)


def layer_norm(dim: int, *, dtype, rngs: nnx.Rngs, eps: float = 1e-6) -> nnx.LayerNorm:
    return nnx.LayerNorm(dim, epsilon=eps, dtype=dtype, rngs=rngs,
                         scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("norm",)),
                         bias_init=zeros("norm"))


def attention(q, k, v, key_mask, implementation: str | None):
    """Scaled dot-product attention over (B, T, H, K) tensors; key_mask is (B, T) bool or None."""
    mask = None if key_mask is None else key_mask[:, None, None, :]
    if implementation == "einsum":
        # Explicit softmax(QK^T)V: on CPU XLA fuses this better than the generic path.
        scale = q.shape[-1] ** -0.5
        logits = jnp.einsum("bqhk,bthk->bhqt", q * scale, k)
        if mask is not None:
            logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
        return jnp.einsum("bhqt,bthk->bqhk", weights, v)
    impl = None if implementation in (None, "xla") else implementation
    return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation=impl)


class Attention(nnx.Module):
    """Multi-head self-attention with a fused qkv projection (with bias)."""

    def __init__(self, dim: int, heads: int, *, dtype, implementation: str | None, rngs: nnx.Rngs):
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads {heads}")
        head_dim = dim // heads
        self.implementation = implementation
        self.qkv = nnx.Einsum("btd,dshk->btshk", (dim, 3, heads, head_dim), (3, heads, head_dim),
                              dtype=dtype, kernel_init=dense_init("embed", None, "heads", "kv"),
                              bias_init=zeros(None, "heads", "kv"), rngs=rngs)
        self.proj = nnx.Einsum("bthk,hkd->btd", (heads, head_dim, dim), (dim,), dtype=dtype,
                               kernel_init=dense_init("heads", "kv", "embed"),
                               bias_init=zeros("embed"), rngs=rngs)

    def __call__(self, x, key_mask=None):
        qkv = self.qkv(x)
        q, k, v = (constrain(qkv[:, :, i], ("batch", "seq", "act_heads", None)) for i in range(3))
        out = attention(q, k, v, key_mask, self.implementation)
        return self.proj(out)


class MLP(nnx.Module):
    def __init__(self, dim: int, hidden: int, *, dtype, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(dim, hidden, dtype=dtype, kernel_init=dense_init("embed", "mlp"),
                              bias_init=zeros("mlp"), rngs=rngs)
        self.fc2 = nnx.Linear(hidden, dim, dtype=dtype, kernel_init=dense_init("mlp", "embed"),
                              bias_init=zeros("embed"), rngs=rngs)

    def __call__(self, x):
        h = constrain(self.fc1(x), ("batch", "seq", "act_mlp"))
        # Exact (erf) GELU, as torch.nn.GELU's default.
        return self.fc2(jax.nn.gelu(h, approximate=False))


class Block(nnx.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, *, layer_id: int, dtype,
                 attention_impl: str | None, rngs: nnx.Rngs):
        self.norm1 = layer_norm(dim, dtype=dtype, rngs=rngs)
        self.attn = Attention(dim, heads, dtype=dtype, implementation=attention_impl, rngs=rngs)
        self.norm2 = layer_norm(dim, dtype=dtype, rngs=rngs)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dtype=dtype, rngs=rngs)
        # I-JEPA's fix_init_weight: residual output projections scaled by 1/sqrt(2 * layer_id).
        rescale = (2.0 * layer_id) ** -0.5
        self.attn.proj.kernel[...] = self.attn.proj.kernel[...] * rescale
        self.mlp.fc2.kernel[...] = self.mlp.fc2.kernel[...] * rescale

    def __call__(self, x, key_mask=None):
        x = x + self.attn(self.norm1(x), key_mask)
        x = x + self.mlp(self.norm2(x))
        return constrain(x, ("batch", "seq", None))

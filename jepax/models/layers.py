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

# Compute dtypes a config may name (model.dtype); parameters stay float32.
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# I-JEPA / timm init: truncated normal (std 0.02) weights, zero biases.
WEIGHT_STD = 0.02


def dense_init(*names, scale: float = 1.0):
    """Truncated normal weights (std 0.02 * scale), drawn by `functional.draw_deferred`."""
    return deferred_normal(*names, std=WEIGHT_STD * scale)


def deferred_normal(*names, std: float):
    """Zeros now; `functional.draw_deferred` later fills every parameter marked with
    `init_std` from one truncated-normal draw per shape. One RNG kernel per parameter made
    the initializer the slowest program to compile (~4 s for the I-JEPA models on CPU)."""
    return nnx.with_partitioning(nnx.initializers.zeros_init(), names, init_std=std)


def zeros(*names):
    return nnx.with_partitioning(nnx.initializers.zeros_init(), names)


def layer_norm(dim: int, *, dtype, rngs: nnx.Rngs, eps: float = 1e-6) -> nnx.LayerNorm:
    return nnx.LayerNorm(dim, epsilon=eps, dtype=dtype, rngs=rngs,
                         scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("norm",)),
                         bias_init=zeros("norm"))


def normalize_features(x, eps=1e-5):
    """Parameter-free LayerNorm over the last axis, eps as torch's F.layer_norm (JEPA targets
    are normalized this way)."""
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


def gelu(x):
    """Exact GELU, x * Phi(x), written with erf as torch.nn.GELU does: XLA lowers erf to one
    polynomial that fuses with its neighbours, while jax.nn.gelu's erfc form splits into
    several loops on CPU."""
    return 0.5 * x * (1.0 + jax.lax.erf(x * (2.0 ** -0.5)))


ATTENTION_IMPLEMENTATIONS = ("auto", "einsum", "xla", "cudnn")


def resolve_attention(implementation: str | None) -> str:
    """'auto' picks the measured-faster path per backend: the heads-major einsum attention on
    CPU, jax.nn.dot_product_attention (XLA) elsewhere."""
    if implementation in (None, "auto"):
        return "einsum" if jax.default_backend() == "cpu" else "xla"
    if implementation not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"attention implementation {implementation!r}: use one of "
                         f"{ATTENTION_IMPLEMENTATIONS}")
    return implementation


def attention(q, k, v, key_mask, implementation: str | None):
    """Scaled dot-product attention over (B, T, H, K) tensors; key_mask is (B, T) bool or None."""
    mask = None if key_mask is None else key_mask[:, None, None, :]
    impl = None if implementation == "xla" else implementation
    return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation=impl)


@jax.custom_vjp
def softmax_attention(q, k, v, bias):
    """softmax(q k^T + bias) v over (G, T, K) tensors, G = batch * heads, with q already scaled
    by 1/sqrt(K); bias is (G, 1, T) additive (0, or the dtype's min for padded keys)."""
    return _softmax_attention_fwd(q, k, v, bias)[0]


def _softmax_attention_fwd(q, k, v, bias):
    logits = jnp.einsum("gqk,gtk->gqt", q, k) + bias
    weights = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("gqt,gtk->gqk", weights, v)
    return out, (q, k, v, weights, out)


def _softmax_attention_bwd(res, d_out):
    # The closed-form softmax gradient (as flash attention's backward): one pass over the
    # weights instead of differentiating max / exp / sum / divide separately.
    q, k, v, weights, out = res
    d_v = jnp.einsum("gqt,gqk->gtk", weights, d_out)
    d_weights = jnp.einsum("gqk,gtk->gqt", d_out, v)
    row = jnp.sum(d_out * out, axis=-1, keepdims=True)
    d_logits = weights * (d_weights - row)
    d_q = jnp.einsum("gqt,gtk->gqk", d_logits, k)
    d_k = jnp.einsum("gqt,gqk->gtk", d_logits, q)
    return d_q, d_k, d_v, None


softmax_attention.defvjp(_softmax_attention_fwd, _softmax_attention_bwd)


class Attention(nnx.Module):
    """Multi-head self-attention with a fused qkv projection (with bias).

    implementation "einsum" (the CPU path) projects straight into a heads-major (3, B, H, T, K)
    layout so the batched attention matmuls need no transposes, and uses the closed-form
    backward above; "xla" / "cudnn" go through jax.nn.dot_product_attention in (B, T, H, K)."""

    def __init__(self, dim: int, heads: int, *, dtype, implementation: str | None,
                 out_scale: float = 1.0, rngs: nnx.Rngs):
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads {heads}")
        head_dim = dim // heads
        self.implementation = resolve_attention(implementation)
        self.qkv = nnx.Einsum("btd,dshk->btshk", (dim, 3, heads, head_dim), (3, heads, head_dim),
                              dtype=dtype, kernel_init=dense_init("embed", None, "heads", "kv"),
                              bias_init=zeros(None, "heads", "kv"), rngs=rngs)
        self.proj = nnx.Einsum("bthk,hkd->btd", (heads, head_dim, dim), (dim,), dtype=dtype,
                               kernel_init=dense_init("heads", "kv", "embed", scale=out_scale),
                               bias_init=zeros("embed"), rngs=rngs)

    def __call__(self, x, key_mask=None, queries: int | None = None):
        """Attend over all tokens of x; with `queries`, only the last that many tokens ask
        (all still serve as keys and values) and only their outputs are returned."""
        if self.implementation == "einsum":
            return self._heads_major(x, key_mask, queries)
        qkv = self.qkv(x)
        q, k, v = (constrain(qkv[:, :, i], ("batch", "seq", "act_heads", None)) for i in range(3))
        if queries is not None:
            q = q[:, -queries:]
        out = attention(q, k, v, key_mask, self.implementation)
        return self.proj(out)

    def _heads_major(self, x, key_mask, queries):
        b, t, _ = x.shape
        _, _, h, kd = self.qkv.kernel.shape
        dtype = self.qkv.dtype or x.dtype
        # 1/sqrt(K) folded into the query projection: scaling the small weights is cheaper than
        # scaling the (G, T, T) logits, which the CPU's fused attention would materialize.
        scale = jnp.asarray([kd ** -0.5, 1.0, 1.0], dtype)
        kernel = self.qkv.kernel[...].astype(dtype) * scale[:, None, None]
        bias = self.qkv.bias[...].astype(dtype) * scale[:, None, None]
        qkv = jnp.einsum("btd,dshk->sbhtk", x.astype(dtype), kernel) + bias[:, None, :, None, :]
        q, k, v = (qkv[i].reshape(b * h, t, kd) for i in range(3))
        if queries is not None:
            q = q[:, -queries:]
        if key_mask is None:
            key_bias = jnp.zeros((b * h, 1, t), dtype)
        else:
            key_bias = jnp.where(key_mask, 0.0, jnp.finfo(dtype).min).astype(dtype)
            key_bias = jnp.repeat(key_bias[:, None, :], h, axis=0)
        out = softmax_attention(q, k, v, key_bias).reshape(b, h, q.shape[1], kd)
        proj_kernel = self.proj.kernel[...].astype(dtype)
        return jnp.einsum("bhtk,hkd->btd", out, proj_kernel) + self.proj.bias[...].astype(dtype)


class MLP(nnx.Module):
    def __init__(self, dim: int, hidden: int, *, dtype, out_scale: float = 1.0, rngs: nnx.Rngs,
                 activation=gelu):
        self.fc1 = nnx.Linear(dim, hidden, dtype=dtype, kernel_init=dense_init("embed", "mlp"),
                              bias_init=zeros("mlp"), rngs=rngs)
        self.fc2 = nnx.Linear(hidden, dim, dtype=dtype,
                              kernel_init=dense_init("mlp", "embed", scale=out_scale),
                              bias_init=zeros("embed"), rngs=rngs)
        self.activation = activation

    def __call__(self, x):
        h = constrain(self.fc1(x), ("batch", "seq", "act_mlp"))
        return self.fc2(self.activation(h))


class Block(nnx.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, *, layer_id: int, dtype,
                 attention_impl: str | None, rngs: nnx.Rngs, norm_eps: float = 1e-6):
        # I-JEPA's fix_init_weight: residual output projections scaled by 1/sqrt(2 * layer_id),
        # folded into their initializers (assigning to a Variable afterwards costs a trace each).
        rescale = (2.0 * layer_id) ** -0.5
        self.norm1 = layer_norm(dim, dtype=dtype, rngs=rngs, eps=norm_eps)
        self.attn = Attention(dim, heads, dtype=dtype, implementation=attention_impl,
                              out_scale=rescale, rngs=rngs)
        self.norm2 = layer_norm(dim, dtype=dtype, rngs=rngs, eps=norm_eps)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dtype=dtype, out_scale=rescale, rngs=rngs)

    def __call__(self, x, key_mask=None, queries: int | None = None):
        """With `queries`, only the last that many tokens are updated and returned."""
        attended = self.attn(self.norm1(x), key_mask, queries)
        x = (x if queries is None else x[:, -queries:]) + attended
        x = x + self.mlp(self.norm2(x))
        return constrain(x, ("batch", "seq", None))

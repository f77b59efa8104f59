"""A Mamba-style selective state-space language model (Gu & Dao, 2023).

Each block: x + mixer(norm(x)), where the mixer projects to two streams of width
E = expand * D, runs one through a causal depthwise convolution, SiLU and the selective scan,
gates it with SiLU of the other and projects back to D. The scan is input dependent: per token,
dt = softplus(W_dt (W x)) (E,), B and C (N,) are linear in the token, and with A = -exp(A_log)
(E, N) diagonal, per channel e and state n

    h_t = exp(dt_t A) * h_{t-1} + dt_t B_t x_t,        y_t = C_t . h_t + D x_t

(zero-order hold for A, Euler for B, as Mamba's reference). The recurrence is linear in h, so it
is computed for all t at once with ``jax.lax.associative_scan`` over (decay, input) pairs, in
O(log T) parallel depth; ``selective_scan_sequential`` is the same recurrence step by step
(``jax.lax.scan``), the reference for tests and benchmarks. ``scan="auto"`` picks the measured
faster of the two per backend, as ``layers.resolve_attention`` does: on CPU the step-by-step
scan (benchmarks/sequence_models.py: the associative scan's forward + backward was ~3-5x slower
on a 2-core CPU at the copying study's shapes, where there is no parallel hardware for its
log-depth to use and its extra passes over the (batch, T, E, N) tensor cost), elsewhere the
associative scan (O(log T) depth on GPU and TPU).

The recurrent state is E * N numbers per layer, whatever the sequence length: the fixed-size
memory that the copying study's argument is about.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jepax.models.layers import WEIGHT_STD, deferred_normal, dense_init, zeros


def _discretize(x, dt, a, b):
    """Per-token decay exp(dt A) and input dt B x, both (batch, T, E, N)."""
    decay = jnp.exp(dt[..., None] * a)
    inputs = (dt * x)[..., None] * b[:, :, None, :]
    return decay, inputs


def _combine(earlier, later):
    """Compose two affine maps h -> a h + b: first `earlier`, then `later`."""
    a1, b1 = earlier
    a2, b2 = later
    return a1 * a2, a2 * b1 + b2


def selective_scan(x, dt, a, b, c, d):
    """y (batch, T, E) of the selective SSM, all time steps in parallel.

    x, dt: (batch, T, E); a: (E, N); b, c: (batch, T, N); d: (E,)."""
    decay, inputs = _discretize(x, dt, a, b)
    _, h = jax.lax.associative_scan(_combine, (decay, inputs), axis=1)
    return jnp.einsum("bten,btn->bte", h, c) + d * x


def selective_scan_sequential(x, dt, a, b, c, d):
    """The same recurrence one time step after the other (lax.scan over T), from h_0 = 0."""
    def step(h, t):
        x_t, dt_t, b_t, c_t = t
        h = jnp.exp(dt_t[..., None] * a) * h + (dt_t * x_t)[..., None] * b_t[:, None, :]
        return h, jnp.einsum("ben,bn->be", h, c_t) + d * x_t

    h0 = jnp.zeros((x.shape[0], *a.shape), x.dtype)
    _, y = jax.lax.scan(step, h0, tuple(jnp.swapaxes(v, 0, 1) for v in (x, dt, b, c)))
    return jnp.swapaxes(y, 0, 1)


SCANS = ("auto", "associative", "sequential")


def resolve_scan(scan: str):
    """The scan function for 'associative' | 'sequential' | 'auto' (see the module doc)."""
    if scan == "auto":
        scan = "sequential" if jax.default_backend() == "cpu" else "associative"
    return selective_scan if scan == "associative" else selective_scan_sequential


DT_RANGE = (1e-3, 1e-1)


def _dt_bias(key, shape, dtype=jnp.float32):
    """Mamba's init: dt = softplus(bias) log-uniform in DT_RANGE at the start."""
    lo, hi = math.log(DT_RANGE[0]), math.log(DT_RANGE[1])
    dt = jnp.exp(jax.random.uniform(key, shape, dtype) * (hi - lo) + lo)
    return dt + jnp.log(-jnp.expm1(-dt))  # inverse of softplus


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        self.scale = nnx.Param(jnp.ones((dim,)), out_sharding=("norm",))
        self.eps = eps

    def __call__(self, x):
        return x * jax.lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + self.eps) * self.scale[...]


class SelectiveSSM(nnx.Module):
    """Mamba's mixer: in_proj -> (causal conv -> SiLU -> selective scan) * SiLU(gate) -> out."""

    def __init__(self, dim: int, *, state: int, expand: int, conv: int, dt_rank: int,
                 out_scale: float, scan: str, rngs):
        if scan not in SCANS:
            raise ValueError(f"scan={scan!r}: use one of {', '.join(SCANS)}")
        inner = expand * dim
        self.scan = scan
        self.dt_rank, self.state = dt_rank, state
        self.in_proj = nnx.Linear(dim, 2 * inner, use_bias=False,
                                  kernel_init=dense_init("embed", "mlp"), rngs=rngs)
        self.conv_kernel = nnx.Param(jnp.zeros((conv, inner)), out_sharding=(None, "mlp"),
                                     init_std=conv ** -0.5)
        self.conv_bias = nnx.Param(jnp.zeros((inner,)), out_sharding=("mlp",))
        self.x_proj = nnx.Linear(inner, dt_rank + 2 * state, use_bias=False,
                                 kernel_init=dense_init("mlp", None), rngs=rngs)
        self.dt_proj = nnx.Linear(dt_rank, inner, kernel_init=deferred_normal(
            None, "mlp", std=dt_rank ** -0.5), bias_init=nnx.with_partitioning(_dt_bias, ("mlp",)),
            rngs=rngs)
        # S4D-real init: A_n = -(n + 1) for every channel.
        self.a_log = nnx.Param(jnp.log(jnp.broadcast_to(jnp.arange(1, state + 1, dtype=jnp.float32),
                                                        (inner, state))),
                               out_sharding=("mlp", None))
        self.d = nnx.Param(jnp.ones((inner,)), out_sharding=("mlp",))
        self.out_proj = nnx.Linear(inner, dim, use_bias=False,
                                   kernel_init=dense_init("mlp", "embed", scale=out_scale),
                                   rngs=rngs)

    def __call__(self, x):
        u, gate = jnp.split(self.in_proj(x), 2, axis=-1)
        k = self.conv_kernel.shape[0]
        padded = jnp.pad(u, ((0, 0), (k - 1, 0), (0, 0)))  # causal: only past tokens
        u = sum(padded[:, i:i + u.shape[1]] * self.conv_kernel[i] for i in range(k))
        u = jax.nn.silu(u + self.conv_bias[...])
        dt, b, c = jnp.split(self.x_proj(u), [self.dt_rank, self.dt_rank + self.state], axis=-1)
        dt = jax.nn.softplus(self.dt_proj(dt))
        a = -jnp.exp(self.a_log[...])
        y = resolve_scan(self.scan)(u, dt, a, b, c, self.d[...])
        return self.out_proj(y * jax.nn.silu(gate))


class MambaLM(nnx.Module):
    """tokens (B, T) int -> logits (B, T, vocab): embedding, pre-norm residual mixer blocks,
    final RMSNorm, untied linear head."""

    def __init__(self, vocab: int, *, dim: int, depth: int, state: int = 16, expand: int = 2,
                 conv: int = 4, dt_rank: int = 0, scan: str = "auto", rngs):
        dt_rank = dt_rank or math.ceil(dim / 16)  # Mamba's "auto"
        self.embed = nnx.Embed(vocab, dim, embedding_init=deferred_normal(None, "embed",
                                                                           std=WEIGHT_STD),
                               rngs=rngs)
        self.norms = nnx.List([RMSNorm(dim) for _ in range(depth)])
        self.mixers = nnx.List([
            SelectiveSSM(dim, state=state, expand=expand, conv=conv, dt_rank=dt_rank,
                         out_scale=(2.0 * (i + 1)) ** -0.5, scan=scan, rngs=rngs)
            for i in range(depth)])
        self.norm = RMSNorm(dim)
        self.head = nnx.Linear(dim, vocab, kernel_init=dense_init("embed", None),
                               bias_init=zeros(None), rngs=rngs)

    def __call__(self, tokens, key_mask=None):
        del key_mask  # causal: padding only ever follows the tokens that matter
        x = self.embed(tokens)
        for norm, mixer in zip(self.norms, self.mixers):
            x = x + mixer(norm(x))
        return self.head(self.norm(x))

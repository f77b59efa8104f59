"""Tokenizers: turn raw inputs into token sequences on a known grid.

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

from jepax.models.layers import deferred_normal, dense_init, zeros


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

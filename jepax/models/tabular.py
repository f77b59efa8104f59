"""T-JEPA's table encoder and predictor (Thimonier et al., ICLR 2025, and its released code).

* encoder: [REG] + one token per feature (``tokenizers.FeatureTokenizer``), plus a fixed
  interleaved sin-cos embedding of the token index with base 100 (not 10000), added *before*
  the masked tokens are dropped; post-LN transformer blocks (``x = LN(x + attn(x))``,
  ``x = LN(x + mlp(x))``, ReLU MLP) and an output head LN -> linear -> LN;
* predictor: ``vit.Predictor`` (context embedded to the predictor width, one mask token per
  target at a fixed [sin | cos] position table of base 10000, every target set in one batched
  call) around the same post-LN stack, followed by one more LayerNorm, as the released code.

Dropout (the released code uses 0.002 after tuning) is left out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jepax.models.layers import MLP, Attention, dense_init, layer_norm, zeros
from jepax.models.posemb import sincos_1d
from jepax.models.tokenizers import FeatureTokenizer
from jepax.models.vit import Predictor, gather_tokens
from jepax.sharding import constrain

LN_EPS = 1e-5  # torch's TransformerEncoderLayer / LayerNorm default, as the released code


class PostLNBlock(nnx.Module):
    """torch.nn.TransformerEncoderLayer with norm_first=False: LN(x + attn(x)), LN(x + mlp(x))."""

    def __init__(self, dim: int, heads: int, hidden: int, *, dtype, attention_impl, rngs):
        self.attn = Attention(dim, heads, dtype=dtype, implementation=attention_impl, rngs=rngs)
        self.norm1 = layer_norm(dim, dtype=dtype, rngs=rngs, eps=LN_EPS)
        self.mlp = MLP(dim, hidden, dtype=dtype, rngs=rngs, activation=jax.nn.relu)
        self.norm2 = layer_norm(dim, dtype=dtype, rngs=rngs, eps=LN_EPS)

    def __call__(self, x, key_mask=None, queries: int | None = None):
        """With `queries`, only the last that many tokens are updated and returned."""
        attended = self.attn(x, key_mask, queries)
        x = self.norm1((x if queries is None else x[:, -queries:]) + attended)
        x = self.norm2(x + self.mlp(x))
        return constrain(x, ("batch", "seq", None))


class PostLNTransformer(nnx.Module):
    """T-JEPA's ``TabularEncoder`` stack: post-LN blocks, then LN -> linear -> LN per token
    (and with `final_norm` one more LN: the predictor's ``predictor_norm``)."""

    def __init__(self, dim: int, depth: int, heads: int, hidden: int, *, dtype, attention_impl,
                 rngs, final_norm: bool = False):
        self.blocks = nnx.List([
            PostLNBlock(dim, heads, hidden, dtype=dtype, attention_impl=attention_impl, rngs=rngs)
            for _ in range(depth)])
        self.head_norm1 = layer_norm(dim, dtype=dtype, rngs=rngs, eps=LN_EPS)
        self.head = nnx.Linear(dim, dim, dtype=dtype, kernel_init=dense_init("embed", None),
                               bias_init=zeros(None), rngs=rngs)
        self.head_norm2 = layer_norm(dim, dtype=dtype, rngs=rngs, eps=LN_EPS)
        self.final_norm = layer_norm(dim, dtype=dtype, rngs=rngs, eps=LN_EPS) if final_norm else None

    def __call__(self, x, key_mask=None, outputs: int | None = None):
        for i, block in enumerate(self.blocks):
            x = block(x, key_mask, outputs if i == len(self.blocks) - 1 else None)
        x = self.head_norm2(self.head(self.head_norm1(x)))
        return x if self.final_norm is None else self.final_norm(x)


class TableEncoder(nnx.Module):
    """Feature tokens + base-100 sin-cos positions -> (optionally keep some tokens) -> stack."""

    def __init__(self, tokenizer: FeatureTokenizer, *, dim, depth, heads, hidden, dtype,
                 attention_impl, rngs):
        self.tokenizer = tokenizer
        self.dim = dim
        self.transformer = PostLNTransformer(dim, depth, heads, hidden, dtype=dtype,
                                             attention_impl=attention_impl, rngs=rngs)

    def positions(self) -> np.ndarray:
        return sincos_1d(self.dim, np.arange(self.tokenizer.n_tokens), base=100.0, interleave=True)

    def __call__(self, numerical, categorical, keep_idx=None, keep_valid=None):
        """All tokens (B, n_tokens, dim), or only `keep_idx` (B, K) with validity (B, K)."""
        x = self.tokenizer(numerical, categorical)
        x = x + jnp.asarray(self.positions(), x.dtype)
        if keep_idx is not None:
            x = gather_tokens(x, keep_idx)
        return self.transformer(constrain(x, ("batch", "seq", None)), keep_valid)


def table_predictor(n_tokens: int, *, in_dim, dim, depth, heads, hidden, dtype, attention_impl,
                    rngs) -> Predictor:
    """T-JEPA's transformer predictor: the JEPA predictor over a 1-D grid of feature ids (its
    fixed [sin | cos] table, base 10000) with the post-LN stack and a final LayerNorm."""
    stack = PostLNTransformer(dim, depth, heads, hidden, dtype=dtype,
                              attention_impl=attention_impl, rngs=rngs, final_norm=True)
    return Predictor((n_tokens,), in_dim=in_dim, dim=dim, depth=0, heads=heads, mlp_ratio=1.0,
                     dtype=dtype, attention_impl=attention_impl, rngs=rngs, transformer=stack)

"""Transformers over point-cloud patch tokens: the encoder shared by Point-JEPA and 3D-JEPA,
the plain JEPA predictor and 3D-JEPA's context-aware decoder.

Point tokens have no grid: positions come from a small MLP of each patch centre's coordinates
(point2vec / Point-JEPA: 3 -> 128 -> width, GELU), and the predictors take the centres of the
context and target patches instead of grid indices.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jepax.models.layers import (WEIGHT_STD, Block, deferred_normal, dense_init, gelu,
                                 layer_norm, normalize_features, zeros)
from jepax.models.vit import Transformer, gather_tokens
from jepax.sharding import constrain


def _linear(d_in, d_out, *, dtype, rngs, names=(None, "embed")):
    return nnx.Linear(d_in, d_out, dtype=dtype, kernel_init=dense_init(*names),
                      bias_init=zeros(names[1]), rngs=rngs)


class PositionMLP(nnx.Module):
    """(..., 3) centre coordinates -> (..., dim): Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int = 128, *, dtype, rngs):
        self.fc1 = _linear(3, hidden, dtype=dtype, rngs=rngs, names=(None, None))
        self.fc2 = _linear(hidden, dim, dtype=dtype, rngs=rngs)

    def __call__(self, centres):
        return self.fc2(gelu(self.fc1(centres)))


def _queries(mask_token, pos, tgt_centres, dtype):
    """Mask token + position of every target patch, flattened to (B * M, T, dim)."""
    b, m, t, _ = tgt_centres.shape
    q = (mask_token[...] + pos(tgt_centres)).astype(dtype)
    return q.reshape(b * m, t, q.shape[-1])


def _repeat_blocks(x, m):
    """(B, ...) -> (B * M, ...): the context shared by every target block of its cloud."""
    return jnp.broadcast_to(x[:, None], (x.shape[0], m) + x.shape[1:]).reshape(
        (x.shape[0] * m,) + x.shape[1:])


class PointEncoder(nnx.Module):
    """Patch tokens (`PointPatchEmbed.embed`) + centre positions + pre-LN transformer.

    With `pos_every_layer` (Point-JEPA, point2vec) the position embedding is added to the
    tokens before every block, else once before the first (Point-MAE)."""

    def __init__(self, tokenizer: nnx.Module, *, dim, depth, heads, mlp_ratio, pos_hidden,
                 pos_every_layer: bool, dtype, attention_impl, rngs, norm_eps: float = 1e-6):
        self.tokenizer = tokenizer
        self.pos = PositionMLP(dim, pos_hidden, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([
            Block(dim, heads, mlp_ratio, layer_id=i + 1, dtype=dtype,
                  attention_impl=attention_impl, rngs=rngs, norm_eps=norm_eps)
            for i in range(depth)])
        self.norm = layer_norm(dim, dtype=dtype, rngs=rngs, eps=norm_eps)
        self.pos_every_layer = pos_every_layer

    def __call__(self, groups, centres, keep_idx=None, keep_valid=None, final_norm: bool = True,
                 average_last: int = 1):
        """groups (B, G, K, 3), centres (B, G, 3) -> (B, G, dim); with `keep_idx` (B, C) only
        those patches are embedded and encoded (validity `keep_valid`). `final_norm=False`
        returns the JEPA targets instead: the last block's output before the final LayerNorm,
        or with `average_last=k` > 1 the mean of the last k blocks' outputs, each normalized
        first (point2vec's and data2vec's multi-layer targets)."""
        if keep_idx is not None:
            groups = jnp.take_along_axis(groups, keep_idx[:, :, None, None], axis=1)
            centres = gather_tokens(centres, keep_idx)
        x = self.tokenizer.embed(groups)
        pos = self.pos(centres).astype(x.dtype)
        outputs = []
        for i, block in enumerate(self.blocks):
            if i == 0 or self.pos_every_layer:
                x = x + pos
            x = block(constrain(x, ("batch", "seq", None)), keep_valid)
            outputs.append(x)
        if final_norm:
            return self.norm(x)
        if average_last == 1:
            return x
        return sum(normalize_features(h.astype(jnp.float32))
                   for h in outputs[-average_last:]) / average_last


class PointPredictor(nnx.Module):
    """The plain JEPA predictor on point tokens: for each of M target blocks, a narrow
    transformer over [embedded context tokens + their positions ; a mask token + the position
    of every target patch]; all blocks run as one batch of B * M sequences."""

    def __init__(self, *, in_dim, dim, depth, heads, mlp_ratio, pos_hidden, dtype,
                 attention_impl, rngs, norm_eps: float = 1e-6):
        self.embed = _linear(in_dim, dim, dtype=dtype, rngs=rngs, names=("embed", None))
        self.mask_token = nnx.Param(deferred_normal(None, std=WEIGHT_STD)(rngs.params(), (dim,)))
        self.pos = PositionMLP(dim, pos_hidden, dtype=dtype, rngs=rngs)
        self.transformer = Transformer(dim, depth, heads, mlp_ratio, dtype=dtype,
                                       attention_impl=attention_impl, rngs=rngs,
                                       norm_eps=norm_eps)
        self.proj = _linear(dim, in_dim, dtype=dtype, rngs=rngs, names=(None, "embed"))

    def __call__(self, z, ctx_centres, ctx_valid, tgt_centres, tgt_valid):
        """z (B, C, in_dim), ctx_* (B, C[, 3]), tgt_* (B, M, T[, 3]) -> (B, M, T, in_dim)."""
        b, m, t, _ = tgt_centres.shape
        ctx = _repeat_blocks(self.embed(z) + self.pos(ctx_centres).astype(z.dtype), m)
        seq = jnp.concatenate([ctx, _queries(self.mask_token, self.pos, tgt_centres, z.dtype)], axis=1)
        valid = jnp.concatenate([_repeat_blocks(ctx_valid, m), tgt_valid.reshape(b * m, t)], 1)
        out = self.transformer(constrain(seq, ("batch", "seq", None)), valid, outputs=t)
        return self.proj(out).reshape(b, m, t, -1)


class ContextAwareDecoder(nnx.Module):
    """3D-JEPA's context-aware decoder, as designed here (the paper publishes no code; it says
    the context is "fed to the decoder continuously").

    Every layer l sees the encoder's context features afresh: its keys and values at the
    context positions are ``W_l z + pos(context centres)`` (a per-layer projection of the
    encoder output), and only the target queries (mask token + position) are carried from layer
    to layer and updated. A plain predictor instead embeds the context once and lets its layers
    rewrite it, so deep layers see context already mixed with the predictions."""

    def __init__(self, *, in_dim, dim, depth, heads, mlp_ratio, pos_hidden, dtype,
                 attention_impl, rngs, norm_eps: float = 1e-6):
        self.context = nnx.List([_linear(in_dim, dim, dtype=dtype, rngs=rngs,
                                         names=("embed", None)) for _ in range(depth)])
        self.blocks = nnx.List([
            Block(dim, heads, mlp_ratio, layer_id=i + 1, dtype=dtype,
                  attention_impl=attention_impl, rngs=rngs, norm_eps=norm_eps)
            for i in range(depth)])
        self.mask_token = nnx.Param(deferred_normal(None, std=WEIGHT_STD)(rngs.params(), (dim,)))
        self.pos = PositionMLP(dim, pos_hidden, dtype=dtype, rngs=rngs)
        self.norm = layer_norm(dim, dtype=dtype, rngs=rngs, eps=norm_eps)
        self.proj = _linear(dim, in_dim, dtype=dtype, rngs=rngs, names=(None, "embed"))

    def __call__(self, z, ctx_centres, ctx_valid, tgt_centres, tgt_valid):
        """Same arguments and output as :class:`PointPredictor`."""
        b, m, t, _ = tgt_centres.shape
        ctx_pos = self.pos(ctx_centres).astype(z.dtype)
        q = _queries(self.mask_token, self.pos, tgt_centres, z.dtype)
        valid = jnp.concatenate([_repeat_blocks(ctx_valid, m), tgt_valid.reshape(b * m, t)], 1)
        for project, block in zip(self.context, self.blocks):
            ctx = _repeat_blocks(project(z) + ctx_pos, m)
            q = block(constrain(jnp.concatenate([ctx, q], axis=1), ("batch", "seq", None)),
                      valid, queries=t)
        return self.proj(self.norm(q)).reshape(b, m, t, -1)

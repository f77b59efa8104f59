"""A small decoder-only language model that states an intent from video tokens (UI-JEPA's
decoder, scaled down): the video tokens enter through one linear projection as a prefix without
positions; learned positions go on the text tokens only; causal pre-LN blocks of the sequence
transformer (jepax/models/sequence_transformer.py) with no positional term of their own."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jepax.models.layers import WEIGHT_STD, deferred_normal, dense_init, layer_norm, zeros
from jepax.models.sequence_transformer import Block


class IntentDecoder(nnx.Module):
    """(video tokens (B, P, F), text tokens (B, L)) -> next-token logits (B, L, vocab) of the
    text positions."""

    def __init__(self, feature_dim: int, vocab: int, max_len: int, *, dim: int, depth: int,
                 heads: int, rngs: nnx.Rngs):
        self.project = nnx.Linear(feature_dim, dim, kernel_init=dense_init(None, "embed"),
                                  bias_init=zeros("embed"), rngs=rngs)
        self.embed = nnx.Embed(vocab, dim, embedding_init=deferred_normal(None, "embed", std=WEIGHT_STD),
                              rngs=rngs)
        self.positions = nnx.Param(jnp.zeros((max_len, dim)), init_std=WEIGHT_STD)
        attention_kw = dict(head_dim=dim // heads, encoding="nope", causal=True, masked_heads=0,
                            rpe_clip=0)
        self.blocks = nnx.List([Block(dim, heads, 4.0, layer_id=i + 1, attention_kw=attention_kw,
                                      rngs=rngs) for i in range(depth)])
        self.norm = layer_norm(dim, dtype=None, rngs=rngs)
        self.head = nnx.Linear(dim, vocab, kernel_init=dense_init("embed", None),
                               bias_init=zeros(None), rngs=rngs)

    def __call__(self, video_tokens, text):
        prefix = self.project(video_tokens)
        words = self.embed(text) + self.positions[:text.shape[1]]
        x = jnp.concatenate([prefix, words], axis=1)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, prefix.shape[1]:]))

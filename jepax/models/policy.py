"""Networks of an action-chunking policy with a JEPA branch (ACT-JEPA): an observation encoder
(task token + proprio token + CNN image tokens -> transformer) that also encodes sequences of
proprio states (the JEPA target), and decoders of learned queries attending to its tokens."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jepax.models.layers import WEIGHT_STD, Block, deferred_normal, dense_init, layer_norm, zeros
from jepax.models.posemb import Constant, sincos_1d, sincos_2d


def _linear(d_in, d_out, *, dtype, rngs, names=(None, "embed")):
    return nnx.Linear(d_in, d_out, dtype=dtype, kernel_init=dense_init(*names),
                      bias_init=zeros(names[1]), rngs=rngs)


def _learned(shape, rngs):
    return nnx.Param(deferred_normal(*([None] * len(shape)), std=WEIGHT_STD)(rngs.params(), shape))


class ImageBackbone(nnx.Module):
    """Small CNN: 4x4 stride-2 convolutions with ReLU, then a linear map of each cell of the
    last feature map to one token of width `dim` (a fixed 2-D sin-cos position added)."""

    def __init__(self, image_size: int, channels: tuple[int, ...], dim: int, *, dtype, rngs):
        convs, c_in = [], 3
        for c in channels:
            convs.append(nnx.Conv(c_in, c, kernel_size=(4, 4), strides=(2, 2), padding="SAME",
                                  dtype=dtype, rngs=rngs))
            c_in = c
        self.convs = nnx.List(convs)
        self.proj = _linear(c_in, dim, dtype=dtype, rngs=rngs)
        self.side = image_size // 2 ** len(channels)
        self.pos = Constant(sincos_2d(dim, self.side, self.side))

    @property
    def tokens(self) -> int:
        return self.side * self.side

    def __call__(self, image):
        x = image.astype(jnp.float32) / 127.5 - 1.0
        for conv in self.convs:
            x = nnx.relu(conv(x))
        b = x.shape[0]
        return self.proj(x.reshape(b, self.tokens, -1)) + jnp.asarray(self.pos.value, x.dtype)


class ObservationEncoder(nnx.Module):
    """`observe`: [task token, proprio token, image tokens] + learned type embeddings ->
    pre-LN transformer -> LayerNorm; `states`: a sequence of proprio states (the same proprio
    embedding, fixed sin-cos time positions) through the same transformer, padded steps masked
    out of attention. The EMA copy of this module encodes the future states (the JEPA target)."""

    def __init__(self, *, num_tasks, proprio_dim, image_size, channels, dim, depth, heads,
                 mlp_ratio, dtype, attention_impl, rngs):
        self.dim = dim
        self.task = nnx.Embed(num_tasks, dim, dtype=dtype, rngs=rngs,
                              embedding_init=deferred_normal(None, "embed", std=WEIGHT_STD))
        self.proprio = _linear(proprio_dim, dim, dtype=dtype, rngs=rngs)
        self.image = ImageBackbone(image_size, channels, dim, dtype=dtype, rngs=rngs)
        self.type_embedding = _learned((3, dim), rngs)  # task, proprio, image tokens
        self.blocks = nnx.List([Block(dim, heads, mlp_ratio, layer_id=i + 1, dtype=dtype,
                                      attention_impl=attention_impl, rngs=rngs)
                                for i in range(depth)])
        self.norm = layer_norm(dim, dtype=dtype, rngs=rngs)

    @property
    def tokens(self) -> int:
        return 2 + self.image.tokens

    def observe(self, task, proprio, image):
        """(B, 2 + image tokens, dim) tokens of one observation."""
        types = self.type_embedding[...]
        x = jnp.concatenate([(self.task(task) + types[0])[:, None],
                             (self.proprio(proprio) + types[1])[:, None],
                             self.image(image) + types[2]], axis=1)
        return self._transform(x, None)

    __call__ = observe

    def states(self, proprio_seq, valid):
        """(B, K, dim): one token per state of (B, K, P) sequences."""
        pos = jnp.asarray(sincos_1d(self.dim, np.arange(proprio_seq.shape[1])), jnp.float32)
        return self._transform(self.proprio(proprio_seq) + pos, valid)

    def _transform(self, x, key_mask):
        for block in self.blocks:
            x = block(x, key_mask)
        return self.norm(x)


class QueryDecoder(nnx.Module):
    """`queries` learned query tokens, each layer a pre-LN block over [memory ; queries] in
    which only the queries are updated (they attend to the memory and to each other); a
    LayerNorm and a linear head map each query to `out_dim`. ACT's action decoder and
    ACT-JEPA's predictor are both this."""

    def __init__(self, queries: int, *, in_dim, dim, depth, heads, mlp_ratio, out_dim, dtype,
                 attention_impl, rngs):
        self.queries = _learned((queries, dim), rngs)
        self.embed = _linear(in_dim, dim, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([Block(dim, heads, mlp_ratio, layer_id=i + 1, dtype=dtype,
                                      attention_impl=attention_impl, rngs=rngs)
                                for i in range(depth)])
        self.norm = layer_norm(dim, dtype=dtype, rngs=rngs)
        self.head = _linear(dim, out_dim, dtype=dtype, rngs=rngs, names=("embed", None))

    def __call__(self, memory):
        memory = self.embed(memory)
        k = self.queries.shape[0]
        q = jnp.broadcast_to(self.queries[...].astype(memory.dtype), (memory.shape[0], k,
                                                                      memory.shape[-1]))
        for block in self.blocks:
            q = block(jnp.concatenate([memory, q], axis=1), None, queries=k)
        return self.head(self.norm(q))

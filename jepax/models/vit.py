"""Vision-transformer encoder and the narrow JEPA predictor.

Both take token *indices* so a JEPA can drop masked tokens instead of replacing them: the
encoder sees only the context tokens, and the predictor appends one mask token per target
position. Index arrays have fixed capacity; a boolean validity mask marks the real entries and
padded entries are excluded as attention keys.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jepax.layer_stack import stack_modules
from jepax.models.layers import WEIGHT_STD, Block, deferred_normal, dense_init, layer_norm, zeros
from jepax.models.posemb import sincos_nd
from jepax.sharding import constrain


def gather_tokens(x, idx):
    """x: (B, N, D), idx: (B, K) -> (B, K, D)."""
    return jnp.take_along_axis(x, idx[..., None], axis=1)


# scan_layers="auto" scans stacks at least this deep: shallower ones compile fast unrolled.
SCAN_MIN_DEPTH = 8


def scans(scan_layers, depth: int) -> bool:
    """Whether a stack of `depth` blocks is scanned: "auto" (by depth), or true / false (as
    bools or, from the command line, strings)."""
    choice = str(scan_layers).lower()
    if choice == "auto":
        return depth >= SCAN_MIN_DEPTH
    if choice in ("true", "false"):
        return choice == "true"
    raise ValueError(f"model.scan_layers={scan_layers!r}: use 'auto', true or false")


class Transformer(nnx.Module):
    """A stack of pre-LN blocks followed by a final LayerNorm.

    With `remat`, each block's activations are recomputed in the backward pass instead of kept
    (about a third more compute): what lets large ViTs fit (see benchmarks/memory_plan.py).

    With `scan_layers`, the blocks are stored stacked (each parameter with a leading layer
    axis, jepax.layer_stack) and run as one `jax.lax.scan`, so XLA compiles one block
    instead of `depth` copies: compile time stops growing with depth
    (benchmarks/scan_compile.py). `layer_stack.relayout` converts weights between the two
    layouts (train.init_from does), so a run may flip the switch and keep its weights."""

    def __init__(self, dim, depth, heads, mlp_ratio, *, dtype, attention_impl, rngs,
                 remat: bool = False, norm_eps: float = 1e-6, scan_layers="auto"):
        blocks = [Block(dim, heads, mlp_ratio, layer_id=i + 1, dtype=dtype,
                        attention_impl=attention_impl, rngs=rngs, norm_eps=norm_eps)
                  for i in range(depth)]
        self.scan = scans(scan_layers, depth)
        self.blocks = stack_modules(blocks) if self.scan else nnx.List(blocks)
        self.depth = depth
        self.norm = layer_norm(dim, dtype=dtype, rngs=rngs, eps=norm_eps)
        self.remat = remat

    def __call__(self, x, key_mask=None, outputs: int | None = None):
        """All tokens' outputs, or with `outputs` only the last that many: the last block then
        updates only those (the rest serve as keys and values), the same values for less work."""
        if self.scan:
            return self.norm(self._scanned(x, key_mask, outputs))
        call = nnx.remat(Block.__call__, static_argnums=3) if self.remat else Block.__call__
        for i, block in enumerate(self.blocks):
            x = call(block, x, key_mask, outputs if i == self.depth - 1 else None)
        return self.norm(x)

    def last_layers(self, x, n: int, key_mask=None):
        """All tokens' outputs of the last `n` blocks, each through the final LayerNorm:
        (n, B, N, D), for readouts that pool several layers. Only those n are kept: a deep
        encoder's every layer would hold depth x the activations."""
        first = max(self.depth - n, 0)
        if self.scan:
            graphdef, params = nnx.split(self.blocks)

            def layer(x, params):
                x = nnx.merge(graphdef, params)(x, key_mask)
                return x, x

            early, late = (jax.tree.map(lambda p: p[:first], params),
                           jax.tree.map(lambda p: p[first:], params))
            x = jax.lax.scan(lambda x, p: (layer(x, p)[0], None), x, early)[0]
            hidden = jax.lax.scan(layer, x, late)[1]
        else:
            hidden = []
            for i, block in enumerate(self.blocks):
                x = block(x, key_mask)
                if i >= first:
                    hidden.append(x)
            hidden = jnp.stack(hidden)
        return self.norm(hidden)

    def _scanned(self, x, key_mask, outputs):
        graphdef, params = nnx.split(self.blocks)

        def layer(x, params):
            return nnx.merge(graphdef, params)(x, key_mask), None

        if self.remat:
            layer = jax.checkpoint(layer, prevent_cse=False)
        if outputs is None:
            return jax.lax.scan(layer, x, params)[0]
        # the last block updates only the last `outputs` tokens: a shape of its own
        x = jax.lax.scan(layer, x, jax.tree.map(lambda p: p[:-1], params))[0]
        last = nnx.merge(graphdef, jax.tree.map(lambda p: p[-1], params))
        return last(x, key_mask, outputs)


def _positions(module, dim, grid):
    """(N, dim) positions: the module's (e.g. learnable brain-gradient positions) or the fixed
    sin-cos of the grid (a trace-time constant, not state)."""
    return jnp.asarray(sincos_nd(dim, grid)) if module is None else module()


class Encoder(nnx.Module):
    """Tokenizer + positional embedding (fixed sin-cos of the grid unless a `positions` module
    gives them) + transformer. No class token."""

    def __init__(self, tokenizer: nnx.Module, grid: tuple[int, ...], *, dim, depth, heads,
                 mlp_ratio, dtype, attention_impl, rngs, remat: bool = False,
                 scan_layers="auto", positions: nnx.Module | None = None):
        self.tokenizer = tokenizer
        self.grid = tuple(grid)
        self.positions = positions
        self.dim = dim
        self.transformer = Transformer(dim, depth, heads, mlp_ratio, dtype=dtype,
                                       attention_impl=attention_impl, rngs=rngs, remat=remat,
                                       scan_layers=scan_layers)

    def __call__(self, inputs, keep_idx=None, keep_valid=None, replaced=None, replacement=None):
        """Encode all tokens, or only `keep_idx` (B, K) with validity `keep_valid` (B, K).
        `replaced` (B, N) bool with `replacement` (D,): those tokens' embeddings are replaced
        (BERT / data2vec-style masking that keeps the sequence and its positions)."""
        return self.transformer(self._embedded(inputs, keep_idx, replaced, replacement),
                                keep_valid)

    def last_layers(self, inputs, n: int):
        """All tokens' outputs of the last `n` blocks, each through the final LayerNorm:
        (n, B, N, D)."""
        return self.transformer.last_layers(self._embedded(inputs), n)

    def _embedded(self, inputs, keep_idx=None, replaced=None, replacement=None):
        """Token embeddings plus positions: the transformer's input."""
        tokens = self.tokenizer.split(inputs)
        pos = _positions(self.positions, self.dim, self.grid)
        if keep_idx is None:
            pos = pos[None]
        else:
            tokens, pos = gather_tokens(tokens, keep_idx), pos[keep_idx]
        x = self.tokenizer.embed(tokens)
        if replaced is not None:
            x = jnp.where(replaced[..., None], replacement.astype(x.dtype), x)
        return constrain(x + pos.astype(x.dtype), ("batch", "seq", None))


class Predictor(nnx.Module):
    """Narrow transformer that predicts target-token embeddings from context embeddings.

    For each of M target blocks, the sequence is [context tokens ; mask tokens at the block's
    positions]; all M blocks run as one batched call of size B * M."""

    def __init__(self, grid: tuple[int, ...], *, in_dim, dim, depth, heads, mlp_ratio, dtype,
                 attention_impl, rngs, remat: bool = False, scan_layers="auto",
                 positions: nnx.Module | None = None, transformer: nnx.Module | None = None):
        """`positions`: its own position embedding (Brain-JEPA: a separate gradient projection);
        `transformer`: another stack with the same call signature (x, key_mask, outputs)
        instead of the pre-LN one (T-JEPA's post-LN stack)."""
        self.positions = positions
        self.embed = nnx.Linear(in_dim, dim, dtype=dtype, kernel_init=dense_init("embed", None),
                                bias_init=zeros(None), rngs=rngs)
        self.mask_token = nnx.Param(deferred_normal(None, std=WEIGHT_STD)(rngs.params(), (dim,)))
        self.grid = tuple(grid)
        self.dim = dim
        if transformer is None:
            transformer = Transformer(dim, depth, heads, mlp_ratio, dtype=dtype,
                                      attention_impl=attention_impl, rngs=rngs, remat=remat,
                                      scan_layers=scan_layers)
        self.transformer = transformer
        self.proj = nnx.Linear(dim, in_dim, dtype=dtype, kernel_init=dense_init(None, "embed"),
                               bias_init=zeros("embed"), rngs=rngs)

    def __call__(self, z, ctx_idx, ctx_valid, tgt_idx, tgt_valid):
        """z: (B, C, D_enc); ctx_*: (B, C); tgt_*: (B, M, T) -> (B, M, T, D_enc)."""
        b, m, t = tgt_idx.shape
        pos = _positions(self.positions, self.dim, self.grid)
        x = self.embed(z) + pos[ctx_idx].astype(z.dtype)
        queries = self.mask_token[...].astype(z.dtype) + pos[tgt_idx].astype(z.dtype)
        x = jnp.broadcast_to(x[:, None], (b, m) + x.shape[1:])
        seq = jnp.concatenate([x, queries], axis=2).reshape(b * m, -1, x.shape[-1])
        valid = jnp.concatenate(
            [jnp.broadcast_to(ctx_valid[:, None], (b, m, ctx_valid.shape[-1])), tgt_valid], axis=2)
        seq = constrain(seq, ("batch", "seq", None))
        out = self.transformer(seq, valid.reshape(b * m, -1), outputs=t)
        return self.proj(out).reshape(b, m, t, -1)

"""An LSTM language model (Hochreiter & Schmidhuber, 1997) scanned over time with
``jax.lax.scan``: embedding, stacked LSTM layers, linear head. Its recurrent state is
2 * hidden numbers per layer, whatever the sequence length."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jepax.models.layers import dense_init, zeros


def symmetric_uniform(bound: float, *names):
    """U(-bound, bound) with logical sharding names."""
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return nnx.with_partitioning(init, names)


class LSTMLayer(nnx.Module):
    def __init__(self, d_in: int, hidden: int, *, rngs):
        bound = hidden ** -0.5  # PyTorch's LSTM init: U(-1/sqrt(hidden), 1/sqrt(hidden))
        # gates i, f, g, o stacked on the last axis
        self.w_in = nnx.Param(symmetric_uniform(bound, "embed", "mlp")(rngs.params(),
                                                                      (d_in, 4 * hidden)))
        self.w_rec = nnx.Param(symmetric_uniform(bound, None, "mlp")(rngs.params(),
                                                                    (hidden, 4 * hidden)))
        self.bias = nnx.Param(symmetric_uniform(bound, "mlp")(rngs.params(), (4 * hidden,)))
        self.hidden = hidden

    def __call__(self, x):
        """x (B, T, d_in) -> hidden states (B, T, hidden), from a zero state."""
        pre = x @ self.w_in[...] + self.bias[...]  # input part of every step at once
        w_rec = self.w_rec[...]

        def step(carry, pre_t):
            h, c = carry
            i, f, g, o = jnp.split(pre_t + h @ w_rec, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros_state = jnp.zeros((x.shape[0], self.hidden), x.dtype)
        _, hs = jax.lax.scan(step, (zeros_state, zeros_state), jnp.swapaxes(pre, 0, 1))
        return jnp.swapaxes(hs, 0, 1)


class LSTMLM(nnx.Module):
    """tokens (B, T) int -> logits (B, T, vocab)."""

    def __init__(self, vocab: int, *, dim: int, depth: int, rngs):
        self.embed = nnx.Embed(vocab, dim, embedding_init=symmetric_uniform(0.1, None, "embed"),
                              rngs=rngs)  # the official LSTM's U(-0.1, 0.1)
        self.layers = nnx.List([LSTMLayer(dim, dim, rngs=rngs) for _ in range(depth)])
        self.head = nnx.Linear(dim, vocab, kernel_init=dense_init("embed", None),
                               bias_init=zeros(None), rngs=rngs)

    def __call__(self, tokens, key_mask=None):
        del key_mask  # causal
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)

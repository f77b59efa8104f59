"""Positional encodings of the sequence models, one implementation each (the copying and the
arithmetic studies share them).

Absolute (added to the token embeddings): ``learned`` (a trained table, one row per position)
and ``sincos`` (``posemb.sincos_1d``). In the attention: ``rope`` rotates queries and keys,
``alibi`` and ``hard_alibi`` add a per-head bias to the logits, ``rpe_k`` / ``rpe_kq`` add
learned relative-position vectors to the keys (and queries), ``nope`` uses no positions (a causal
decoder still infers order from its mask).

Conventions: attention logits are indexed ``[head, query i, key j]``; ``i - j`` is how far back
the key lies (>= 0 for the keys a causal decoder sees).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

ABSOLUTE = ("learned", "sincos")
BIASES = ("alibi", "hard_alibi")
RELATIVE = ("rpe_k", "rpe_kq")
POSITION_ENCODINGS = ("nope", *ABSOLUTE, "rope", *BIASES, *RELATIVE)


def check(name: str) -> None:
    if name not in POSITION_ENCODINGS:
        raise ValueError(f"positional encoding {name!r}: use one of {', '.join(POSITION_ENCODINGS)}")


def causal_mask(length: int) -> np.ndarray:
    """(T, T) bool: query i sees key j iff j <= i."""
    return np.tril(np.ones((length, length), bool))


def offsets(length: int) -> np.ndarray:
    """(T, T) int: i - j, how far key j lies behind query i."""
    pos = np.arange(length)
    return pos[:, None] - pos[None, :]


# -- RoPE (Su et al., 2021) -----------------------------------------------------------------------

def rope_angles(length: int, head_dim: int, base: float = 10000.0) -> np.ndarray:
    """(T, K/2) rotation angles: position t times the frequencies base^(-2m/K)."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
    freqs = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    return np.arange(length, dtype=np.float64)[:, None] * freqs[None, :]


def rope(x, angles):
    """Rotate x (..., T, K) by `angles` (T, K/2): channel m pairs with channel m + K/2 (the
    GPT-NeoX layout), so q . k after rotation depends on the positions only through i - j."""
    half = x.shape[-1] // 2
    cos, sin = jnp.cos(angles).astype(x.dtype), jnp.sin(angles).astype(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


# -- ALiBi (Press et al., 2022) and Hard-ALiBi (Jelassi et al., 2024) -----------------------------

def alibi_slopes(heads: int) -> np.ndarray:
    """Press et al.'s head slopes: the geometric sequence 2^(-8/n), 2^(-16/n), ... for the
    nearest power of two n <= heads, then every other slope of the sequence for 2n heads."""
    def geometric(n):
        return 2.0 ** (-8.0 * np.arange(1, n + 1) / n)

    n = 2 ** int(math.floor(math.log2(heads)))
    slopes = geometric(n)
    if n < heads:
        slopes = np.concatenate([slopes, geometric(2 * n)[0::2][: heads - n]])
    return slopes


def alibi_bias(heads: int, length: int, causal: bool = True) -> np.ndarray:
    """(H, T, T) additive bias -slope_h * (i - j) (bidirectional: * |i - j|)."""
    distance = offsets(length) if causal else np.abs(offsets(length))
    return -alibi_slopes(heads)[:, None, None] * distance[None].astype(np.float64)


def hard_alibi_mask(heads: int, masked_heads: int, length: int) -> np.ndarray:
    """(H, T, T) bool, what each head may see on top of the causal mask: head h < masked_heads
    sees only keys with 0 <= i - j <= h (its own token and the h before it); the other heads
    see every key (no positions). The official code's masking of heads 0..7 of 16."""
    if not 0 <= masked_heads <= heads:
        raise ValueError(f"hard-ALiBi masks {masked_heads} heads of {heads}: use 0..{heads}")
    d = offsets(length)
    window = np.arange(heads)[:, None, None]
    local = (d[None] >= 0) & (d[None] <= window)
    return np.where(np.arange(heads)[:, None, None] < masked_heads, local, True)


# -- learned relative positions (Shaw et al., 2018; Huang et al., 2020) ---------------------------

def relative_index(q_len: int, k_len: int, clip: int) -> np.ndarray:
    """(Tq, Tk) int in [0, 2 * clip]: row of the relative-position table for key j seen from
    query i, j - i clipped to [-clip, clip] (every key further away shares the edge row)."""
    rel = np.arange(k_len)[None, :] - np.arange(q_len)[:, None]
    return np.clip(rel, -clip, clip) + clip


def relative_logits(q, k, table, index, with_query: bool):
    """Attention logits with learned relative positions, q, k: (B, H, T, K), table (R, K) (one
    per layer, shared by the heads, as Shaw et al.), index (T, T) from `relative_index`:

    * RPE-k  (Shaw et al.):  q_i . (k_j + a_ij)
    * RPE-kq (Huang et al.'s query-and-key interaction): q_i . k_j + q_i . a_ij + a_ij . k_j

    (unscaled). The (T, T, K) tensor a_ij is never built: q . table is (B, H, T, R) and is
    gathered at each pair's row."""
    logits = jnp.einsum("bhik,bhjk->bhij", q, k)
    q_rows = jnp.einsum("bhik,rk->bhir", q, table)
    logits = logits + jnp.take_along_axis(q_rows, jnp.broadcast_to(index, logits.shape), -1)
    if with_query:
        k_rows = jnp.einsum("bhjk,rk->bhjr", k, table)  # a_ij . k_j, read at [j, index[i, j]]
        gathered = jnp.take_along_axis(k_rows, jnp.broadcast_to(index.T, logits.shape), -1)
        logits = logits + jnp.swapaxes(gathered, -1, -2)
    return logits

"""The sequence models of the studies: positional encodings against their formulas, masks,
causality, the selective SSM's parallel scan against the step-by-step recurrence."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax import nnx

from jepax.models import positions as pos
from jepax.models.functional import Functional
from jepax.models.lstm import LSTMLM
from jepax.models.sequence_transformer import PositionalAttention, SequenceTransformer
from jepax.models.ssm import MambaLM, selective_scan, selective_scan_sequential

VOCAB = 12


def attention(encoding, heads=4, head_dim=8, causal=True, masked_heads=2, rpe_clip=3):
    return Functional(lambda rngs: PositionalAttention(
        16, heads, head_dim=head_dim, encoding=encoding, causal=causal,
        masked_heads=masked_heads, rpe_clip=rpe_clip, out_scale=1.0, rngs=rngs))


def init(module: Functional, seed: int = 0):
    """Parameters of the module's shapes drawn with numpy: any generic values serve these tests,
    and compiling the initializers' random draws took seconds per module on CPU."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(module.init, jax.random.key(0))
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, 0.5, s.shape), s.dtype), shapes)


def bound(module: Functional, seed: int = 0):
    """The module with fresh parameters, to call its methods."""
    return nnx.merge(module.graphdef, init(module, seed))


def qk(seed, shape=(2, 4, 7, 8)):
    kq, kk = jax.random.split(jax.random.key(seed))
    return jax.random.normal(kq, shape), jax.random.normal(kk, shape)


def test_hard_alibi_heads_see_exactly_their_window():
    heads, masked, t = 6, 4, 9
    module = bound(attention("hard_alibi", heads=heads, masked_heads=masked))
    q, k = qk(1, (2, heads, t, 8))
    w = np.asarray(jax.jit(module.weights)(q, k))
    i, j = np.meshgrid(np.arange(t), np.arange(t), indexing="ij")
    for h in range(heads):
        window = (i - j >= 0) & (i - j <= h) if h < masked else (j <= i)
        assert np.all(w[:, h][:, ~window] == 0), h          # nothing outside the window
        assert np.all(w[:, h][:, window] > 0), h            # everything inside it
        np.testing.assert_allclose(w[:, h].sum(-1), 1.0, rtol=1e-5)
    assert np.all(w[:, 0] == np.eye(t))                     # head 0: its own token only


def test_hard_alibi_mask_matches_the_official_construction():
    """The official code zeroes, for head i < masked, the diagonals j = 0..i below the main."""
    heads, masked, t = 16, 8, 12
    official = np.zeros((heads, t, t), bool)
    for i in range(heads):
        if i < masked:
            for j in range(i + 1):
                official[i, range(j, t), range(0, t - j)] = True
        else:
            official[i] = np.tril(np.ones((t, t), bool))
    ours = pos.hard_alibi_mask(heads, masked, t) & pos.causal_mask(t)[None]
    assert np.array_equal(ours, official)


@pytest.mark.parametrize("encoding", pos.POSITION_ENCODINGS)
def test_causal_transformer_outputs_ignore_future_tokens(encoding):
    model = Functional(lambda rngs: SequenceTransformer(
        VOCAB, dim=16, depth=2, heads=4, encoding=encoding, max_len=12, masked_heads=2,
        rpe_clip=3, rngs=rngs))
    params = init(model)
    a = jax.random.randint(jax.random.key(1), (2, 10), 0, VOCAB)
    b = a.at[:, 6:].set((a[:, 6:] + 1) % VOCAB)  # change only positions 6..9
    out_a, out_b = jax.jit(jax.vmap(model, (None, 0)))(params, jnp.stack([a, b]))
    np.testing.assert_allclose(out_a[:, :6], out_b[:, :6], atol=1e-6)
    assert np.abs(out_a[:, 6:] - out_b[:, 6:]).max() > 1e-5  # the changed tokens do matter


@pytest.mark.parametrize("make", [
    lambda rngs: MambaLM(VOCAB, dim=16, depth=2, state=4, rngs=rngs),
    lambda rngs: LSTMLM(VOCAB, dim=16, depth=2, rngs=rngs)], ids=["mamba", "lstm"])
def test_recurrent_models_are_causal(make):
    model = Functional(make)
    a = jax.random.randint(jax.random.key(1), (2, 10), 0, VOCAB)
    b = a.at[:, 6:].set((a[:, 6:] + 1) % VOCAB)
    out_a, out_b = jax.jit(jax.vmap(model, (None, 0)))(init(model), jnp.stack([a, b]))
    np.testing.assert_allclose(out_a[:, :6], out_b[:, :6], atol=1e-6)
    assert np.abs(out_a[:, 6:] - out_b[:, 6:]).max() > 1e-5  # the changed tokens do matter


def test_encoder_attends_both_ways_and_never_to_padding():
    module = bound(attention("rpe_kq", causal=False))
    q, k = qk(2)
    keys = jnp.arange(7)[None, :] < jnp.array([[5], [7]])  # example 0: last two are padding
    w = np.asarray(jax.jit(module.weights)(q, k, keys))
    assert np.all(w[0, :, :, 5:] == 0)
    assert np.all(w[0, :, :, :5] > 0) and np.all(w[1] > 0)  # future keys too


def test_rope_equals_complex_rotation_and_is_relative():
    t, d = 6, 8
    x = np.random.default_rng(0).normal(size=(t, d))
    angles = pos.rope_angles(t, d)
    got = np.asarray(pos.rope(jnp.asarray(x), angles))
    # direct: channel m and m + d/2 form the complex number x_m + i x_{m+d/2}, rotated by
    # position * 10000^(-2m/d)
    theta = 10000.0 ** (-np.arange(0, d, 2) / d)
    z = (x[:, :d // 2] + 1j * x[:, d // 2:]) * np.exp(1j * np.arange(t)[:, None] * theta)
    np.testing.assert_allclose(got, np.concatenate([z.real, z.imag], 1), atol=1e-5)
    # q_i . k_j depends on positions only through i - j
    q, k = np.random.default_rng(1).normal(size=(2, d))
    rq = np.asarray(pos.rope(jnp.tile(q, (t, 1)), angles))
    rk = np.asarray(pos.rope(jnp.tile(k, (t, 1)), angles))
    np.testing.assert_allclose(rq[3] @ rk[1], rq[5] @ rk[3], rtol=1e-5)
    np.testing.assert_allclose(rq[2] @ rk[2], q @ k, rtol=1e-5)


def test_alibi_slopes_and_bias_match_press_et_al():
    np.testing.assert_allclose(pos.alibi_slopes(8), [2.0 ** -k for k in range(1, 9)])
    np.testing.assert_allclose(pos.alibi_slopes(4), [2.0 ** -(2 * k) for k in range(1, 5)])
    # not a power of two: the 4 slopes of 4 heads, then every other slope of 8 heads
    np.testing.assert_allclose(pos.alibi_slopes(6), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8,
                                                     2 ** -1, 2 ** -3])
    bias = pos.alibi_bias(8, 5)
    for h, i, j in itertools.product(range(8), range(5), range(5)):
        assert bias[h, i, j] == pytest.approx(-(2.0 ** -(h + 1)) * (i - j))
    assert pos.alibi_bias(8, 5, causal=False)[2, 1, 4] == pytest.approx(-(2.0 ** -3) * 3)


@pytest.mark.parametrize("with_query", [False, True], ids=["rpe_k", "rpe_kq"])
def test_relative_logits_match_the_direct_formula(with_query):
    q, k = qk(3, (2, 3, 7, 5))
    clip = 2
    table = jax.random.normal(jax.random.key(4), (2 * clip + 1, 5))
    got = np.asarray(jax.jit(pos.relative_logits, static_argnums=4)(
        q, k, table, pos.relative_index(7, 7, clip), with_query))
    q, k, table = map(np.asarray, (q, k, table))
    want = np.zeros_like(got)
    for b, h, i, j in itertools.product(range(2), range(3), range(7), range(7)):
        a = table[np.clip(j - i, -clip, clip) + clip]  # a_ij: one row per clipped offset
        want[b, h, i, j] = q[b, h, i] @ (k[b, h, j] + a)
        if with_query:
            want[b, h, i, j] += a @ k[b, h, j]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_attention_logits_of_each_encoding_are_what_it_adds():
    q, k = qk(5, (1, 4, 6, 8))
    plain = np.asarray(jnp.einsum("bhik,bhjk->bhij", q, k)) * 8 ** -0.5
    np.testing.assert_allclose(jax.jit(bound(attention("alibi")).logits)(q, k),
                               plain + pos.alibi_bias(4, 6)[None], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(bound(attention("nope")).logits)(q, k), plain, rtol=1e-5,
                               atol=1e-5)


def test_associative_scan_equals_the_step_by_step_recurrence():
    rng = np.random.default_rng(0)
    b, t, e, n = 2, 33, 6, 4
    x, b_, c = (jnp.asarray(rng.normal(size=s), jnp.float32)
                for s in ((b, t, e), (b, t, n), (b, t, n)))
    dt = jnp.asarray(rng.uniform(0.01, 0.5, (b, t, e)), jnp.float32)
    a = -jnp.asarray(rng.uniform(0.5, 4.0, (e, n)), jnp.float32)
    d = jnp.asarray(rng.normal(size=e), jnp.float32)
    parallel = jax.jit(selective_scan)(x, dt, a, b_, c, d)
    sequential = jax.jit(selective_scan_sequential)(x, dt, a, b_, c, d)
    np.testing.assert_allclose(parallel, sequential, rtol=1e-4, atol=1e-5)
    # and against a plain Python loop of h_t = exp(dt A) h + dt B x, y = C h + D x
    h = np.zeros((b, e, n))
    X, DT, A, B, C, D = map(np.asarray, (x, dt, a, b_, c, d))
    for s in range(t):
        h = np.exp(DT[:, s, :, None] * A) * h + (DT[:, s] * X[:, s])[..., None] * B[:, s, None]
        np.testing.assert_allclose(parallel[:, s], np.einsum("ben,bn->be", h, C[:, s])
                                   + D * X[:, s], rtol=1e-4, atol=1e-4)


def test_mamba_model_gives_the_same_logits_with_either_scan():
    make = lambda scan: Functional(lambda rngs: MambaLM(VOCAB, dim=16, depth=2, state=4,
                                                        scan=scan, rngs=rngs))
    parallel, sequential = make("associative"), make("sequential")
    params = init(parallel)
    tokens = jax.random.randint(jax.random.key(1), (2, 20), 0, VOCAB)
    np.testing.assert_allclose(jax.jit(parallel)(params, tokens),
                               jax.jit(sequential)(params, tokens), rtol=1e-4, atol=1e-5)

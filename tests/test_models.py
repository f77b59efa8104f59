"""Model shapes, positional embeddings, dropped-token encoding and the I-JEPA loss."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jepax.models.posemb import sincos_1d, sincos_2d, sincos_nd
from jepax.variants.ijepa import IJEPA
from tests.helpers import init_params, small_ijepa


def test_sincos_1d_values():
    emb = sincos_1d(8, np.arange(3))
    assert emb.shape == (3, 8)
    np.testing.assert_allclose(emb[0], [0, 0, 0, 0, 1, 1, 1, 1], atol=1e-7)
    # first frequency is 1: sin(position) in column 0
    np.testing.assert_allclose(emb[:, 0], np.sin(np.arange(3)), atol=1e-6)


def test_sincos_2d_layout_first_half_is_column():
    emb = sincos_2d(16, 3, 4)
    assert emb.shape == (12, 16)
    grid = emb.reshape(3, 4, 16)
    # first half depends only on the column, second half only on the row
    np.testing.assert_allclose(grid[0, :, :8], grid[2, :, :8])
    np.testing.assert_allclose(grid[:, 0, 8:], grid[:, 3, 8:])
    assert not np.allclose(grid[0, 0, :8], grid[0, 1, :8])
    # every position is distinct
    assert len({tuple(np.round(r, 5)) for r in emb}) == 12


def test_sincos_3d_and_bad_dims():
    assert sincos_nd(12, (2, 3, 4)).shape == (24, 12)
    with pytest.raises(ValueError, match="divisible"):
        sincos_nd(10, (2, 2))


@pytest.fixture(scope="module")
def model():
    config = small_ijepa()
    variant = IJEPA(config)
    params = init_params(variant)
    return config, variant, params


def jitted(variant):
    """The model's functions compiled, as training runs them (eager op-by-op is slow)."""
    return jax.jit(variant.encoder.__call__), jax.jit(variant.predictor.__call__)


def test_encoder_and_predictor_shapes(model):
    config, variant, params = model
    b, n = 3, variant.grid[0] * variant.grid[1]
    images = jnp.zeros((b, 28, 28, 1), jnp.uint8)
    x = variant.normalize(images)
    encoder, predictor = jitted(variant)
    full = encoder(params["encoder"], x)
    assert full.shape == (b, n, config.model.width)
    idx = jnp.tile(jnp.arange(10, dtype=jnp.int32), (b, 1))
    valid = jnp.ones((b, 10), bool)
    z = encoder(params["encoder"], x, idx, valid)
    assert z.shape == (b, 10, config.model.width)
    tidx = jnp.tile(jnp.arange(20, 26, dtype=jnp.int32), (b, 4, 1))
    pred = predictor(params["predictor"], z, idx, valid, tidx, jnp.ones((b, 4, 6), bool))
    assert pred.shape == (b, 4, 6, config.model.width)
    features = jax.jit(variant.outputs)(params["encoder"], {"image": images})["features"]
    assert features.shape == (b, config.model.width)


def test_context_encoder_drops_tokens_and_ignores_padding(model):
    _, variant, params = model
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 255, (2, 28, 28, 1)), jnp.uint8)
    x = variant.normalize(images)
    encoder, _ = jitted(variant)
    keep = jnp.asarray([[1, 4, 9, 30, 0, 0], [2, 3, 5, 7, 11, 13]], jnp.int32)
    valid = jnp.asarray([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    z = encoder(params["encoder"], x, keep, valid)
    # Changing the padded entries' indices must not change the valid outputs.
    keep2 = keep.at[0, 4:].set(jnp.asarray([40, 41]))
    z2 = encoder(params["encoder"], x, keep2, valid)
    np.testing.assert_allclose(z[0, :4], z2[0, :4], atol=1e-5)
    # Encoding only 4 tokens equals encoding exactly those 4 (tokens are dropped, not masked).
    z3 = encoder(params["encoder"], x[:1], keep[:1, :4], valid[:1, :4])
    np.testing.assert_allclose(z[0, :4], z3[0], atol=1e-5)
    # ... and differs from running the encoder on the full image (context sees less).
    full = encoder(params["encoder"], x[:1])
    assert not np.allclose(full[0, np.asarray(keep[0, :4])], z3[0], atol=1e-3)


def test_residual_projection_rescaled_per_layer():
    config = small_ijepa(model__depth=3)
    params = init_params(IJEPA(config), 1)
    blocks = params["encoder"]["transformer"]["blocks"]
    stds = [np.std(blocks[i]["mlp"]["fc2"]["kernel"]) for i in range(3)]
    fc1 = np.std(blocks[0]["mlp"]["fc1"]["kernel"])
    assert 0.015 < fc1 < 0.025  # truncated normal, std 0.02
    np.testing.assert_allclose(stds, [0.02 / np.sqrt(2 * (i + 1)) for i in range(3)], rtol=0.15)
    assert all(np.all(b["attn"]["qkv"]["bias"] == 0) for b in blocks.values())


def test_batched_weight_draws_are_independent_and_follow_the_seed():
    """Same-shape weights share one truncated-normal draw: each still gets its own values,
    in [-2, 2] standard deviations, and the seed alone decides them."""
    variant = IJEPA(small_ijepa(model__depth=3))
    params, again, other = (init_params(variant, seed) for seed in (1, 1, 2))
    blocks = params["encoder"]["transformer"]["blocks"]
    fc1 = [np.asarray(blocks[i]["mlp"]["fc1"]["kernel"]) for i in range(3)]
    assert abs(np.corrcoef(fc1[0].ravel(), fc1[1].ravel())[0, 1]) < 0.05
    assert np.abs(fc1[0]).max() <= 2 * 0.02 + 1e-7
    mask_token = np.asarray(params["predictor"]["mask_token"])
    assert 0.01 < mask_token.std() < 0.025
    jax.tree.map(np.testing.assert_array_equal, params, again)
    assert not np.allclose(fc1[0], other["encoder"]["transformer"]["blocks"][0]["mlp"]["fc1"]["kernel"])


def test_loss_ignores_invalid_targets_and_target_is_layer_normed(model):
    _, variant, params = model
    rng = np.random.default_rng(1)
    batch = {
        "image": jnp.asarray(rng.integers(0, 255, (2, 28, 28, 1)), jnp.uint8),
        "context_idx": jnp.tile(jnp.arange(20, dtype=jnp.int32), (2, 1)),
        "context_valid": jnp.ones((2, 20), bool),
        "target_idx": jnp.tile(jnp.arange(30, 36, dtype=jnp.int32), (2, 4, 1)),
        "target_valid": jnp.ones((2, 4, 6), bool).at[:, :, 4:].set(False),
    }
    loss_fn = jax.jit(lambda p, t, b: variant.loss(p, t, b, None)[0])
    loss = loss_fn(params, params["encoder"], batch)
    moved = dict(batch, target_idx=batch["target_idx"].at[:, :, 4:].set(0))
    loss2 = loss_fn(params, params["encoder"], moved)
    assert np.isfinite(loss) and float(loss) > 0
    np.testing.assert_allclose(loss, loss2, rtol=1e-6)
    # gradients flow to encoder and predictor, never into the target
    grads = jax.jit(jax.grad(loss_fn, argnums=(0, 1)))(params, params["encoder"], batch)
    assert float(jnp.abs(grads[0]["predictor"]["proj"]["kernel"]).sum()) > 0
    assert float(jnp.abs(grads[0]["encoder"]["tokenizer"]["proj"]["kernel"]).sum()) > 0
    assert all(float(jnp.abs(g).sum()) == 0 for g in jax.tree.leaves(grads[1]))


def test_ijepa_batch_target_norm_regresses_on_targets_standardized_over_the_batch():
    """model.target_norm='layer_batch': the loss is smooth-L1 to the layer-normed targets
    standardized per (token, dimension) over the batch; 'layer' (the paper) uses them as they
    are; an unknown norm is a config error."""
    from jepax.config import ConfigError

    rng = np.random.default_rng(3)
    batch = {
        "image": jnp.asarray(rng.integers(0, 255, (4, 28, 28, 1)), jnp.uint8),
        "context_idx": jnp.tile(jnp.arange(20, dtype=jnp.int32), (4, 1)),
        "context_valid": jnp.ones((4, 20), bool),
        "target_idx": jnp.tile(jnp.arange(30, 36, dtype=jnp.int32), (4, 2, 1)),
        "target_valid": jnp.ones((4, 2, 6), bool),
    }
    losses = {}
    for norm in ("layer", "layer_batch"):
        variant = IJEPA(small_ijepa(model__target_norm=norm))
        params = init_params(variant, 0)
        losses[norm] = float(variant.loss(params, params["encoder"], batch, None)[0])
    pred, targets, h = variant.predict(params, params["encoder"], variant.normalize(batch["image"]),
                                       batch)
    h = np.asarray(h)
    full = (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-5)
    standardized = full[:, 30:36][:, None]                       # (B, 1, 6, D), both targets
    by_hand = lambda t: float(optax.huber_loss(np.asarray(pred), t, delta=1.0).mean())
    np.testing.assert_allclose(losses["layer_batch"], by_hand(standardized), rtol=1e-5)
    np.testing.assert_allclose(losses["layer"], by_hand(np.asarray(targets)), rtol=1e-5)
    assert losses["layer_batch"] != pytest.approx(losses["layer"], rel=1e-3)
    with pytest.raises(ConfigError, match="target_norm='batch'.*layer_batch"):
        IJEPA(small_ijepa(model__target_norm="batch"))


def test_gelu_is_exact_gelu():
    from jepax.models.layers import gelu

    x = jnp.linspace(-8.0, 8.0, 20001)
    np.testing.assert_allclose(gelu(x), jax.nn.gelu(x, approximate=False), atol=2e-6)
    grad = jax.vmap(jax.grad(gelu))(x)
    exact = jax.vmap(jax.grad(lambda v: jax.nn.gelu(v, approximate=False)))(x)
    np.testing.assert_allclose(grad, exact, atol=2e-6)


@pytest.mark.parametrize("queries", [None, 3])
def test_attention_implementations_agree_with_padding(queries):
    """The CPU path (heads-major einsum, closed-form backward) matches
    jax.nn.dot_product_attention in values and in gradients, with padded keys and with only
    the last tokens querying."""
    from flax import nnx

    from jepax.models.layers import Attention

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 7, 12)), jnp.float32)
    key_mask = jnp.asarray([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]], bool)
    module = Attention(12, 3, dtype=jnp.float32, implementation="einsum", rngs=nnx.Rngs(0))
    module.qkv.bias[...] = jnp.asarray(rng.standard_normal((3, 3, 4)), jnp.float32)
    graph_einsum, params = nnx.split(module)
    graph_xla, _ = nnx.split(
        Attention(12, 3, dtype=jnp.float32, implementation="xla", rngs=nnx.Rngs(0)))
    weights = jnp.asarray(rng.standard_normal((2, queries or 7, 12)), jnp.float32)

    def run(graph):
        def loss(params, x):
            out = nnx.merge(graph, params)(x, key_mask, queries)
            return jnp.sum(out * weights), out
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(params, x)

    (_, out_e), grads_e = run(graph_einsum)
    (_, out_x), grads_x = run(graph_xla)
    assert out_e.shape == (2, queries or 7, 12)
    np.testing.assert_allclose(out_e, out_x, atol=1e-5)
    for a, b in zip(jax.tree.leaves(grads_e), jax.tree.leaves(grads_x)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # a padded key changes nothing: move its input and the valid rows' outputs stay
    moved = x.at[0, 5].add(3.0)
    out_moved = nnx.merge(graph_einsum, params)(moved, key_mask, queries)
    valid_rows = slice(None, 1) if queries else slice(None, 5)  # query rows at positions < 5
    np.testing.assert_allclose(out_moved[0, valid_rows], out_e[0, valid_rows], atol=1e-5)


def test_transformer_outputs_only_the_last_tokens(model):
    """The predictor's last block updating only the target tokens gives what running the whole
    block and slicing gives."""
    from flax import nnx

    config, variant, params = model
    transformer = nnx.merge(variant.predictor.graphdef, params["predictor"]).transformer
    rng = np.random.default_rng(2)
    seq = jnp.asarray(rng.standard_normal((3, 9, config.model.pred_width)), jnp.float32)
    valid = jnp.ones((3, 9), bool).at[0, 2].set(False)
    trimmed = transformer(seq, valid, outputs=4)
    assert trimmed.shape == (3, 4, config.model.pred_width)
    np.testing.assert_allclose(trimmed, transformer(seq, valid)[:, -4:], atol=1e-5)


def test_remat_recomputes_every_block_with_the_same_gradients():
    """model.remat wraps each block in jax.checkpoint: same loss and gradients. (XLA:CPU drops
    the optimization barriers, so the memory saving shows only on GPU/TPU, not here.)"""
    rng = np.random.default_rng(2)
    batch = {"image": jnp.asarray(rng.integers(0, 255, (8, 28, 28, 1)), jnp.uint8),
             "context_idx": jnp.tile(jnp.arange(24, dtype=jnp.int32), (8, 1)),
             "context_valid": jnp.ones((8, 24), bool),
             "target_idx": jnp.tile(jnp.arange(30, 36, dtype=jnp.int32), (8, 4, 1)),
             "target_valid": jnp.ones((8, 4, 6), bool)}
    grads, checkpoints = [], []
    for remat in (False, True):
        variant = IJEPA(small_ijepa(model__depth=4, model__pred_depth=3, model__remat=remat))
        params = init_params(variant)
        fn = jax.value_and_grad(lambda p: variant.loss(p, p["encoder"], batch, None)[0])
        checkpoints.append(str(jax.make_jaxpr(fn)(params)).count("remat2["))
        grads.append(jax.jit(fn)(params))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), *grads)
    assert checkpoints == [0, 4 + 3]  # the target encoder's forward needs no remat

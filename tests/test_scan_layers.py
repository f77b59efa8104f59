"""model.scan_layers: transformer blocks stored stacked and run as one scanned layer compute
what the unrolled stack computes, keep each layer's init, decay and layer-wise lr, compile one
block whatever the depth, and trade weights with runs of the other layout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jepax import train
from jepax.evaluators.fine_tune import layer_scales
from jepax.models.functional import Functional
from jepax.layer_stack import relayout, unstacked
from jepax.models.vit import Transformer
from jepax.optim import decay_mask
from tests.helpers import load_through_init_from, saved_params, small_ijepa

pytestmark = pytest.mark.usefixtures("shared_compiles")

WIDTH = 32


def stack(scan, depth=4, remat=False):
    return Functional(lambda rngs: Transformer(
        WIDTH, depth, 2, 2.0, dtype=jnp.float32, attention_impl="auto", rngs=rngs, remat=remat,
        scan_layers=scan))


@pytest.fixture(scope="module")
def both():
    unrolled, scanned = stack(False), stack(True, remat=True)
    params = jax.jit(unrolled.init)(jax.random.key(0))
    return unrolled, scanned, params, relayout(params, jax.eval_shape(scanned.init,
                                                                      jax.random.key(0)))


def test_relayout_stacks_and_splits_blocks_without_changing_values(both):
    _, _, params, stacked = both
    kernel = stacked["blocks"]["attn"]["qkv"]["kernel"]
    assert kernel.shape == (4, *params["blocks"][0]["attn"]["qkv"]["kernel"].shape)
    np.testing.assert_array_equal(kernel[2], params["blocks"][2]["attn"]["qkv"]["kernel"])
    for back in (relayout(stacked, params), unstacked(stacked)):
        assert jax.tree.structure(back) == jax.tree.structure(params)
        for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("outputs", [None, 3])
def test_scanned_stack_computes_the_unrolled_outputs_and_gradients(both, outputs):
    unrolled, scanned, params, stacked = both
    x = jax.random.normal(jax.random.key(1), (3, 10, WIDTH))
    valid = jnp.arange(10)[None] < jnp.array([[10], [7], [5]])
    run = lambda model: jax.jit(lambda p: model(p, x, valid, outputs))
    np.testing.assert_allclose(run(scanned)(stacked), run(unrolled)(params), atol=1e-5)
    grad = lambda model: jax.jit(jax.grad(lambda p: (model(p, x, valid, outputs) ** 2).sum()))
    grads = relayout(jax.tree.map(np.asarray, grad(scanned)(stacked)), params)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grad(unrolled)(params))):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_last_layers_are_the_last_blocks_outputs_through_the_final_norm_in_both_layouts(both):
    """Transformer.last_layers (the I-JEPA last-4-layers readout): block by block by hand."""
    from flax import nnx

    unrolled, scanned, params, stacked = both
    x = jax.random.normal(jax.random.key(1), (3, 10, WIDTH))
    module = nnx.merge(unrolled.graphdef, params)
    hidden, h = [], x
    for block in module.blocks:
        h = block(h)
        hidden.append(module.norm(h))
    for n in (2, len(hidden), len(hidden) + 1):  # more than the depth: every layer
        expected = jnp.stack(hidden[-n:])
        for model, p in ((unrolled, params), (scanned, stacked)):
            got = jax.jit(lambda p: model.method("last_layers", p, x, n))(p)
            np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(hidden[-1], unrolled(params, x), atol=1e-5)


def test_stacked_init_keeps_each_layers_output_projection_scale():
    params = jax.jit(stack(True, depth=6).init)(jax.random.key(3))
    kernel = np.asarray(params["blocks"]["mlp"]["fc2"]["kernel"])
    # I-JEPA's fix_init_weight: layer i's residual projections have std 0.02 / sqrt(2 i),
    # drawn from a normal truncated at 2 std (std factor 0.880)
    expected = 0.02 * 0.880 / np.sqrt(2.0 * np.arange(1, 7))
    np.testing.assert_allclose(kernel.reshape(6, -1).std(1), expected, rtol=0.06)


def lowered_size(depth: int, scan: bool) -> int:
    model = stack(scan, depth)
    params = jax.eval_shape(model.init, jax.random.key(0))
    x = jax.ShapeDtypeStruct((2, 8, WIDTH), jnp.float32)
    grad = jax.jit(jax.grad(lambda p, x: (model(p, x) ** 2).sum()))
    return len(grad.lower(params, x).as_text())


def test_scanned_program_holds_one_block_whatever_the_depth():
    scanned = lowered_size(8, True), lowered_size(16, True)
    unrolled = lowered_size(8, False), lowered_size(16, False)
    assert scanned[1] < 1.02 * scanned[0]
    assert unrolled[1] > 1.6 * unrolled[0]


def test_weight_decay_and_layer_decay_are_per_layer_for_stacked_blocks(both):
    _, _, params, stacked = both
    mask, expected = decay_mask(stacked), decay_mask(params)
    assert mask["blocks"] == expected["blocks"][0] == expected["blocks"][3]
    assert mask["norm"] == expected["norm"]
    assert not mask["blocks"]["attn"]["proj"]["bias"]  # (depth, width): still a bias
    per_layer = relayout(jax.tree.map(lambda s, p: np.broadcast_to(s, np.shape(p)),
                                      layer_scales(stacked, 0.5), stacked), params)
    for a, b, p in zip(jax.tree.leaves(per_layer), jax.tree.leaves(layer_scales(params, 0.5)),
                       jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, np.broadcast_to(b, np.shape(p)))


def test_init_from_loads_an_unrolled_runs_weights_into_a_scanned_model(tmp_path):
    source = tmp_path / "unrolled"
    train.run(small_ijepa(model__depth=2, train__steps=3), source)
    config = small_ijepa(model__depth=2, model__scan_layers="true", train__init_from=str(source))
    _, state = load_through_init_from(config)
    saved = saved_params(source)
    assert state.params["encoder"]["transformer"]["blocks"]["attn"]["qkv"]["kernel"].shape[0] == 2
    for part, ours in (("encoder", state.params["encoder"]), ("target", state.target)):
        theirs = saved["target"] if part == "target" else saved["params"]["encoder"]
        back = relayout(jax.tree.map(np.asarray, ours), theirs)
        for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(theirs)):
            np.testing.assert_array_equal(a, b)
    # and a scanned run trains through the whole loop
    train.run(small_ijepa(model__depth=2, model__scan_layers="true", train__steps=2),
              tmp_path / "scanned")
    assert saved_params(tmp_path / "scanned")["params"]["encoder"]["transformer"]["blocks"][
        "mlp"]["fc1"]["kernel"].shape[0] == 2


def test_scan_layers_rejects_a_value_it_does_not_know():
    with pytest.raises(ValueError, match="model.scan_layers='sometimes': use 'auto', true or false"):
        stack("sometimes")

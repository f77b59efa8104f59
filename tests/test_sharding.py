"""Meshes from config, logical rules, and state created sharded as the rules say."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jepax import optim, sharding, state as state_lib
from jepax.variants.ijepa import IJEPA
from tests.helpers import small_ijepa


@pytest.mark.parametrize("sizes, expected", [
    ((-1, 1, 1), (8, 1, 1)), ((2, -1, 1), (2, 4, 1)), ((1, 4, 2), (1, 4, 2)),
])
def test_mesh_shapes(sizes, expected):
    cfg = dict(zip(sharding.MESH_AXES, sizes))
    mesh = sharding.make_mesh(cfg)
    assert tuple(mesh.shape[a] for a in sharding.MESH_AXES) == expected
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


@pytest.mark.parametrize("sizes, match", [
    ((3, 1, 1), "needs 3 devices"), ((-1, -1, 1), "at most one -1"), ((3, -1, 1), "divisible"),
    ((0, 1, 1), "positive"),
])
def test_bad_meshes_are_clear_errors(sizes, match):
    with pytest.raises(sharding.MeshError, match=match):
        sharding.make_mesh(dict(zip(sharding.MESH_AXES, sizes)))


def test_logical_to_spec_replicates_indivisible_dims():
    mesh = sharding.make_mesh(dict(data=1, fsdp=4, tensor=2))
    rules = dict(sharding.DEFAULT_RULES)
    assert sharding.logical_to_spec(("embed", "mlp"), (64, 256), mesh, rules) == P("fsdp", "tensor")
    assert sharding.logical_to_spec(("embed", "mlp"), (6, 256), mesh, rules) == P(None, "tensor")
    assert sharding.logical_to_spec(("heads", "kv"), (3, 16), mesh, rules) == P(None, None)
    # a mesh axis is used once per array
    assert sharding.logical_to_spec(("embed", "embed"), (8, 8), mesh, rules) == P("fsdp", None)


@pytest.mark.parametrize("sizes", [(8, 1, 1), (2, 4, 1), (1, 4, 2)])
def test_state_is_created_sharded_by_the_rules(sizes):
    config = small_ijepa(model__width=64, model__heads=4, model__pred_width=32,
                         model__pred_heads=2)
    mesh = sharding.make_mesh(dict(zip(sharding.MESH_AXES, sizes)))
    rules = dict(sharding.DEFAULT_RULES)
    variant = IJEPA(config)
    sched = optim.schedules(config.optim, 10)
    tx = optim.optimizer(config.optim, sched)
    with jax.set_mesh(mesh):
        sh = state_lib.state_shardings(variant, tx, mesh, rules)
        st = state_lib.create(variant, tx, sh, seed=0)
    fsdp, tensor = mesh.shape["fsdp"], mesh.shape["tensor"]
    fc1 = st.params["encoder"]["transformer"]["blocks"][0]["mlp"]["fc1"]["kernel"]  # (64, 256)
    expected = P("fsdp" if fsdp > 1 else None, "tensor" if tensor > 1 else None)
    assert fc1.sharding.spec == expected
    assert fc1.addressable_shards[0].data.shape == (64 // fsdp, 256 // tensor)
    qkv = st.params["encoder"]["transformer"]["blocks"][0]["attn"]["qkv"]["kernel"]  # (64,3,4,16)
    assert qkv.addressable_shards[0].data.shape == (64 // fsdp, 3, 4 // tensor, 16)
    # Adam moments are sharded like their parameters; the target like the encoder
    mu = st.opt_state[0].mu["encoder"]["transformer"]["blocks"][0]["mlp"]["fc1"]["kernel"]
    assert mu.sharding.spec == expected
    tgt = st.target["transformer"]["blocks"][0]["mlp"]["fc1"]["kernel"]
    assert tgt.sharding.spec == expected
    np.testing.assert_array_equal(np.asarray(tgt), np.asarray(fc1))
    # norms and biases of unsharded dims are replicated
    assert st.params["encoder"]["transformer"]["norm"]["scale"].sharding.spec == P(None)
    assert "total parameters" in sharding.sharding_report(st.params)


def test_init_is_identical_across_meshes():
    config = small_ijepa(model__width=64, model__heads=4)
    variant = IJEPA(config)
    tx = optim.optimizer(config.optim, optim.schedules(config.optim, 10))
    out = []
    for sizes in [(8, 1, 1), (1, 4, 2)]:
        mesh = sharding.make_mesh(dict(zip(sharding.MESH_AXES, sizes)))
        with jax.set_mesh(mesh):
            sh = state_lib.state_shardings(variant, tx, mesh, dict(sharding.DEFAULT_RULES))
            out.append(jax.device_get(state_lib.create(variant, tx, sh, seed=0).params))
    for a, b in zip(jax.tree.leaves(out[0]), jax.tree.leaves(out[1])):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

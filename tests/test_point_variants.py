"""Point-JEPA and 3D-JEPA end to end: each `:tiny` config (shrunk further) trains on the small
default shapes folder with a falling loss, resumes bit for bit, and is evaluated by the SVM,
few-shot, retrieval and RankMe evaluators against random init and the D2 baseline; the
predictors and FLOP counts behave as documented."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jepax import train, variants
from jepax.config import ConfigError, load_config
from jepax.models.functional import Functional
from jepax.models.layers import normalize_features
from jepax.models.point_transformer import ContextAwareDecoder, PointPredictor
from jepax.state import CHEAP_COMPILE
from tests.helpers import ROOT, assert_resumes_bit_for_bit, losses

VARIANTS = ("point_jepa", "jepa3d")


def small(name, **train_kw):
    """The :tiny preset shrunk further (one block each, 16 patches of 8 points)."""
    c = load_config(str(ROOT / "experiments" / f"{name}.py") + ":tiny")
    c.model.update(num_groups=16, group_size=8, depth=1, pred_depth=1)
    c.data.points = 256
    c.train.update({**dict(steps=16, batch_size=16, log_every=1, checkpoint_every=8),
                    **train_kw})
    c.optim.update(lr=2e-3, warmup_steps=2)
    c.logging.update(progress=False, tensorboard=False)
    c.evals.few_shot.update(ways=3, shots=4, queries=5, episodes=2)
    return c


@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
    """Each variant compiles the same step three times (one run, two resumed halves): a
    persistent compilation cache for this module compiles it once."""
    options = {"jax_compilation_cache_dir": str(tmp_path_factory.mktemp("xla_cache")),
               "jax_persistent_cache_min_compile_time_secs": 0.0}
    saved = {k: getattr(jax.config, k) for k in options}
    for k, v in options.items():
        jax.config.update(k, v)
    yield
    for k, v in saved.items():
        jax.config.update(k, v)


@pytest.fixture(scope="module", params=VARIANTS)
def run(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(request.param)
    return request.param, workdir, train.run(small(request.param), workdir)


def test_tiny_trains_with_falling_loss_and_is_evaluated_against_baselines(run):
    name, workdir, summary = run
    curve = losses(workdir)
    assert len(curve) == 16 and np.mean(curve[-4:]) < 0.8 * np.mean(curve[:4]), curve
    rows = summary["eval"]
    assert set(rows) == {"pretrained", "random init", "D2 shape distribution"}
    for row in rows.values():
        assert {"svm_acc", "svm_acc_std", "few_shot_acc", "retrieval_top1", "rankme"} <= set(row)
        assert row["svm_seeds"] == 2
    # 13 classes (chance 0.08): both encoders' features are well above chance (not more: 3D-JEPA's
    # student is already collapsing here, RankMe ~2, SVM 0.26); D2 is rotation invariant, so it
    # finds the rotated instances.
    assert min(rows[r]["svm_acc"] for r in ("pretrained", "random init")) > 0.2
    assert rows["D2 shape distribution"]["retrieval_top1"] > 0.3


def test_tiny_resumes_bit_for_bit(run, tmp_path):
    name, ref_dir, _ = run
    assert_resumes_bit_for_bit(small(name), tmp_path, ref_dir, stop_at=8)


class PredictorProbe:
    """A small predictor of class `cls`, its outputs for two different context features, with
    chosen parameter subtrees zeroed."""

    def __init__(self, cls):
        kw = dict(in_dim=16, dim=16, depth=3, heads=2, mlp_ratio=2.0, pos_hidden=8,
                  dtype=jnp.float32, attention_impl="einsum")
        net = Functional(lambda rngs: cls(rngs=rngs, **kw))
        key = jax.random.key(0)
        self.params = jax.jit(net.init).lower(key).compile(compiler_options=CHEAP_COMPILE)(key)
        self.apply = jax.jit(net.__call__)
        rng = np.random.default_rng(0)
        self.z1, self.z2 = (jnp.asarray(rng.normal(size=(2, 6, 16)), jnp.float32)
                            for _ in range(2))
        self.ctx = jnp.asarray(rng.normal(size=(2, 6, 3)), jnp.float32)
        self.tgt = jnp.asarray(rng.normal(size=(2, 3, 4, 3)), jnp.float32)
        self.valid = jnp.ones((2, 6), bool).at[:, -1].set(False)  # the last token is padding

    def outputs(self, silence=()):
        params = jax.tree.map(lambda x: x, self.params)
        for path in silence:  # e.g. "context/1": the second layer's context projection
            *parents, leaf = [int(k) if k.isdigit() else k for k in path.split("/")]
            node = params
            for key in parents:
                node = node[key]
            node[leaf] = jax.tree.map(jnp.zeros_like, node[leaf])
        run = lambda z: np.asarray(self.apply(params, z, self.ctx, self.valid, self.tgt,
                                              jnp.ones((2, 3, 4), bool)))
        out1 = run(self.z1)
        assert out1.shape == (2, 3, 4, 16)
        np.testing.assert_allclose(run(self.z1.at[:, -1].set(100.0)), out1, atol=1e-5)  # padding
        return out1, run(self.z2)


def test_context_aware_decoder_reads_the_context_at_every_layer():
    # Plain predictor: the context enters only through its input embedding.
    plain = PredictorProbe(PointPredictor)
    a, b = plain.outputs()
    assert np.abs(a - b).max() > 1e-3
    a, b = plain.outputs(silence=("embed",))
    np.testing.assert_allclose(a, b, atol=1e-6)
    # Context-aware decoder: silencing the context of every layer but one still leaves the
    # output depending on the context, for each layer; silencing all removes it.
    decoder = PredictorProbe(ContextAwareDecoder)
    for layer in range(3):
        a, b = decoder.outputs(silence=[f"context/{i}" for i in range(3) if i != layer])
        assert np.abs(a - b).max() > 1e-3, layer
    a, b = decoder.outputs(silence=[f"context/{i}" for i in range(3)])
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("name", VARIANTS)
def test_bad_settings_fail_before_training(name):
    c = load_config(str(ROOT / "experiments" / f"{name}.py") + ":tiny")
    c.model.num_groups = 600
    with pytest.raises(ConfigError, match="must not exceed data.points"):
        variants.build(c)
    c = load_config(str(ROOT / "experiments" / f"{name}.py") + ":tiny")
    c.data.augment = ("flip",)
    with pytest.raises(ConfigError, match="unknown"):
        variants.build(c)
    c = load_config(str(ROOT / "experiments" / f"{name}.py") + ":tiny")
    c.model.pointnet_norm = "batch"
    with pytest.raises(ConfigError, match=r"model.pointnet_norm='batch': use one of"):
        variants.build(c)


def test_jepa3d_plain_predictor_ablation_and_flops():
    c = load_config(str(ROOT / "experiments" / "jepa3d.py") + ":tiny")
    aware = variants.build(c)
    c.model.predictor = "plain"
    plain = variants.build(c)
    p_aware, p_plain = (jax.eval_shape(v.init_params, jax.random.key(0)) for v in (aware, plain))
    assert "context" in p_aware["predictor"] and "transformer" in p_plain["predictor"]
    # The decoder updates only the target queries in every layer: fewer FLOPs than the plain
    # predictor, which also rewrites the context tokens.
    assert aware.flops_per_step(16) < plain.flops_per_step(16)
    c.model.predictor = "cross"
    with pytest.raises(ConfigError, match="model.predictor"):
        variants.build(c)


def zero_params_and_one_target(c):
    """The variant's parameters all 0 and an EMA target encoder all 1: which one a function
    returns is visible in its values."""
    shapes = jax.eval_shape(variants.build(c).init_params, jax.random.key(0))
    params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return params, jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes["encoder"])


def test_point_jepa_official_teacher_embeds_with_the_online_tokenizer():
    c = load_config(str(ROOT / "experiments" / "point_jepa.py") + ":tiny")
    params, target = zero_params_and_one_target(c)
    assert variants.build(c).teacher(params, target) is target  # default: the EMA encoder
    c.model.official = True
    teacher = variants.build(c).teacher(params, target)
    online = lambda part: all(float(x.max()) == 0 for x in jax.tree.leaves(teacher[part]))
    assert online("tokenizer") and online("pos") and not online("blocks")


def test_multi_layer_targets_average_the_last_blocks_each_normalized():
    c = load_config(str(ROOT / "experiments" / "point_jepa.py") + ":tiny")
    c.model.update(num_groups=16, group_size=8, depth=3)
    c.data.points = 256
    variant = variants.build(c)
    params = variant.init_params(jax.random.key(0))["encoder"]
    groups, centres = variant.tokenize(jax.random.normal(jax.random.key(1), (2, 256, 3)))
    # Each block's output, by running the blocks one at a time (positions before every block).
    module = nnx.merge(variant.encoder.graphdef, params)
    x, pos = module.tokenizer.embed(groups), module.pos(centres)
    outputs = []
    for block in module.blocks:
        x = block(x + pos, None)
        outputs.append(x)
    encode = lambda k: variant.encoder(params, groups, centres, final_norm=False, average_last=k)
    np.testing.assert_array_equal(encode(1), outputs[-1])  # the default: the raw last block
    expected = sum(normalize_features(h) for h in outputs[-2:]) / 2
    np.testing.assert_allclose(encode(2), expected, atol=1e-5)
    assert np.abs(encode(2) - normalize_features(outputs[-1])).max() > 1e-2
    c.model.target_layers = 4
    with pytest.raises(ConfigError, match="model.target_layers=4"):
        variants.build(c)


def test_eval_encoder_switch_evaluates_the_ema_teacher():
    c = load_config(str(ROOT / "experiments" / "point_jepa.py") + ":tiny")
    params, target = zero_params_and_one_target(c)
    assert variants.build(c).eval_params(params, target) is params["encoder"]
    c.model.eval_encoder = "teacher"
    assert variants.build(c).eval_params(params, target) is target
    c.model.eval_encoder = "ema"
    with pytest.raises(ConfigError, match="model.eval_encoder='ema'"):
        variants.build(c)

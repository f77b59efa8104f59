"""Brain-JEPA (jepax/variants/brain_jepa.py): token grid, brain-gradient positions, loss, the
classical baselines, its evaluators (regression probe, fine-tuning, collapse guard), and
`experiments/brain_jepa.py:tiny` training with falling loss and resuming bit for bit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from data_pipelines.pipeline import eval_arrays, train_dataset
from jepax import train
from jepax.config import ConfigError, load_config
from jepax.evaluators.base import Row
from jepax.evaluators.collapse import CollapseGuard, RepresentationCollapse
from jepax.evaluators.fine_tune import FineTune, layer_scales
from jepax.evaluators.regression_probe import ridge_probe
from jepax.models.posemb import RoiTimePositions, sincos_1d
from jepax.models.tokenizers import RoiPatches
from jepax.variants.brain_jepa import BrainJEPA, _fc_features
from jepax.variants.jepa import normalize_over_batch
from tests.helpers import ROOT, assert_resumes_bit_for_bit, losses

CONFIG = str(ROOT / "experiments" / "brain_jepa.py")


def tiny(**sections):
    """:tiny shrunk for tests: HCP only, 80 ROIs x 3 time patches of 4 frames, batch 8."""
    c = load_config(CONFIG + ":tiny")
    c.logging.update(progress=False, tensorboard=False)
    c.model.update(width=16, heads=2, pred_width=8, pred_heads=2, patch=4)
    c.data.update(sets=("hcp",), frames=12, gradient_dims=4, eval_windows=3)
    c.train.update(batch_size=8, log_every=1)
    c.optim.update(lr=3e-3, start_lr=3e-4, warmup_steps=2)
    for key, value in sections.items():
        section, name = key.split("__")
        c[section][name] = value
    return c


@pytest.fixture(scope="module")
def model():
    variant = BrainJEPA(tiny())
    params = jax.jit(variant.init_params)(jax.random.key(0))
    return variant, params


def test_tokens_are_roi_major_time_patches(model):
    variant, _ = model
    bold = np.arange(2 * 80 * 24, dtype=np.float32).reshape(2, 80, 24)
    patches = RoiPatches(4, 8, dtype=jnp.float32, rngs=nnx.Rngs(0)).split(bold)
    assert patches.shape == (2, 80 * 6, 4) and variant.grid == (80, 3)
    # token r * 6 + t holds ROI r's frames 4t .. 4t + 3
    np.testing.assert_array_equal(patches[1, 13 * 6 + 5], bold[1, 13, 20:24])


def positions_of(variant, params, part):
    module = variant.encoder if part == "encoder" else variant.predictor
    return np.asarray(nnx.merge(module.graphdef, params[part]).positions())


def test_gradient_positions_are_sincos_time_then_rescaled_gradient_projection(model):
    variant, params = model
    pos = positions_of(variant, params, "encoder")
    width = variant.config.model.width
    assert pos.shape == (80 * 3, width)
    t = np.tile(np.arange(3), 80)
    np.testing.assert_allclose(pos[:, :width // 2], sincos_1d(width // 2, t), atol=1e-6)
    spatial = pos[:, width // 2:]
    assert spatial.min() == pytest.approx(-1.0) and spatial.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(spatial[0], spatial[2])        # one ROI, all its time patches
    assert not np.allclose(spatial[0], spatial[3])                # ROIs differ
    # the predictor has its own projection (and width)
    pred = positions_of(variant, params, "predictor")
    assert pred.shape == (240, variant.config.model.pred_width)
    assert params["encoder"]["positions"]["proj"]["kernel"].shape == (4, width // 2)
    assert params["predictor"]["positions"]["proj"]["kernel"].shape == (4, 4)


def test_positions_ablations():
    sincos = RoiTimePositions(None, 3, 16, dtype=jnp.float32, rngs=nnx.Rngs(0), rois=80)
    np.testing.assert_allclose(np.asarray(sincos())[:, 8:],
                               sincos_1d(8, np.repeat(np.arange(80), 3)), atol=1e-6)
    assert BrainJEPA(tiny(model__positions="anatomy")).roi_features.shape == (80, 3)
    assert BrainJEPA(tiny(model__positions="sincos")).roi_features is None


def test_loss_ignores_padding_and_reports_collapse_monitors(model):
    variant, params = model
    rng = np.random.default_rng(0)
    masks = [variant.masks(rng) for _ in range(2)]
    batch = {k: jnp.asarray(np.stack([m[k] for m in masks])) for k in masks[0]}
    batch["bold"] = jnp.asarray(rng.normal(size=(2, 80, 12)), jnp.float32)
    loss_fn = jax.jit(lambda p, b: variant.loss(p, p["encoder"], b, None))
    loss, metrics = loss_fn(params, batch)
    assert np.isfinite(loss) and loss > 0
    assert set(metrics) == {"target_std", "target_std_min", "target_shared", "pred_std"}
    assert 0 < metrics["target_std"] <= 1.0 and metrics["pred_std"] > 0
    assert 0 < metrics["target_shared"] < 1.0
    moved = dict(batch, target_idx=jnp.where(batch["target_valid"], batch["target_idx"], 7))
    np.testing.assert_allclose(loss_fn(params, moved)[0], loss, rtol=1e-6)
    # target_std measures input dependence: identical inputs give identical targets
    same = dict(batch, bold=jnp.broadcast_to(batch["bold"][:1], batch["bold"].shape))
    assert float(loss_fn(params, same)[1]["target_std"]) < 1e-6


def test_batch_target_norm_removes_what_every_input_shares():
    """model.target_norm='layer_batch': each (token, dimension) of the targets has mean 0 and
    std 1 over the batch, whatever vector all inputs share at that token; 'layer_center' only
    removes the mean."""
    rng = np.random.default_rng(0)
    h = rng.normal(size=(6, 10, 8))
    idx = np.stack([rng.permutation(10)[:4].reshape(1, 4) for _ in range(6)])  # (B, M=1, T=4)
    gather = lambda h: np.take_along_axis(h, idx.reshape(6, 4, 1), axis=1).reshape(6, 1, 4, 8)
    targets = np.asarray(normalize_over_batch(jnp.asarray(gather(h)), jnp.asarray(h),
                                              jnp.asarray(idx), "layer_batch"))
    full = (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-5)
    np.testing.assert_allclose(targets, gather(full), rtol=1e-4, atol=1e-5)
    shared = h + 5 * rng.normal(size=(1, 10, 8))        # the same vector for every input
    np.testing.assert_allclose(
        normalize_over_batch(jnp.asarray(gather(shared)), jnp.asarray(shared),
                             jnp.asarray(idx), "layer_batch"), targets, rtol=1e-4, atol=1e-4)
    # layer_center: the shared vector goes, each dimension keeps its spread across inputs
    centred = normalize_over_batch(jnp.asarray(gather(shared)), jnp.asarray(shared),
                                   jnp.asarray(idx), "layer_center")
    np.testing.assert_allclose(centred, gather(h - h.mean(0)), rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="target_norm='batch'.*layer_batch"):
        BrainJEPA(tiny(model__target_norm="batch"))


def test_fc_baseline_is_the_upper_triangle_of_each_windows_correlation():
    bold = np.random.default_rng(0).normal(size=(3, 5, 40)).astype(np.float32)
    features = _fc_features({"bold": bold})
    iu = np.triu_indices(5, 1)
    np.testing.assert_allclose(features[1], np.corrcoef(bold[1])[iu], atol=1e-5)


def test_ridge_probe_recovers_a_linear_target_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 30))
    y = x @ rng.normal(size=30) + rng.normal(size=200)
    good = ridge_probe(x[:150], y[:150], x[150:], y[150:])
    assert good["r"] > 0.95 and good["mse"] < 0.15
    noise = ridge_probe(rng.normal(size=(150, 30)), y[:150], x[150:], y[150:])
    assert abs(noise["r"]) < 0.5 and noise["mse"] > 0.9


def test_fine_tune_layer_decay_follows_beit_and_official_turns_it_off(model):
    variant, params = model
    depth = variant.config.model.depth  # 1 block in :tiny
    scales = layer_scales(params["encoder"], 0.5)
    assert scales["transformer"]["blocks"][0]["mlp"]["fc1"]["kernel"] == 0.5 ** (depth + 1 - 1)
    assert scales["tokenizer"]["proj"]["kernel"] == 0.5 ** (depth + 1)
    assert scales["positions"]["proj"]["kernel"] == 0.5 ** (depth + 1)
    assert scales["transformer"]["norm"]["scale"] == 1.0
    assert set(jax.tree.leaves(layer_scales(params["encoder"], 0.5, official=True))) == {1.0}


def test_fine_tune_evaluator_learns_an_easy_task_on_a_model_row_and_skips_baselines(model):
    """Windows whose first 40 ROIs have 3x the amplitude vs not: fine-tuning the model row's
    (random-init) encoder separates them; a model-free row has nothing to fine-tune."""
    variant, params = model
    rng = np.random.default_rng(0)
    y = np.arange(96) % 2
    x = rng.normal(size=(96, 80, 12)).astype(np.float32)
    x[y == 1, :40] *= 3
    splits = {"train": {"bold": x[:64], "label": y[:64]}, "test": {"bold": x[64:], "label": y[64:]}}
    evaluator = FineTune("ft", {**FineTune.DEFAULTS, "every": 0, "steps": 60, "base_lr": 0.1})
    data = lambda split, n: splits[split]
    res = evaluator.evaluate(Row("random init", data, params["encoder"], variant))
    assert res["ft_acc"] > 0.9, res
    assert evaluator.evaluate(Row("FC", data)) == {}


def test_fine_tune_scratch_layer_decay_applies_to_the_random_init_row_only(model, monkeypatch):
    """Training from scratch gets its own layer-wise decay; the pretrained row keeps
    layer_decay. The real fine-tuning runs; the spy only records what each row got."""
    from jepax.evaluators import fine_tune as fine_tune_module
    variant, params = model
    rng = np.random.default_rng(0)
    splits = {s: {"bold": rng.normal(size=(16, 80, 12)).astype(np.float32),
                  "label": np.arange(16) % 2} for s in ("train", "test")}
    got = {}
    real = fine_tune_module.fine_tune

    def spy(*args, layer_decay, **kwargs):
        got[len(got)] = layer_decay
        return real(*args, layer_decay=layer_decay, **kwargs)

    monkeypatch.setattr(fine_tune_module, "fine_tune", spy)
    block = {**FineTune.DEFAULTS, "every": 0, "steps": 2, "layer_decay": 0.5,
             "scratch_layer_decay": 1.0}
    evaluator = FineTune("ft", block)
    data = lambda split, n: splits[split]
    res = evaluator.evaluate(Row("random init", data, params["encoder"], variant))
    evaluator.evaluate(Row("pretrained", data, params["encoder"], variant))
    assert got == {0: 1.0, 1: 0.5}
    assert res["ft_minutes"] > 0
    with pytest.raises(ConfigError, match="scratch_layer_decay"):
        FineTune("ft", {**block, "scratch_layer_decay": 0.0})


def test_collapse_guard_stops_only_a_collapsed_pretrained_row():
    block = {"type": "collapse", "every": 10, "outputs": "features", "split": "train",
             "examples": 64, "min_spread": 1e-3, "min_rank": 1.5}
    guard = CollapseGuard("collapse", block)
    rng = np.random.default_rng(0)
    healthy = rng.normal(size=(64, 16)) + 5.0
    collapsed = np.tile(rng.normal(size=16), (64, 1)) + 1e-6 * rng.normal(size=(64, 16))
    row = lambda name, f: Row(name, lambda split, n: {"features": f})
    assert guard.evaluate(row("pretrained", healthy))["collapse_rank"] > 5
    assert guard.evaluate(row("random init", collapsed))["collapse_spread"] < 1e-3
    with pytest.raises(RepresentationCollapse, match="collapsed.*spread.*Training stopped"):
        guard.evaluate(row("pretrained", collapsed))


def test_official_masks_come_per_batch_into_the_loss():
    variant = BrainJEPA(tiny(data__frames=24, mask__official=True))  # 6 time patches
    assert variant.example_fn()({"scan": np.ones((80, 200), np.float32)},
                                np.random.default_rng(0)).keys() == {"bold"}
    batch = variant.batch_fn()({"bold": np.random.default_rng(0).normal(
        size=(8, 80, 24)).astype(np.float32)}, np.random.default_rng(1))
    assert batch["target_idx"].shape[:2] == (8, 1)
    abstract = jax.eval_shape(variant.init_params, jax.random.key(0))
    loss, _ = jax.eval_shape(lambda p, b: variant.loss(p, p["encoder"], b, None), abstract, batch)
    assert loss.shape == ()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("brain_jepa")
    config = tiny(train__steps=16, train__checkpoint_every=8)
    config.eval.evaluators = ("collapse", "fingerprint")
    config.evals.fingerprint.steps = 50
    return workdir, train.run(config, workdir)


def test_tiny_trains_with_falling_loss_and_is_evaluated(tiny_run):
    workdir, summary = tiny_run
    curve = losses(workdir)
    assert len(curve) == 16 and np.mean(curve[-4:]) < 0.92 * np.mean(curve[:4]), curve
    rows = summary["eval"]
    assert set(rows) == {"pretrained", "random init", "raw ROI series", "FC"}
    assert rows["FC"]["fingerprint_acc"] > 0.5          # FC fingerprints subjects (chance 1/7)
    assert rows["pretrained"]["collapse_rank"] > 1.5


def test_tiny_resumes_bit_for_bit(tiny_run, tmp_path):
    ref_dir, _ = tiny_run
    config = tiny(train__steps=16, train__checkpoint_every=8)
    assert_resumes_bit_for_bit(config, tmp_path, ref_dir, stop_at=8)


def test_a_folder_of_your_own_scans_feeds_the_variant_and_its_labelled_splits(tmp_path):
    """Your files with one flag: .tsv scans (time x ROI) with a split file carrying labels."""
    rng = np.random.default_rng(0)
    lines = ["subject,split,label"]
    for i in range(6):
        scan = rng.normal(size=(60, 10)).cumsum(0)  # time x ROI
        np.savetxt(tmp_path / f"sub{i}.tsv", scan, delimiter="\t")
        lines.append(f"sub{i},{'train' if i < 4 else 'test'},{i % 2}")
    (tmp_path / "splits.csv").write_text("\n".join(lines))
    config = tiny(data__dataset="fmri_folder", data__path=str(tmp_path), data__rois=10,
                  data__orientation="time_roi", data__sampling_rate=1, data__gradient_sparsity=0.5)
    variant = BrainJEPA(config)
    assert variant.roi_features.shape == (10, 4) and len(variant.train_source()) == 4
    batch = next(iter(train_dataset(variant.train_source(), seed=0, global_batch=8,
                                    example_fn=variant.example_fn())))
    assert batch["bold"].shape == (8, 10, 12) and batch["target_idx"].shape[1] == 3
    test = eval_arrays(variant.eval_source("test"), None)
    assert test["bold"].shape == (6, 10, 12) and sorted(test["label"]) == [0, 0, 0, 1, 1, 1]

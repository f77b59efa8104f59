"""ACT-JEPA: the point-pushing task and its expert, demonstration files, chunk targets, the
masked losses, the EMA target, the evaluators and the tiny run (trains, resumes exactly)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines import demonstrations as demos
from data_pipelines import point_push
from data_pipelines.errors import DataError
from jepax import evaluators, train
from jepax.config import ConfigError, load_config
from jepax.evaluators.base import Row
from jepax.variants.act_jepa import ACTJEPA, temporal_ensemble
from tests.helpers import (ROOT, assert_resumes_bit_for_bit, assert_trees_equal, losses,
                           saved_params)

CONFIG = str(ROOT / "experiments" / "act_jepa.py")
pytestmark = pytest.mark.usefixtures("shared_compiles")  # one compile per program


# -- the environment -------------------------------------------------------------------------
def test_scripted_expert_solves_both_tasks_from_every_seed():
    seeds = np.arange(64)
    episodes = point_push.expert_episodes(seeds, seeds % 2)
    solved = episodes["solved_at"]
    assert (solved > 0).all(), seeds[solved <= 0]
    # Pushing takes a detour around the block; it is not solved by luck in a step or two.
    assert np.median(solved[seeds % 2 == 0]) > 15


@jax.jit
def _trace(seed, task, actions):
    """Every state of an episode from `seed` driven by `actions`."""
    def one(state, action):
        nxt = point_push.step(state, action)
        return nxt, nxt
    start = point_push.reset(jax.random.key(seed), task)
    states = jax.lax.scan(one, start, actions)[1]
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), start, states)


def test_reset_and_step_are_deterministic_per_seed():
    actions = jax.random.uniform(jax.random.key(9), (40, 2), minval=-1, maxval=1)
    first, again, other = (_trace(s, 0, actions) for s in (3, 3, 4))
    assert_trees_equal(first, again)
    assert not np.array_equal(first["block"][0], other["block"][0])
    moves = np.abs(np.diff(np.asarray(first["robot"]), axis=0))
    assert moves.max() <= point_push.STEP + 1e-6


def test_only_push_moves_the_block_and_render_draws_the_robot():
    start = point_push.reset(jax.random.key(0), 0)
    towards = np.sign(np.asarray(start["block"] - start["robot"]))
    actions = jnp.broadcast_to(jnp.asarray(towards, jnp.float32), (40, 2))
    push, reach = _trace(0, 0, actions), _trace(0, 1, actions)
    np.testing.assert_array_equal(push["robot"], reach["robot"])  # same robot path
    assert not np.array_equal(push["block"][-1], push["block"][0])
    assert (np.asarray(reach["block"]) == np.asarray(reach["block"][0])).all()
    image = np.asarray(point_push.render(start, 32))
    row, col = ((np.array([-start["robot"][1], start["robot"][0]]) + 1) / 2 * 32).astype(int)
    assert image[row, col, 0] > 200 and image[row, col, 1] < 100  # red robot


# -- files -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demos") / "npz"
    demos.record_point_push(folder, 4)  # the expert test's compiled program
    return folder


def test_npz_robomimic_and_act_hdf5_files_read_back_the_same_episodes(recorded, tmp_path):
    episodes = demos.read_episodes(recorded)
    assert [e.task for e in episodes] == [0, 1, 0, 1] and len(sorted(recorded.glob("*.npz"))) == 4
    robomimic = demos.write_robomimic_hdf5(episodes, tmp_path / "demo.hdf5",
                                           image_key="agentview_image", proprio_key="joints")
    act = demos.write_act_hdf5(episodes, tmp_path / "act", image_key="top", proprio_key="qpos")
    for back in (demos.read_episodes(robomimic, "agentview_image", "joints"),
                 demos.read_episodes(act, "top", "qpos")):
        assert len(back) == 4
        for a, b in zip(episodes, back):
            for key in ("image", "proprio", "action", "task"):
                np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


def test_bad_demonstration_files_are_clear_errors(recorded, tmp_path):
    with pytest.raises(DataError, match="neither a folder"):
        demos.read_episodes(tmp_path / "missing")
    episodes = demos.read_episodes(recorded)
    path = demos.write_robomimic_hdf5(episodes, tmp_path / "demo.hdf5")
    with pytest.raises(DataError, match="no dataset /data/demo_0/obs/agentview_image.*image_key"):
        demos.read_episodes(path, "agentview_image", "proprio")
    np.savez(tmp_path / "episode_0.npz", image=np.zeros((3, 8, 8, 3), np.uint8),
             proprio=np.zeros((2, 4)), action=np.zeros((3, 2)))
    with pytest.raises(DataError, match="same number of steps"):
        demos.read_episodes(tmp_path)


def test_metaworld_expert_episode_is_recorded_and_read_back(tmp_path):
    from data_pipelines import metaworld_demos

    folder = metaworld_demos.record(["reach-v3"], 1, tmp_path / "mw", image_size=32)
    (episode,) = demos.read_episodes(folder)
    assert episode.image.shape[1:] == (32, 32, 3) and episode.proprio.shape[1] == 4
    assert episode.action.shape[1] == 4 and episode.task == 0 and 5 < len(episode) < 500
    assert episode.image.std() > 10  # a rendered scene, not a blank frame
    # The expert reached: the hand's last position differs from its first.
    assert np.linalg.norm(episode.proprio[-1, :3] - episode.proprio[0, :3]) > 0.02


def test_files_without_a_simulator_refuse_the_closed_loop_evaluator_before_training(recorded):
    config = tiny()
    config.data.path = str(recorded)
    with pytest.raises(ConfigError, match="no simulator.*evaluators"):
        ACTJEPA(config)
    config.eval.evaluators = ("world_model",)
    assert ACTJEPA(config).demos.num_tasks == 2


def test_action_chunks_and_future_states_align_with_the_recorded_trajectory(recorded):
    episodes = demos.read_episodes(recorded)
    stats = demos.standardization(episodes)
    source = demos.ChunkSource(episodes, chunk=30, stats=stats)
    assert len(source) == sum(len(e) for e in episodes)
    ep = episodes[0]
    proprio = (ep.proprio - stats["proprio_mean"]) / stats["proprio_std"]
    action = (ep.action - stats["action_mean"]) / stats["action_std"]
    last = len(ep) - 1
    for t in (0, 5, last):
        x = source[t]
        assert x["step"] == t and x["episode"] == 0
        np.testing.assert_array_equal(x["image"], ep.image[t])
        np.testing.assert_allclose(x["proprio"], proprio[t])
        n_act, n_fut = min(30, len(ep) - t), min(30, len(ep) - t - 1)
        np.testing.assert_allclose(x["actions"][:n_act], action[t:t + n_act])
        np.testing.assert_allclose(x["future"][:n_fut], proprio[t + 1:t + 1 + n_fut])
        assert x["action_valid"].sum() == n_act and x["future_valid"].sum() == n_fut
        assert not x["actions"][n_act:].any() and not x["future"][n_fut:].any()
    assert source[last]["future_valid"].sum() == 0  # the last step has no future state


# -- the variant -----------------------------------------------------------------------------
def tiny(**overrides):
    c = load_config(CONFIG + ":tiny")
    c.train.update(log_every=1)
    c.logging.update(progress=False, tensorboard=False)
    for key, value in overrides.items():
        c.model[key] = value
    return c


@pytest.fixture(scope="module")
def variant():
    return ACTJEPA(tiny())


@pytest.fixture(scope="module")
def batch(variant):
    source = variant.train_source()
    items = [source[i] for i in range(len(source) - 12, len(source))]  # an episode's end
    return {k: np.stack([x[k] for x in items]) for k in items[0]}


@pytest.fixture(scope="module")
def loss_fn(variant):
    return jax.jit(variant.loss)


@pytest.fixture(scope="module")
def params(variant):
    return jax.jit(variant.init_params)(jax.random.key(0))


def gradients(variant, params, target, batch):
    """d loss / d (params, target), compiled (op by op it takes minutes on 2 cores)."""
    return jax.jit(jax.grad(lambda p, t: variant.loss(p, t, batch, None)[0], argnums=(0, 1)))(
        params, target)


def test_padded_steps_are_masked_out_of_both_losses(variant, params, batch, loss_fn):
    target = params["encoder"]
    assert not batch["future_valid"].all() and not batch["action_valid"].all()
    loss, metrics = loss_fn(params, target, batch, None)
    noisy = dict(batch)
    rng = np.random.default_rng(0)
    for key, valid in (("actions", "action_valid"), ("future", "future_valid")):
        junk = rng.normal(size=batch[key].shape).astype(np.float32) * 100
        noisy[key] = np.where(batch[valid][..., None], batch[key], junk)
    loss2, metrics2 = loss_fn(params, target, noisy, None)
    assert loss2 == loss and metrics2["jepa_l1"] == metrics["jepa_l1"]
    # ... and the valid steps do count, in each loss.
    for key, valid, metric in (("actions", "action_valid", "action_l1"),
                               ("future", "future_valid", "jepa_l1")):
        changed = dict(batch)
        changed[key] = np.where(batch[valid][..., None], batch[key] + 1.0, batch[key])
        assert loss_fn(params, target, changed, None)[1][metric] != metrics[metric], key


def test_ema_target_is_the_encoder_alone_and_gets_no_gradient(variant, params, batch):
    assert variant.ema_source(params) is params["encoder"]
    assert set(params) == {"encoder", "predictor", "decoder"}
    target = jax.tree.map(lambda a: a + 0.01, params["encoder"])
    grads = gradients(variant, params, target, batch)
    assert all(not np.asarray(g).any() for g in jax.tree.leaves(grads[1]))
    for name in ("encoder", "predictor", "decoder"):
        assert any(np.asarray(g).any() for g in jax.tree.leaves(grads[0][name])), name


def test_jepa_weight_zero_is_the_action_chunking_baseline(params, batch):
    baseline = ACTJEPA(tiny(jepa_weight=0.0))
    loss, metrics = jax.jit(baseline.loss)(params, params["encoder"], batch, None)
    assert set(metrics) == {"action_l1", "context_std"} and loss == metrics["action_l1"]
    grads = gradients(baseline, params, params["encoder"], batch)[0]
    assert all(not np.asarray(g).any() for g in jax.tree.leaves(grads["predictor"]))
    assert any(np.asarray(g).any() for g in jax.tree.leaves(grads["encoder"]))


def test_frozen_encoder_trains_only_the_heads(params, batch):
    frozen = ACTJEPA(tiny(freeze_encoder=True, action_weight=1.0))
    grads = gradients(frozen, params, params["encoder"], batch)[0]
    assert all(not np.asarray(g).any() for g in jax.tree.leaves(grads["encoder"]))
    assert any(np.asarray(g).any() for g in jax.tree.leaves(grads["decoder"]))


def test_temporal_ensemble_averages_every_earlier_chunks_prediction_for_this_step():
    k, decay = 4, 0.3
    predictions = np.random.default_rng(0).normal(size=(9, k, 2)).astype(np.float32)
    chunks = jnp.zeros((k, k, 2))
    for t in range(len(predictions)):
        chunks, action = temporal_ensemble(chunks, predictions[t], t, decay)
        # by hand: the chunks predicted at s = t-k+1 .. t, each entry t - s, older weigh more
        made = np.arange(max(0, t - k + 1), t + 1)
        weights = np.exp(decay * (t - made))
        expected = (weights[:, None] * predictions[made, t - made]).sum(0) / weights.sum()
        np.testing.assert_allclose(action, expected, rtol=1e-5, err_msg=f"step {t}")


class _EvalDataWithout:
    """What the runner knows before training (jepax.evaluators.base.EvalData), minus a key."""

    def __init__(self, missing):
        self.missing = missing

    def size(self, split):
        return 200

    def keys(self, split):
        return {"features", "future", "future_valid"} - {self.missing}


def test_world_model_probe_recovers_a_linear_future_and_ignores_padding():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    w = rng.normal(size=(8, 5 * 2)).astype(np.float32)
    future = (x @ w).reshape(600, 5, 2)
    valid = rng.random((600, 5)) > 0.3
    future = np.where(valid[..., None], future, 1e3)  # padding the probe must not fit
    split = {"train": {"features": x[:400], "future": future[:400], "future_valid": valid[:400]},
             "test": {"features": x[400:], "future": future[400:], "future_valid": valid[400:]}}
    probe = evaluators.build("wm", evaluators.block("world_model_probe", steps=1500, lr=3e-2,
                                                    weight_decay=0.0))
    scores = probe.evaluate(Row("pretrained", lambda s, n: split[s]))
    assert scores["wm_rmse"] < 0.05 * future[valid].std(), scores
    with pytest.raises(ConfigError, match="valid='future_valid'.*no such key"):
        probe.check_data(_EvalDataWithout("future_valid"))
    split["train"]["features"] = rng.normal(size=(400, 8)).astype(np.float32)
    noise = probe.evaluate(Row("pretrained", lambda s, n: split[s]))
    assert noise["wm_rmse"] > 0.8 * future[valid].std(), noise


# -- training --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("act_jepa")
    return workdir, train.run(tiny(), workdir)


def test_tiny_trains_with_falling_loss_and_evaluates_every_row(tiny_run):
    workdir, summary = tiny_run
    curve = losses(workdir)
    assert len(curve) == 40 and np.mean(curve[-5:]) < 0.85 * np.mean(curve[:3]), curve
    rows = summary["eval"]
    assert set(rows) == {"pretrained", "random init", "raw observation"}
    for name in ("pretrained", "random init"):
        assert {"closed_loop_success", "closed_loop_push", "world_model_rmse"} <= set(rows[name])
    assert "closed_loop_success" not in rows["raw observation"]
    record = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"action_l1", "jepa_l1", "target_std", "target_std_min", "pred_std", "ema"} <= set(record)


def test_tiny_resumes_bit_for_bit(tiny_run, tmp_path):
    ref_dir, _ = tiny_run
    assert_resumes_bit_for_bit(tiny(), tmp_path, ref_dir, stop_at=20)


def test_closed_loop_rollout_of_the_trained_policy_can_be_rendered(variant, tiny_run):
    workdir, _ = tiny_run
    state = saved_params(workdir, 40)
    # The target holds an EMA of the encoder alone: same tree, lagging values.
    target, encoder = state["target"], state["params"]["encoder"]
    assert jax.tree.structure(target) == jax.tree.structure(encoder)
    assert not np.array_equal(target["proprio"]["kernel"], encoder["proprio"]["kernel"])
    policy = variant.eval_params(state["params"], state["target"])
    out = variant.rollouts(policy, np.array([5, 6]), np.array([0, 1]), max_steps=10, execute=5,
                           frames=True)
    assert out["success"].shape == (2,) and out["frames"].shape == (2, 10, 128, 128, 3)
    assert out["frames"].dtype == np.uint8 and not np.array_equal(out["frames"][0, 0],
                                                                  out["frames"][0, -1])
    # Temporal ensembling: the first step runs the first chunk's first action (as open loop),
    # later steps averages of overlapping chunks (so the trajectories part).
    ensembled = variant.rollouts(policy, np.array([5, 6]), np.array([0, 1]), max_steps=10,
                                 execute=1, ensemble=0.01, frames=True)["frames"]
    assert ensembled.shape == out["frames"].shape
    np.testing.assert_array_equal(ensembled[:, 0], out["frames"][:, 0])
    assert not np.array_equal(ensembled[:, -1], out["frames"][:, -1])

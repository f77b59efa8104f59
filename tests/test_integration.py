"""End-to-end runs of train.run / jepax.main on Fashion-MNIST with 8 fake CPU devices."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from jepax import checkpoint, train
from jepax.config import ConfigError, load_config
from jepax.evaluators.report import eval_settings
from jepax.metrics import read_metrics
from data_pipelines.errors import DataError
from tests.helpers import (IJEPA, ROOT, assert_trees_equal, losses, run_main,
                           saved_params, small_flags, small_ijepa, tree_digest)

pytestmark = pytest.mark.usefixtures("shared_compiles")  # one compile per program


@pytest.fixture(scope="module")
def continuous(tmp_path_factory):
    """6 steps without stopping: the reference for resume and reshard."""
    workdir = tmp_path_factory.mktemp("continuous")
    summary = train.run(small_ijepa(), workdir)
    return workdir, summary


def test_training_on_fashion_mnist_decreases_loss(tmp_path):
    # The paper's targets: 30 steps of this small model learn them visibly; the default's
    # batch-standardized targets fall later (ijepa.py:tiny: ~15% over 60 steps).
    config = small_ijepa(train__steps=30, train__checkpoint_every=30, model__target_norm="layer")
    train.run(config, tmp_path)
    curve = losses(tmp_path)
    assert len(curve) == 30
    assert np.mean(curve[-5:]) < 0.8 * np.mean(curve[:3]), curve
    records = read_metrics(tmp_path)
    for key in ("lr", "step_s", "data_wait_s", "examples_per_s", "tflops_per_s", "grad_norm"):
        assert key in records[-1]
    events = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
              if "event" in l]
    assert events[0]["event"] == "compile" and events[0]["seconds"] > 0
    assert json.loads((tmp_path / "config.json").read_text())["variant"] == "ijepa"


def test_resume_gives_the_same_losses_and_parameters_bit_for_bit(continuous, tmp_path):
    ref_dir, _ = continuous
    first = train.run(small_ijepa(train__run_steps=3), tmp_path)
    assert first["step"] == 3
    second = train.run(small_ijepa(), tmp_path)
    assert second["step"] == 6
    np.testing.assert_array_equal(losses(tmp_path), losses(ref_dir))
    assert [r["step"] for r in read_metrics(tmp_path)] == list(range(1, 7))
    assert_trees_equal(saved_params(tmp_path, 6), saved_params(ref_dir, 6))


def test_resume_is_logged_and_uses_latest_checkpoint(continuous, tmp_path):
    train.run(small_ijepa(train__run_steps=4), tmp_path)  # checkpoints at 3 and 4
    result = run_main([f"--config={IJEPA}:tiny", f"--workdir={tmp_path}",
                       *small_flags(), "--config.train.run_steps=1"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from checkpoint at step 4" in result.stderr
    assert read_metrics(tmp_path)[-1]["step"] == 5


def test_reshard_restore_on_four_devices(continuous, tmp_path):
    ref_dir, _ = continuous
    train.run(small_ijepa(train__run_steps=3), tmp_path)  # saved on the (8, 1, 1) mesh
    result = run_main([f"--config={IJEPA}:tiny", f"--workdir={tmp_path}", *small_flags(),
                       "--config.mesh.data=2", "--config.mesh.fsdp=2"], devices=4)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from checkpoint at step 3" in result.stderr
    assert "'data': 2, 'fsdp': 2" in result.stderr
    # Same data, same parameters: the 4-device continuation matches the 8-device run up to
    # floating-point reduction order.
    np.testing.assert_allclose(losses(tmp_path), losses(ref_dir), rtol=2e-4)


def test_unknown_config_key_is_an_error():
    result = run_main([f"--config={IJEPA}:tiny", "--config.train.stepz=3"], devices=1)
    assert result.returncode != 0
    assert "stepz" in result.stderr
    with pytest.raises(AttributeError, match="lrr"):
        small_ijepa().optim.lrr = 1.0  # locked: typos in Python are errors too


def test_unknown_preset_is_an_error():
    with pytest.raises(ConfigError, match="unknown preset 'tinny'.*tiny"):
        from jepax.config import load_config
        load_config(IJEPA + ":tinny")


def test_batch_not_divisible_by_data_axes(tmp_path):
    with pytest.raises(ConfigError, match="batch_size=12 is not divisible by the 8 batch shards"):
        train.run(small_ijepa(train__batch_size=12), tmp_path)


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist.*apt-get install dataset-fashion-mnist"):
        train.run(small_ijepa(data__path=str(tmp_path / "nowhere")), tmp_path / "run")


def test_nan_loss_stops_with_last_good_checkpoint_intact(tmp_path):
    train.run(small_ijepa(train__run_steps=3), tmp_path)
    # std 0 turns every pixel into inf/NaN: the next step's loss is not finite.
    bad = small_ijepa(data__std=(0.0,), train__allow_config_change=True)
    with pytest.raises(train.NonFiniteLossError, match="not finite at step 4.*last good checkpoint "
                                                       "is step 3"):
        train.run(bad, tmp_path)
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", read_only=True)
    assert ckpt.steps() == [3]
    ckpt.close()
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(saved_params(tmp_path, 3)))
    assert train.run(small_ijepa(), tmp_path)["step"] == 6  # resumes fine from step 3


def test_workdir_of_a_different_config_is_refused(tmp_path):
    train.run(small_ijepa(train__run_steps=3), tmp_path)
    before = tree_digest(tmp_path)
    with pytest.raises(ConfigError, match="different config.*model.depth: 1 -> 2"):
        train.run(small_ijepa(model__depth=2), tmp_path)
    assert tree_digest(tmp_path) == before  # the whole workdir, byte for byte


def test_a_run_saved_on_8_devices_loads_in_a_1_device_process(continuous):
    """What init_from, the converters and the recorders read (Checkpointer.restore_params)
    must not depend on the device count the run was trained with."""
    ref_dir, _ = continuous
    code = ("import sys, jax, numpy as np; from tests.helpers import saved_params; "
            "p = saved_params(sys.argv[1]); "
            "print(len(jax.devices()), repr(sum(float(np.abs(x).sum()) for x in jax.tree.leaves(p))))")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    out = subprocess.run([sys.executable, "-c", code, str(ref_dir)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    devices, total = out.stdout.split()
    here = sum(float(np.abs(x).sum()) for x in jax.tree.leaves(saved_params(ref_dir)))
    assert (int(devices), float(total)) == (1, here)


def test_init_from_another_run(continuous, tmp_path):
    ref_dir, _ = continuous
    config = small_ijepa(train__init_from=str(ref_dir), train__run_steps=1)
    train.run(config, tmp_path)
    ref, ours = saved_params(ref_dir), saved_params(tmp_path, 1)
    # after one EMA update near 0.996 the target is still within 1% of the loaded one
    a = ref["target"]["tokenizer"]["proj"]["kernel"]
    b = ours["target"]["tokenizer"]["proj"]["kernel"]
    assert np.abs(a - b).max() < 0.01 * np.abs(a).max()
    mismatched = small_ijepa(train__init_from=str(ref_dir), model__width=64, model__heads=4)
    with pytest.raises(ConfigError, match="does not match this model"):
        train.run(mismatched, tmp_path / "other")


def test_evaluators_write_results(tmp_path):
    config = small_ijepa(train__steps=4)
    config.eval.evaluators = None  # every block of config.evals
    config.evals.knn.every = 2
    summary = train.run(config, tmp_path)
    rows = summary["eval"]
    assert set(rows) == {"pretrained", "random init", "raw pixels"}
    assert rows["raw pixels"]["linear_probe_acc"] > 0.6  # Fashion-MNIST pixels are informative
    assert 1 <= rows["pretrained"]["rankme"] <= rows["pretrained"]["rankme_max"]
    step2 = json.loads((tmp_path / "results" / "eval_step2.json").read_text())
    assert set(step2["pretrained"]) == {"knn_acc"}  # only the block due at step 2 ran
    # the settings each evaluation ran with are recorded beside it
    assert list(eval_settings(tmp_path, 2)) == ["knn"]
    assert eval_settings(tmp_path, 2)["knn"]["every"] == 2
    assert set(eval_settings(tmp_path, 4)) == set(config.evals)
    table = (tmp_path / "results" / "eval.md").read_text()
    assert table.count("| raw pixels |") == 2 and "knn_acc" in table


def test_recipe_table_and_probe_curve_are_made_from_the_runs(tmp_path):
    """scripts/record_results.py --recipes: a row per run labelled by its changes to the
    default config, with the pretrained scores; plot_results --curve: the metric of every
    evaluation during training."""
    from scripts.plot_results import plot_curve
    from scripts.record_results import recipe_label, recipes

    config = small_ijepa(train__steps=4, model__target_norm="layer_center")
    config.eval.evaluators = ("collapse", "linear_probe", "rankme")
    config.evals.linear_probe.every = 2
    config.evals.collapse.examples = 256
    train.run(config, tmp_path)
    final = json.loads((tmp_path / "results" / "eval_step4.json").read_text())
    lines = recipes([tmp_path], IJEPA + ":tiny")
    assert lines[0] == ("| recipe | steps | train min | linear probe | k-NN | RankMe | "
                        "centred rank |")
    row = lines[2]
    assert "model.target_norm=layer_center" in row and "model.width=32" in row
    assert "train.steps=4" in row and "evals" not in row  # evaluation settings are no recipe
    assert "checkpoint_every" not in row and "log_every" not in row  # nor how it was saved
    assert f"| {final['pretrained']['linear_probe_acc']:.3f} |" in row
    assert f"| {final['pretrained']['collapse_rank']:.1f} |" in row
    assert any(l.startswith("| raw pixels |") for l in lines)
    tiny = json.loads(json.dumps(load_config(IJEPA + ":tiny").to_dict()))
    assert recipe_label(tiny, tiny) == "default"
    # A second run with the default's config: the comparison rows come from it.
    default_run = tmp_path / "default_run"
    shutil.copytree(tmp_path / "results", default_run / "results")
    shutil.copy(tmp_path / "metrics.jsonl", default_run / "metrics.jsonl")
    (default_run / "config.json").write_text(json.dumps(tiny))
    final["random init"]["linear_probe_acc"] = 0.123
    (default_run / "results" / "eval_step4.json").write_text(json.dumps(final))
    lines = recipes([tmp_path, default_run], IJEPA + ":tiny")
    assert lines[3].startswith("| default |")
    assert next(l for l in lines if l.startswith("| random init |")).count("| 0.123 |") == 1
    chosen = recipes([tmp_path], IJEPA + ":tiny", {"rankme": "rank me", "linear_probe_acc": "lp"})
    assert chosen[0] == "| recipe | steps | train min | rank me | lp |"
    assert chosen[2].endswith(f"| {final['pretrained']['rankme']:.1f} | "
                              f"{final['pretrained']['linear_probe_acc']:.3f} |")
    curve = plot_curve(tmp_path, "linear_probe_acc")
    assert curve.stat().st_size > 1000
    with pytest.raises(SystemExit, match="knn_acc"):
        plot_curve(tmp_path, "knn_acc")  # never evaluated in this run

"""Preemption, corrupt checkpoints, disk full, NaN rollback, peer death and bad input: each
gives one clear message and leaves existing checkpoints intact and resumable."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from data_pipelines.errors import DataError
from data_pipelines.images import ArraySource
from data_pipelines.masks.multiblock import MaskConfigError
from jepax import checkpoint, train
from jepax.config import ConfigError
from jepax.metrics import read_metrics
from jepax.sharding import MeshError
from tests.helpers import IJEPA, ROOT, losses, small_flags, small_ijepa, tree_digest
from tests.test_distributed import launch_two


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """6 uninterrupted steps, checkpoints at 3 and 6."""
    workdir = tmp_path_factory.mktemp("reference")
    train.run(small_ijepa(), workdir)
    return workdir


@pytest.fixture(scope="module")
def step3_template(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("step3")
    train.run(small_ijepa(train__run_steps=3), workdir)
    return workdir


@pytest.fixture
def at_step3(step3_template, tmp_path):
    """A fresh copy of a workdir holding only a step-3 checkpoint."""
    workdir = tmp_path / "run"
    shutil.copytree(step3_template, workdir)
    return workdir


def start_main(workdir, *extra, devices=8):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "jepax.main", f"--config={IJEPA}:tiny", f"--workdir={workdir}",
         *small_flags(), *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def wait_for_step(workdir, step, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = workdir / "metrics.jsonl"
        if path.exists() and any(r["step"] >= step for r in read_metrics(workdir)):
            return
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    raise TimeoutError(f"step {step} not reached")


def test_two_runs_with_the_same_seed_are_identical(reference, tmp_path):
    train.run(small_ijepa(), tmp_path)
    assert losses(tmp_path) == losses(reference)  # bit-identical, not just close


def test_sigterm_checkpoints_and_exits_zero_then_resumes_exactly(reference, tmp_path):
    proc = start_main(tmp_path, "--config.train.steps=400", "--config.train.checkpoint_every=1000")
    wait_for_step(tmp_path, 5, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "preempted at step" in err
    stopped = read_metrics(tmp_path)[-1]["step"]
    assert 5 <= stopped < 400
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", keep=3)
    assert ckpt.steps()[-1] == stopped  # the stop step was checkpointed (not a periodic save)
    ckpt.close()
    assert json.loads(out)["preempted"] is True


def test_sigterm_during_evaluation_stops_cleanly(tmp_path):
    proc = start_main(tmp_path, "--config.train.steps=4", "--config.evals.linear_probe.every=2",
                      "--config.eval.evaluators=('linear_probe',)",
                      "--config.evals.linear_probe.train_examples=60000",
                      "--config.evals.linear_probe.test_examples=10000")
    wait_for_step(tmp_path, 2, proc)
    time.sleep(1.0)  # inside the evaluation of step 2 (feature extraction of 70k images)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "preempted at step 2" in err
    assert not (tmp_path / "results" / "eval_step2.json").exists()
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", keep=3)
    assert ckpt.steps()[-1] == 2
    ckpt.close()


def test_corrupt_latest_checkpoint_is_skipped_for_the_previous_one(reference, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    # Damage every array file of the newest checkpoint (as a failing disk would).
    for path in (workdir / "checkpoints" / "6" / "state").rglob("*"):
        if path.is_file() and path.stat().st_size > 64 and "metadata" not in path.name:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    summary = train.run(small_ijepa(), workdir)  # resumes from 3 and retrains 4..6
    assert summary["step"] == 6
    assert np.allclose(losses(workdir), losses(reference), rtol=1e-6)
    aside = list((workdir / "corrupt_checkpoints").iterdir())
    assert len(aside) == 1 and aside[0].name.startswith("6-")


def test_incomplete_checkpoint_from_a_killed_save_is_ignored(at_step3):
    # A save killed mid-write leaves only orbax's temporary directory: never a step directory.
    tmp = at_step3 / "checkpoints" / "4.orbax-checkpoint-tmp-1234567"
    (tmp / "state").mkdir(parents=True)
    (tmp / "state" / "partial").write_bytes(b"\0" * 100)
    ckpt = checkpoint.Checkpointer(at_step3 / "checkpoints", keep=3)
    assert ckpt.steps() == [3]
    ckpt.close()
    assert train.run(small_ijepa(), at_step3)["step"] == 6


def test_disk_full_during_save_is_clear_and_keeps_the_last_checkpoint(tmp_path):
    mount = tmp_path / "small_disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        config = small_ijepa(train__steps=40, train__checkpoint_every=1, train__keep_checkpoints=50)
        with pytest.raises(checkpoint.CheckpointError, match="(?s)failed.*disk is full.*step \\d+"
                                                             ".*is intact"):
            train.run(config, mount / "run")
        ckpt = checkpoint.Checkpointer(mount / "run" / "checkpoints", keep=50)
        steps = ckpt.steps()
        assert steps, "at least one checkpoint fit before the disk filled up"
        saved = ckpt.restore_params(steps[-1])
        ckpt.close()
        assert all(np.isfinite(x).all() for x in jax.tree.leaves(saved))
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_nan_rollback_skips_batches_then_gives_up(tmp_path):
    # lr jumps to 1e6 at step 4: every retry of step 5 diverges, whatever batch it gets.
    config = small_ijepa(train__steps=12, train__checkpoint_every=2, train__nan_policy="rollback",
                         train__max_rollbacks=2, optim__warmup_steps=4, optim__lr=1e6,
                         optim__start_lr=1e-3)
    with pytest.raises(train.NonFiniteLossError, match="after 2 rollbacks"):
        train.run(config, tmp_path)
    events = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
              if '"rollback"' in l]
    assert len(events) == 2
    skipped = [e["skipped_batch"] for e in events]
    assert skipped[0] != skipped[1]  # each retry trained on a different batch
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", keep=3)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(ckpt.restore_params()))
    ckpt.close()


def test_peer_death_ends_the_other_process_quickly(tmp_path):
    procs = launch_two(tmp_path, extra=["--config.train.steps=100000",
                                        "--config.distributed.heartbeat_timeout=10"])
    wait_for_step(tmp_path, 3, procs[0])
    procs[1].kill()
    start = time.time()
    _, err = procs[0].communicate(timeout=120)
    assert procs[0].returncode != 0
    assert time.time() - start < 60
    assert "another task died" in err


@pytest.mark.parametrize("override, error, match", [
    ({"optim__lr": -1.0}, ConfigError, "optim.lr=-1.0 must be positive"),
    ({"mask__target_scale": (0.2, 1.5)}, MaskConfigError, "target_scale"),
    ({"mesh__data": 3}, MeshError, "needs 3 devices but 8 are available"),
    ({"train__batch_size": 12}, ConfigError, "not divisible by the 8 batch shards"),
    ({"data__path": "/nonexistent"}, DataError, "apt-get install dataset-fashion-mnist"),
    ({"data__image_size": 30}, ConfigError, "not divisible by model.patch_size"),
    ({"train__nan_policy": "ignore"}, ConfigError, "nan_policy"),
    ({"model__dtype": "float8"}, ConfigError, "model.dtype"),
])
def test_bad_config_values_fail_clearly_and_keep_checkpoints(at_step3, override, error, match):
    before = tree_digest(at_step3 / "checkpoints")
    with pytest.raises(error, match=match):
        train.run(small_ijepa(train__allow_config_change=True, **override), at_step3)
    assert tree_digest(at_step3 / "checkpoints") == before  # byte for byte: still resumable


def test_wrong_shapes_and_dtypes_are_clear_errors():
    with pytest.raises(DataError, match="uint8 \\(N, H, W, C\\)"):
        ArraySource(np.zeros((4, 28, 28, 1), np.float32), np.zeros(4), "x")
    with pytest.raises(DataError, match="4 images but 3 labels"):
        ArraySource(np.zeros((4, 28, 28, 1), np.uint8), np.zeros(3), "x")
    with pytest.raises(DataError, match="empty"):
        ArraySource(np.zeros((0, 28, 28, 1), np.uint8), np.zeros(0), "x")

"""Stops, kills, damaged and mismatched checkpoints, a full disk, NaN losses, a second run on
the same workdir, peer death and bad input: each ends in one clear message, keeps every good
checkpoint where it is, and a rerun of the same command resumes exactly."""

import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import grain
import jax
import numpy as np
import pytest
from orbax.checkpoint._src.path import atomicity

from data_pipelines import sources
from data_pipelines.errors import DataError
from data_pipelines.images import ArraySource
from jepax import checkpoint, lock, train
from jepax.config import ConfigError
from jepax.metrics import read_metrics
from tests import bad_inputs, signal_variant
from tests.helpers import (ROOT, Main, assert_trees_equal, last_step, losses,
                           saved_params, small_ijepa, tree_digest)
from tests.test_distributed import launch_two

signal_variant.register()

pytestmark = pytest.mark.usefixtures("shared_compiles")  # one compile per program


@pytest.fixture
def jepax_log(caplog):
    """Log records of the jepax loggers (they do not propagate to the root logger)."""
    logger = logging.getLogger("jepax")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


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
    """A fresh copy of a workdir holding only a step-3 checkpoint (of the reference run)."""
    workdir = tmp_path / "run"
    shutil.copytree(step3_template, workdir)
    return workdir


def assert_resumed_exactly(workdir, reference, step=6):
    """Losses of every step and the final parameters are bit-identical to the reference."""
    assert [r["step"] for r in read_metrics(workdir)] == list(range(1, step + 1))
    np.testing.assert_array_equal(losses(workdir), losses(reference)[:step])
    assert_trees_equal(saved_params(workdir, step), saved_params(reference, step))


def damage(step_dir):
    """Cut every array file of a checkpoint to a third (a failing disk, a torn copy)."""
    for path in (step_dir / "state").rglob("*"):
        if path.is_file() and path.stat().st_size > 64 and "metadata" not in path.name:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


# -- determinism and stops -------------------------------------------------------------------
def test_two_runs_with_the_same_seed_are_identical(reference, tmp_path):
    train.run(small_ijepa(), tmp_path)
    assert_resumed_exactly(tmp_path, reference)


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory):
    """The first 12 of 400 steps, uninterrupted (the schedules depend on train.steps)."""
    workdir = tmp_path_factory.mktemp("long_reference")
    train.run(small_ijepa(train__steps=400, train__checkpoint_every=1000, train__run_steps=12),
              workdir)
    return workdir


def stop_with(sig, workdir) -> int:
    """Train the 400-step run in `workdir` until step 3 or later, send `sig`; the step it
    stopped at (checked to be checkpointed, exit status and message checked)."""
    run = Main(workdir, "--config.train.steps=400", "--config.train.checkpoint_every=1000")
    run.wait_for(lambda: last_step(workdir) >= 3, what="step 3")
    run.send(sig)
    returncode, out, err = run.wait()
    assert returncode == {signal.SIGTERM: 0, signal.SIGINT: 130}[sig], err[-3000:]
    assert "Traceback" not in err
    stopped = last_step(workdir)
    assert f"preempted at step {stopped} by {sig.name}" in err
    assert json.loads(out)["stopped_by"] == sig.name
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints", read_only=True)
    assert ckpt.steps() == [stopped]  # the stop step itself (no periodic save was due)
    ckpt.close()
    return stopped


def test_sigterm_checkpoints_the_current_step_exits_0_then_the_run_resumes_exactly(
        long_reference, tmp_path):
    """What a scheduler's preemption does."""
    stopped = stop_with(signal.SIGTERM, tmp_path)
    assert 3 <= stopped < 12
    train.run(small_ijepa(train__steps=400, train__checkpoint_every=1000,
                          train__run_steps=12 - stopped), tmp_path)
    assert_resumed_exactly(tmp_path, long_reference, step=12)


def test_ctrl_c_checkpoints_the_current_step_and_exits_130(tmp_path):
    stop_with(signal.SIGINT, tmp_path)  # resuming is the same path as after SIGTERM


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_signal_while_modules_load_exits_cleanly_and_writes_nothing(tmp_path, sig, status):
    """Long before the loop's handler: `python -m jepax.main` records the request from the
    moment jepax is imported (jepax/__init__.py installs the handler before jax and flax load,
    which takes seconds) and stops before anything is written."""
    run = Main(tmp_path / "run")
    run.wait_for(run.catches_sigterm, what="the signal handler")
    run.send(sig)
    returncode, out, err = run.wait()
    assert returncode == status, err[-3000:]
    assert f"stopped by {sig.name} before the run started; nothing was written" in err
    assert "Traceback" not in err and json.loads(out)["stopped_by"] == sig.name
    assert not (tmp_path / "run").exists()


def test_second_ctrl_c_exits_at_once_and_the_last_checkpoint_is_whole(tmp_path):
    run = Main(tmp_path, "--config.train.steps=400", "--config.train.checkpoint_every=2")
    run.wait_for(lambda: last_step(tmp_path) >= 5, what="step 5")  # step 2 is committed
    run.send(signal.SIGINT)
    run.wait_for(lambda: "received SIGINT" in run.stderr, what="the first Ctrl-C")
    run.send(signal.SIGINT)  # (sent at once, both would arrive as one signal)
    returncode, _, err = run.wait()
    assert returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "jepax: error: interrupted again: exiting at once, without a final checkpoint; rerun "
        "the same command to resume from the last one")
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", read_only=True)
    assert ckpt.steps() and ckpt.steps()[-1] >= 2
    ckpt.close()
    saved = saved_params(tmp_path)  # the newest committed checkpoint reads completely
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(saved))


def test_interrupt_in_a_notebook_stops_train_run_cleanly_and_gives_ctrl_c_back(tmp_path):
    """train.run called from Python (Colab, Jupyter): the kernel's interrupt stops the run at
    a checkpoint instead of tearing it down mid-step, and Ctrl-C is Python's again after."""
    def interrupt_at_step_2():
        while last_step(tmp_path) < 2:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_at_step_2, daemon=True).start()
    summary = train.run(small_ijepa(train__steps=400, train__checkpoint_every=1000), tmp_path)
    assert summary["stopped_by"] == "SIGINT" and summary["step"] >= 2
    assert saved_params(tmp_path, summary["step"])  # the stop step was checkpointed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_during_evaluation_stops_cleanly(tmp_path):
    marks = tmp_path / "markers"
    marks.mkdir()
    run = Main(tmp_path / "run", "--config.train.steps=4", "--config.evals.linear_probe.every=2",
               "--config.eval.evaluators=('linear_probe',)",
               "--config.evals.linear_probe.train_examples=2000",
               "--config.evals.linear_probe.test_examples=1000",
               module="tests.chaos_main", launcher_args=[str(marks)])
    run.wait_for(lambda: list(marks.glob("eval-*")), what="the evaluation at step 2")
    run.send(signal.SIGTERM)
    returncode, _, err = run.wait()
    assert returncode == 0, err[-3000:]
    assert "preempted at step 2" in err and not list(marks.glob("evaldone-*"))
    assert not (tmp_path / "run" / "results" / "eval_step2.json").exists()
    ckpt = checkpoint.Checkpointer(tmp_path / "run" / "checkpoints", read_only=True)
    assert ckpt.steps()[-1] == 2
    ckpt.close()


# -- checkpoints: damaged, mismatched, failing, incomplete -------------------------------------
def test_damaged_latest_checkpoint_is_moved_aside_and_the_previous_one_resumes_exactly(
        reference, tmp_path, jepax_log):
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    damage(workdir / "checkpoints" / "6")
    summary = train.run(small_ijepa(), workdir)  # resumes from 3 and retrains 4..6
    assert summary["step"] == 6
    assert_resumed_exactly(workdir, reference)
    aside = list((workdir / "corrupt_checkpoints").iterdir())
    assert len(aside) == 1 and aside[0].name.startswith("6-")
    assert "checkpoint at step 6" in jepax_log.text and "is damaged: its" in jepax_log.text


def test_every_checkpoint_damaged_is_an_error_never_a_fresh_start(at_step3):
    damage(at_step3 / "checkpoints" / "3")
    history = (at_step3 / "metrics.jsonl").read_bytes()
    with pytest.raises(checkpoint.CheckpointError, match="every checkpoint .* is damaged.*"
                                                         "delete that directory"):
        train.run(small_ijepa(), at_step3)
    with pytest.raises(checkpoint.CheckpointError, match="no usable checkpoint"):
        train.run(small_ijepa(), at_step3)  # the rerun does not start over either
    assert (at_step3 / "metrics.jsonl").read_bytes() == history


@pytest.mark.parametrize("override, match", [
    # what the refusal to resume a changed config recommends: the model no longer fits
    ({"train__allow_config_change": True, "model__depth": 2},
     "step 3 .* does not fit this run's model .*params/encoder/transformer/blocks/1"),
    ({"train__allow_config_change": True, "model__width": 64, "model__heads": 2},
     r"does not fit .*params/encoder.*\(16, 32\) float32 saved, \(16, 64\) float32 in this run"),
], ids=["deeper", "wider"])
def test_checkpoint_that_does_not_fit_is_a_clear_error_and_moves_nothing(at_step3, override,
                                                                         match):
    before = tree_digest(at_step3)
    with pytest.raises(checkpoint.CheckpointError, match=f"(?s){match}.*nothing was moved"):
        train.run(small_ijepa(**override), at_step3)
    assert tree_digest(at_step3) == before  # the whole workdir, byte for byte


@pytest.mark.parametrize("error", [MemoryError("out of host memory"),
                                   PermissionError(errno.EACCES, "Permission denied"),
                                   RuntimeError("RESOURCE_EXHAUSTED: out of device memory")],
                         ids=["host memory", "permission", "device memory"])
def test_restore_failure_that_proves_no_damage_moves_nothing(at_step3, monkeypatch, error):
    def failing_restore(self, step, abstract_state):
        raise error

    monkeypatch.setattr(checkpoint.Checkpointer, "restore", failing_restore)
    before = tree_digest(at_step3)
    with pytest.raises(checkpoint.CheckpointError, match="(?s)restoring the checkpoint of step 3"
                                                         ".*nothing was moved or deleted"):
        train.run(small_ijepa(), at_step3)
    assert tree_digest(at_step3) == before


def test_changing_how_data_is_read_resumes_exactly(reference, at_step3):
    """Saved with one reader thread, resumed with a worker process and no read-ahead: the data
    position is a number of batches, so the same batches follow whatever reads them."""
    train.run(small_ijepa(data__num_workers=1, data__num_threads=0, data__prefetch=0), at_step3)
    assert_resumed_exactly(at_step3, reference)


def test_incomplete_saves_are_set_aside_and_the_run_resumes_exactly(reference, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    # A step directory whose commit record has no commit time (copied mid-save) is damaged ...
    record = workdir / "checkpoints" / "6" / "_CHECKPOINT_METADATA"
    record.write_text(json.dumps({**json.loads(record.read_text()), "commit_timestamp_nsecs": None}))
    # ... and a save killed mid-write leaves only orbax's temporary directory: never a step.
    tmp = workdir / "checkpoints" / "7.orbax-checkpoint-tmp-1234567"
    (tmp / "state").mkdir(parents=True)
    (tmp / "state" / "partial").write_bytes(b"\0" * 100)
    assert train.run(small_ijepa(), workdir)["step"] == 6  # from step 3
    assert [p.name[:2] for p in (workdir / "corrupt_checkpoints").iterdir()] == ["6-"]
    assert not tmp.exists()  # cleaned up
    assert_resumed_exactly(workdir, reference)


def test_keep_checkpoints_keeps_exactly_the_newest(tmp_path):
    train.run(small_ijepa(train__checkpoint_every=1, train__keep_checkpoints=2), tmp_path)
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", read_only=True)
    assert ckpt.steps() == [5, 6]
    ckpt.close()


# -- disk full ---------------------------------------------------------------------------------
DISK_FULL = "(?s)failed.*No space left on device.*disk is full.*step {}.*is intact"


def test_disk_full_at_the_orbax_commit_is_clear_and_keeps_the_last_checkpoint(
        tmp_path, monkeypatch):
    """Runs without privileges: ENOSPC injected where orbax commits a checkpoint (in its
    background thread, as a real full disk surfaces in an async save)."""
    finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def full_disk(self, *args, **kwargs):
        if self.get_final().name.isdigit() and int(self.get_final().name) >= 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await finalize(self, *args, **kwargs)

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", full_disk)
    config = small_ijepa(train__steps=12, train__checkpoint_every=2)
    with pytest.raises(checkpoint.CheckpointError, match=DISK_FULL.format(2)):
        train.run(config, tmp_path)
    monkeypatch.undo()
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", read_only=True)
    assert ckpt.steps() == [2]
    ckpt.close()
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(saved_params(tmp_path, 2)))


def test_disk_full_on_a_real_small_file_system(tmp_path):
    mount = tmp_path / "small_disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip("NOT TESTED HERE: mounting a 3 MB tmpfs needs root "
                    f"({mounted.stderr.strip()}); the injected-ENOSPC test covers the same path")
    try:
        config = small_ijepa(train__steps=40, train__checkpoint_every=1, train__keep_checkpoints=50)
        with pytest.raises(checkpoint.CheckpointError, match=DISK_FULL.format(r"\d+")):
            train.run(config, mount / "run")
        steps = checkpoint.Checkpointer(mount / "run" / "checkpoints", read_only=True).steps()
        assert steps, "at least one checkpoint fit before the disk filled up"
        saved = saved_params(mount / "run", steps[-1])
        assert all(np.isfinite(x).all() for x in jax.tree.leaves(saved))
    finally:
        subprocess.run(["umount", str(mount)], check=True)


# -- NaN ---------------------------------------------------------------------------------------
def test_nan_rollback_skips_batches_then_gives_up(tmp_path):
    # lr warms up to 1e6 over 4 steps: from step 3 on every step diverges, whatever its batch.
    config = small_ijepa(train__steps=12, train__checkpoint_every=2, train__nan_policy="rollback",
                         train__max_rollbacks=2, optim__warmup_steps=4, optim__lr=1e6,
                         optim__start_lr=1e-3)
    with pytest.raises(train.NonFiniteLossError, match="after 2 rollbacks"):
        train.run(config, tmp_path)
    events = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
              if '"rollback"' in l]
    assert [e["bad_step"] for e in events] == [3, 3]
    assert [e["skipped_batch"] for e in events] == [2, 3]  # each retry drew the next batch
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(saved_params(tmp_path)))


BAD_POSITION = 4  # the stream position whose batch holds a NaN example


class _NaNSignals:
    """The test signals with one example of batch BAD_POSITION turned into NaNs (a corrupt
    recording), found through the pipeline's own shuffle."""

    def __init__(self, base, bad_index):
        self.base, self.bad_index = base, bad_index

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        example = self.base[i]
        if i == self.bad_index:
            example = {**example, "signal": np.full_like(example["signal"], np.nan)}
        return example


def nan_signal_source(data_config, split):
    base = signal_variant.signal_source(data_config, split)
    if split != "train":
        return base
    order = grain.MapDataset.source(list(range(len(base)))).seed(0).shuffle()
    return _NaNSignals(base, order[16 * BAD_POSITION])


def nan_config(**train_overrides):
    sources.register("nan_signals", nan_signal_source)
    config = signal_variant.config("signal_jepa", steps=12, checkpoint_every=4,
                                   nan_policy="rollback", **train_overrides)
    config.data.dataset = "nan_signals"
    config.eval.evaluators = ()
    return config


@pytest.fixture(scope="module")
def nan_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("nan_rollback")
    return workdir, train.run(nan_config(), workdir)


def test_nan_rollback_skips_the_bad_batch_and_finishes(nan_run):
    workdir, summary = nan_run
    assert summary["step"] == 12 and summary["rollbacks"] == 1
    events = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()
              if '"rollback"' in l]
    assert [(e["bad_step"], e["skipped_batch"], e["restored_step"]) for e in events] == [
        (BAD_POSITION + 1, BAD_POSITION, 4)]
    records = read_metrics(workdir)
    assert [r["step"] for r in records] == list(range(1, 13))  # each step once, all finite
    assert all(np.isfinite(r["loss"]) for r in records)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(saved_params(workdir, 12)))


def test_skipped_batches_survive_a_resume(nan_run, tmp_path):
    reference, _ = nan_run
    assert train.run(nan_config(run_steps=6), tmp_path)["step"] == 6  # after the rollback
    assert train.run(nan_config(), tmp_path)["step"] == 12
    np.testing.assert_array_equal(losses(tmp_path), losses(reference))
    assert_trees_equal(saved_params(tmp_path, 12), saved_params(reference, 12))
    meta = json.loads((tmp_path / "checkpoints" / "12" / "meta" / "metadata").read_text())
    assert meta["skipped_batches"] == [BAD_POSITION] and meta["batches_consumed"] == 13


# -- one run per workdir -----------------------------------------------------------------------
def test_second_run_on_a_workdir_is_refused_naming_the_first(tmp_path):
    first = Main(tmp_path, "--config.train.steps=400", "--config.train.checkpoint_every=1000")
    first.wait_for(lambda: last_step(tmp_path) >= 1, what="step 1")
    with pytest.raises(lock.WorkdirLocked, match=f"in use by another run: pid {first.pid} on "
                                                 f"host {socket.gethostname()}"):
        train.run(small_ijepa(train__steps=400, train__checkpoint_every=1000), tmp_path)
    assert first.running()
    first.send(signal.SIGTERM)
    returncode, _, err = first.wait()
    assert returncode == 0 and "preempted at step" in err  # the first run was not disturbed
    assert not (tmp_path / "lock").exists()  # released at the end


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_lock(workdir, pid, host):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / lock.LOCK_NAME).write_text(json.dumps(
        {"pid": pid, "host": host, "started": "earlier", "command": "python -m jepax.main"}))


def test_stale_lock_of_a_killed_run_is_detected_and_taken_over(tmp_path, jepax_log):
    """(With real kills: the chaos test.)"""
    dead = _dead_pid()
    _write_lock(tmp_path, dead, socket.gethostname())
    with lock.exclusive(tmp_path):
        assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
    assert f"taking over a stale lock of pid {dead}" in jepax_log.text
    assert not (tmp_path / "lock").exists()


@pytest.mark.parametrize("owner, refused", [
    ("live here", True), ("dead here", False), ("other host", True)])
def test_lock_without_file_locking_decides_by_pid_and_host(tmp_path, monkeypatch, owner,
                                                           refused):
    """Where flock fails (ENOLCK: some network file systems) the record decides; a run on
    another host cannot be checked, so the message says how to clear a stale lock."""
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock.fcntl, "flock", no_flock)
    pid, host = {"live here": (os.getppid(), socket.gethostname()),
                 "dead here": (_dead_pid(), socket.gethostname()),
                 "other host": (os.getpid() + 1, "elsewhere")}[owner]
    _write_lock(tmp_path, pid, host)
    workdir_lock = lock.WorkdirLock(tmp_path)
    if refused:
        with pytest.raises(lock.WorkdirLocked, match=f"pid {pid} on host {host}.*cannot lock "
                                                     "files.*delete .*lock"):
            workdir_lock.acquire()
    else:
        workdir_lock.acquire()
        assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
        workdir_lock.release()
        assert not (tmp_path / "lock").exists()


# -- peers and bad input -----------------------------------------------------------------------
def test_peer_death_ends_the_other_process_quickly(tmp_path):
    procs = launch_two(tmp_path, extra=["--config.train.steps=100000",
                                        "--config.distributed.heartbeat_timeout=10"])
    deadline = time.time() + 240
    while last_step(tmp_path) < 3:
        assert procs[0].poll() is None and time.time() < deadline, procs[0].communicate()[1][-3000:]
        time.sleep(0.05)
    procs[1].kill()
    start = time.time()
    _, err = procs[0].communicate(timeout=120)
    assert procs[0].returncode != 0
    assert time.time() - start < 60
    assert "another task died" in err


@pytest.mark.parametrize("case", bad_inputs.CONFIG_VALUES, ids=lambda c: c.name)
def test_bad_config_value_fails_before_anything_is_written(at_step3, tmp_path, case):
    """One message naming the key and the fix; an existing workdir stays byte-identical and a
    new one is not even created."""
    before = tree_digest(at_step3)
    with pytest.raises(case.error, match=case.match):
        train.run(case.config(), at_step3)
    assert tree_digest(at_step3) == before
    with pytest.raises(case.error, match=case.match):
        train.run(case.config(), tmp_path / "new")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("case", bad_inputs.WORKDIRS, ids=lambda c: c.name)
def test_bad_workdir_fails_before_anything_is_written(at_step3, case):
    workdir = case.prepare(at_step3)
    before = tree_digest(at_step3)
    with pytest.raises(case.error, match=case.match):
        train.run(small_ijepa(), workdir)
    assert tree_digest(at_step3) == before


@pytest.mark.parametrize("case", bad_inputs.COMMAND_LINES, ids=lambda c: c.name)
def test_bad_command_line_is_named_in_one_line(case):
    from jepax import main

    assert main._config_problem(case.args) is not None
    assert case.match in main._config_problem(case.args)


def test_command_line_errors_end_in_one_line_without_a_traceback(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    cases = [(["--config.train.stepz=3"], "config.train has no key 'stepz'"),
             ([f"--workdir={tmp_path / 'file'}"], "is a file, not a directory")]
    cases += [(case.args, case.match) for case in bad_inputs.ABSL_COMMAND_LINES]
    for args, match in cases:
        returncode, _, err = command_line(tmp_path / "run", args)
        assert returncode == 1 and "Traceback" not in err, err[-3000:]
        assert err.strip().splitlines()[-1].startswith("jepax: error: ") and match in err
    assert not (tmp_path / "run").exists()


def command_line(workdir, args):
    """`python -m jepax.main <args> --workdir=...` (the tiny preset unless args name a config)."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    if args and not any(a.startswith("--config=") for a in args):
        return Main(workdir, *args).wait()
    result = subprocess.run([sys.executable, "-m", "jepax.main", *args, f"--workdir={workdir}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout, result.stderr


def test_wrong_shapes_and_dtypes_are_clear_errors():
    with pytest.raises(DataError, match="uint8 \\(N, H, W, C\\)"):
        ArraySource(np.zeros((4, 28, 28, 1), np.float32), np.zeros(4), "x")
    with pytest.raises(DataError, match="4 images but 3 labels"):
        ArraySource(np.zeros((4, 28, 28, 1), np.uint8), np.zeros(3), "x")
    with pytest.raises(DataError, match="empty"):
        ArraySource(np.zeros((0, 28, 28, 1), np.uint8), np.zeros(0), "x")


def test_every_base_config_value_has_a_validation_rule():
    from jepax.config import RULES, base_config

    def leaves(d, prefix=""):
        for key, value in d.items():
            if isinstance(value, dict) and key != "evals":
                yield from leaves(value, f"{prefix}{key}.")
            elif key != "evals":
                yield f"{prefix}{key}"

    assert set(leaves(base_config().to_dict())) <= set(RULES)


def test_unknown_error_classes_keep_their_traceback():
    from jepax import main

    assert main.is_user_error(ConfigError("x")) and main.is_user_error(DataError("x"))
    assert main.is_user_error(lock.WorkdirLocked("x"))
    assert not main.is_user_error(ValueError("x")) and not main.is_user_error(KeyError("x"))

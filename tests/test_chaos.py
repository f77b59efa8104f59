"""Chaos: kill a training run again and again (SIGKILL and SIGTERM, at random steps, during
checkpoint writes, during start-up), resume each time, and check that the loss curve and the
final parameters equal an uninterrupted run with the same seed."""

import random
import signal
import time

import jax
import numpy as np

from jepax import checkpoint, train
from jepax.metrics import read_metrics
from tests.helpers import small_ijepa
from tests.test_reliability import start_main

STEPS = 24
CHAOS = dict(train__steps=STEPS, train__checkpoint_every=2, train__keep_checkpoints=2)
CHAOS_FLAGS = [f"--config.train.steps={STEPS}", "--config.train.checkpoint_every=2",
               "--config.train.keep_checkpoints=2"]
# (signal, when): "save" = as soon as a checkpoint write is in progress, "step" = after a random
# number of further steps, "startup" = while restoring/compiling.
PLAN = [(signal.SIGKILL, "save"), (signal.SIGTERM, "step"), (signal.SIGKILL, "step"),
        (signal.SIGKILL, "startup"), (signal.SIGKILL, "save"), (signal.SIGTERM, "save"),
        (signal.SIGKILL, "step")]


def last_step(workdir) -> int:
    path = workdir / "metrics.jsonl"
    records = read_metrics(workdir) if path.exists() else []
    return records[-1]["step"] if records else 0


def saving(workdir) -> bool:
    ckpt = workdir / "checkpoints"
    return ckpt.exists() and any("tmp" in p.name for p in ckpt.iterdir())


def kill_at(proc, workdir, sig, when, rng) -> bool:
    """Send `sig` at the chosen moment; False if the run finished first."""
    start_step = last_step(workdir)
    target = start_step + rng.randint(1, 4)
    deadline = time.time() + 240
    if when == "startup":
        time.sleep(rng.uniform(1.0, 4.0))
    while time.time() < deadline and proc.poll() is None:
        step = last_step(workdir)
        if when == "startup" or (when == "save" and step > start_step and saving(workdir)) or (
                when == "step" and step >= target):
            proc.send_signal(sig)
            return True
        time.sleep(0.002)
    return False


def test_chaos_kills_leave_the_run_exact(tmp_path):
    reference = tmp_path / "reference"
    train.run(small_ijepa(**CHAOS), reference)

    workdir = tmp_path / "chaos"
    rng = random.Random(1234)
    survived = {"SIGKILL": 0, "SIGTERM": 0}
    for sig, when in PLAN:
        proc = start_main(workdir, *CHAOS_FLAGS)
        if kill_at(proc, workdir, sig, when, rng):
            _, err = proc.communicate(timeout=120)
            if sig == signal.SIGTERM:
                assert proc.returncode == 0, err[-3000:]
            else:
                assert proc.returncode == -signal.SIGKILL
            survived[sig.name] += 1
        else:
            proc.communicate(timeout=60)
    proc = start_main(workdir, *CHAOS_FLAGS)  # run to the end undisturbed
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]

    assert survived["SIGKILL"] >= 4 and survived["SIGTERM"] >= 1, survived
    ref, got = read_metrics(reference), read_metrics(workdir)
    assert [r["step"] for r in got] == list(range(1, STEPS + 1))
    np.testing.assert_array_equal([r["loss"] for r in got], [r["loss"] for r in ref])
    finals = []
    for directory in (reference, workdir):
        ckpt = checkpoint.Checkpointer(directory / "checkpoints", keep=2)
        assert ckpt.latest_step() == STEPS
        finals.append(ckpt.restore_params())
        ckpt.close()
    for a, b in zip(jax.tree.leaves(finals[0]), jax.tree.leaves(finals[1])):
        np.testing.assert_array_equal(a, b)
    print(f"chaos: survived {survived}")

"""Chaos: kill one training run 22 times at random moments (at start-up, during the first
compile and later ones, between a checkpoint's write and its commit, during evaluation, between
steps) with SIGKILL, SIGTERM and SIGINT, resume it each time with the same command, and check
that its loss curve and final parameters are bit-identical to an uninterrupted run of the same
command.

The processes run the real entry point through tests/chaos_main.py, which writes a marker file
at each of those moments (and holds the commit open for a moment), so every kill is known to
land where it says. All runs share a persistent XLA compilation cache (the same programs load
instead of compiling again) and use one device, which keeps each process quick; sharded
restores are tested elsewhere (test_reshard_restore_on_four_devices).
"""

import collections
import random
import signal
import time

import numpy as np

from jepax.metrics import read_metrics
from tests.helpers import Main, assert_trees_equal, last_step, saved_params

STEPS = 72  # more than the kills leave time for: the run must not finish before the plan
FLAGS = [f"--config.train.steps={STEPS}", "--config.train.checkpoint_every=2",
         "--config.train.keep_checkpoints=2", "--config.mesh.data=1",
         "--config.eval.evaluators=('knn',)", "--config.evals.knn.every=8",
         "--config.evals.knn.train_examples=64", "--config.evals.knn.test_examples=32",
         "--config.evals.knn.k=5"]
K, T, I = signal.SIGKILL, signal.SIGTERM, signal.SIGINT
# The first kill lands in the first (cold) compile; the rest are shuffled.
FIRST = (K, "compile")
PLAN = ([(K, "compile")] * 2 + [(T, "compile"), (I, "compile")]
        + [(T, "startup")] * 2 + [(I, "startup"), (K, "startup")] + [(K, "commit")] * 4
        + [(K, "eval")] * 2 + [(T, "eval"), (I, "eval")] + [(K, "step")] * 3
        + [(T, "step"), (I, "step")])
EXIT = {K: -signal.SIGKILL, T: 0, I: 130}


def markers(directory, moment, pid) -> int:
    return len(list(directory.glob(f"{moment}-{pid}-*")))


def kill_at(run: Main, sig, moment: str, workdir, marks, rng) -> bool:
    """Send `sig` at `moment` (or as soon as the run got past it); True when it landed there.
    A run that ended first (it finished) is not killed."""
    reached = lambda condition, what: run.wait_for(condition, what=what, or_end=True)
    if moment == "startup":  # once the handler is in place, while modules load
        landed = reached(run.catches_sigterm, "the signal handler")
        time.sleep(rng.uniform(0.0, 1.5))
        landed = landed and not markers(marks, "compile", run.pid)
    elif moment == "compile":
        landed = reached(lambda: markers(marks, "compile", run.pid), "compiling")
        time.sleep(rng.uniform(0.0, 0.5))
        landed = landed and "train step compiled" not in run.stderr
    elif moment == "commit":
        landed = reached(lambda: markers(marks, "commit", run.pid), "a commit")
        time.sleep(rng.uniform(0.0, 0.1))  # the commit is held for 0.3 s
    elif moment == "eval":
        landed = reached(lambda: markers(marks, "eval", run.pid), "an evaluation")
        time.sleep(rng.uniform(0.0, 0.15))
        landed = landed and markers(marks, "evaldone", run.pid) < markers(marks, "eval", run.pid)
    else:  # a few steps on
        target = last_step(workdir) + rng.randint(1, 3)
        landed = reached(lambda: last_step(workdir) >= target, f"step {target}")
    landed = landed and run.running()
    if run.running():  # late or not, a kill is a kill (the run must not go on to the end)
        run.send(sig)
    if moment == "commit" and landed:  # the step directory must not have been committed
        landed = any("tmp" in p.name for p in (workdir / "checkpoints").iterdir())
    return landed


def test_chaos_kills_leave_the_run_bit_identical(tmp_path):
    marks = tmp_path / "markers"
    marks.mkdir()
    env = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla_cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    launch = lambda workdir: Main(workdir, *FLAGS, devices=1, module="tests.chaos_main",
                                  launcher_args=[str(marks)], env=env)
    workdir, reference = tmp_path / "chaos", tmp_path / "reference"
    rng = random.Random(20260514)
    plan = [FIRST] + rng.sample(PLAN, len(PLAN))
    landed = collections.Counter()
    stderrs = []
    for number, (sig, moment) in enumerate(plan):
        run = launch(workdir)
        hit = kill_at(run, sig, moment, workdir, marks, rng)
        status, _, err = run.wait()
        stderrs.append(err)
        assert "Traceback" not in err, err[-3000:]
        if hit:
            assert status == EXIT[sig], (sig.name, moment, status, err[-3000:])
            landed[sig.name, moment] += 1
        if number == 0:  # the uninterrupted run, once the first kill hit the cold compile
            status, _, err = launch(reference).wait()
            assert status == 0, err[-3000:]
    status, _, err = launch(workdir).wait()  # to the end, undisturbed
    assert status == 0, err[-3000:]
    stderrs.append(err)

    print(f"chaos: {sum(landed.values())} kills landed: {dict(landed)}")
    assert sum(landed.values()) >= 20, landed
    per_moment = collections.Counter(moment for _, moment in landed.elements())
    assert per_moment["compile"] >= 3 and per_moment["commit"] >= 3, landed
    assert per_moment["eval"] >= 3 and per_moment["startup"] >= 2, landed
    assert landed["SIGKILL", "compile"] >= 1  # the first, cold compile
    assert any("taking over a stale lock" in e for e in stderrs)  # SIGKILL leaves one behind
    ref, got = read_metrics(reference), read_metrics(workdir)
    assert [r["step"] for r in got] == list(range(1, STEPS + 1))
    np.testing.assert_array_equal([r["loss"] for r in got], [r["loss"] for r in ref])
    assert_trees_equal(saved_params(workdir, STEPS), saved_params(reference, STEPS))

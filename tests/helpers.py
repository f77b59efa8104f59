"""Shared test helpers: small configs and subprocess runs of the real entry point."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from jepax.config import load_config
from jepax.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
IJEPA = str(ROOT / "experiments" / "ijepa.py")


@contextlib.contextmanager
def compilation_cache(directory):
    """Share compiled programs between the runs of a test module, in this process and in the
    processes it starts: most of its runs compile the same small programs, and loading one is
    much faster than compiling it again. (An executable loaded from the cache is the one that
    was compiled, so bit-for-bit comparisons are unaffected.)"""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cache

    settings = {"jax_compilation_cache_dir": str(directory),
                "jax_persistent_cache_min_compile_time_secs": 0}
    saved = {name: getattr(jax.config, name) for name in settings}
    env = {"JAX_COMPILATION_CACHE_DIR": str(directory),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    saved_env = {name: os.environ.get(name) for name in env}
    for name, value in settings.items():
        jax.config.update(name, value)
    os.environ.update(env)
    cache.reset_cache()
    try:
        yield
    finally:
        for name, value in saved.items():
            jax.config.update(name, value)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        cache.reset_cache()


def small_ijepa(**overrides):
    """The tiny I-JEPA preset shrunk further for tests, with `section.key=value` overrides."""
    c = load_config(IJEPA + ":tiny")
    c.model.update(width=32, depth=1, heads=2, pred_width=16, pred_depth=1, pred_heads=2)
    c.train.update(steps=6, batch_size=16, log_every=1, checkpoint_every=3)
    c.data.update(num_threads=1, prefetch=2)
    c.eval.update(evaluators=(), batch_size=64)
    c.evals.linear_probe.update(train_examples=256, test_examples=128, steps=50)
    c.evals.knn.update(train_examples=256, test_examples=128)
    c.evals.rankme.examples = 256
    c.logging.update(progress=False, tensorboard=False)
    for key, value in overrides.items():
        section, name = key.split("__")
        c[section][name] = value
    return c


def small_flags():
    """CLI overrides equal to tests.helpers.small_ijepa."""
    c = small_ijepa()
    flags = []
    sections = {"model": c.model, "train": c.train, "data": c.data, "eval": c.eval,
                "logging": c.logging, **{f"evals.{k}": v for k, v in c.evals.items()}}
    for section, values in sections.items():
        for key, value in values.items():
            if isinstance(value, (tuple, list)):
                value = "(" + ",".join(repr(v) for v in value) + ("," if len(value) == 1 else "") + ")"
            flags.append(f"--config.{section}.{key}={value}")
    return flags


def run_main(args, *, devices: int = 8, env=None, timeout=600):
    """`python -m jepax.main ...` in a fresh process with `devices` fake CPU devices."""
    full_env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
                "JAX_PLATFORMS": "cpu", **(env or {})}
    return subprocess.run([sys.executable, "-m", "jepax.main", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


class Main:
    """`python -m <module> <args>` running in the background (default: jepax.main with the
    tiny I-JEPA preset shrunk as small_ijepa, `extra` flags last), its stderr collected as it
    comes (so a test can act on a log line and the pipe never fills)."""

    def __init__(self, workdir, *extra, devices: int = 8, module: str = "jepax.main",
                 launcher_args=(), env=None):
        full_env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
                    "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *launcher_args, f"--config={IJEPA}:tiny",
             f"--workdir={workdir}", *small_flags(), *extra], cwd=ROOT, env=full_env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def running(self) -> bool:
        return self.proc.poll() is None

    def catches_sigterm(self) -> bool:
        """Whether the process has a SIGTERM handler yet (Linux: SigCgt in /proc/<pid>/status)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        caught = next(l for l in status.splitlines() if l.startswith("SigCgt:")).split()[1]
        return bool(int(caught, 16) >> (15 - 1) & 1)  # SIGTERM is signal 15

    def send(self, sig) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout=300) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) once the process ended."""
        out = self.proc.stdout.read()
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return self.proc.returncode, out, self.stderr

    def wait_for(self, condition, timeout=240, what="the condition", or_end=False) -> bool:
        """Poll `condition()` until true. If the process ends first: False with `or_end`,
        else an error."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if condition():
                return True
            if not self.running():
                if or_end:
                    return False
                raise AssertionError(f"process ended before {what}:\n{self.stderr[-3000:]}")
            time.sleep(0.02)
        raise TimeoutError(f"{what} not reached in {timeout}s")


def last_step(workdir) -> int:
    """The last step a run logged (0: none)."""
    path = Path(workdir) / "metrics.jsonl"
    records = read_metrics(workdir) if path.exists() else []
    return records[-1]["step"] if records else 0


def init_params(variant, seed: int = 0):
    """Parameters compiled cheaply (init runs once; see jepax.state.CHEAP_COMPILE)."""
    import jax

    from jepax.state import CHEAP_COMPILE

    key = jax.random.PRNGKey(seed)
    return jax.jit(variant.init_params).lower(key).compile(compiler_options=CHEAP_COMPILE)(key)


def losses(workdir):
    """The per-step losses a run logged."""
    return [r["loss"] for r in read_metrics(workdir)]


def tree_digest(directory) -> str:
    """sha256 over every file's and directory's path and every file's bytes: equal digests
    mean nothing was written, created or removed under `directory` ("absent" if it is not
    there)."""
    directory = Path(directory)
    if not directory.exists():
        return "absent"
    h = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        h.update(str(path.relative_to(directory)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def saved_params(workdir, step=None):
    """The train state a run saved at `step` (default: its latest), as numpy arrays."""
    from jepax.checkpoint import Checkpointer

    ckpt = Checkpointer(Path(workdir) / "checkpoints", read_only=True)
    try:
        return ckpt.restore_params(step)
    finally:
        ckpt.close()


def load_through_init_from(config):
    """What train.run does with train.init_from before and at the first step: check the source
    against the run's abstract state, then load the variant's transfer paths into a state."""
    import jax
    import jax.numpy as jnp

    from jepax import experiment, train

    setup = experiment.build(config)
    train._check_init_from(config.train.init_from, setup.abstract, setup.variant)
    fresh = lambda tree: jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), tree)
    state = setup.abstract.replace(params=fresh(setup.abstract.params),
                                   target=fresh(setup.abstract.target))
    return setup.variant, train._load_init_from(config.train.init_from, state, setup.variant)


def assert_trees_equal(a, b) -> None:
    """Same paths, bit-identical arrays."""
    import jax
    import numpy as np

    flat_a = jax.tree_util.tree_leaves_with_path(a)
    flat_b = jax.tree_util.tree_leaves_with_path(b)
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    for (path, x), (_, y) in zip(flat_a, flat_b):
        np.testing.assert_array_equal(x, y, err_msg=str(path))


def assert_resumes_bit_for_bit(config, workdir, reference, stop_at: int) -> None:
    """Train `config` (without evaluation) to step `stop_at`, start it again to the end, and
    check the losses and final parameters against the uninterrupted `reference` run's."""
    from jepax import train

    end = config.train.steps
    with config.unlocked():
        config.eval.evaluators = ()
        config.train.run_steps = stop_at
    assert train.run(config, workdir)["step"] == stop_at
    with config.unlocked():
        config.train.run_steps = 0
    assert train.run(config, workdir)["step"] == end
    assert losses(workdir) == losses(reference)
    assert_trees_equal(saved_params(workdir, end), saved_params(reference, end))

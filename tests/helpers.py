"""Shared test helpers: small configs and subprocess runs of the real entry point."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from jepax.config import load_config
from jepax.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
IJEPA = str(ROOT / "experiments" / "ijepa.py")


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
    """sha256 over every file's path and bytes: equal digests mean nothing was touched."""
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(directory)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()

"""The sequence studies' models: the selective SSM's parallel (associative) scan against the
step-by-step lax.scan of the same recurrence at the study's lengths (studies with an SSM), and
one train step of each model of the study's first experiment (analytic FLOPs, examples/s,
tokens/s, and how far ahead the data pipeline runs).

    python -m benchmarks.sequence_models                       # experiments/copying.py
    python -m benchmarks.sequence_models --config=experiments/arithmetic.py
    python -m benchmarks.sequence_models --config=experiments/copying.py:tiny --steps=3

Prints JSON lines; --out also writes them to a file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.data_pipeline import loader_rate, step_rate
from jepax import cpu_devices, variants
from jepax.config import load_config
from jepax.studies import STUDIES
from jepax.models.ssm import selective_scan, selective_scan_sequential


def _median_time(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def scan_comparison(batch: int, length: int, channels: int, state: int, repeats: int) -> dict:
    """Forward and forward + backward of both scans on the same random inputs (and the largest
    difference between their outputs)."""
    rng = np.random.default_rng(0)
    shape, shape_n = (batch, length, channels), (batch, length, state)
    x, b, c = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in (shape, shape_n, shape_n))
    dt = jnp.asarray(rng.uniform(1e-3, 0.1, shape), jnp.float32)
    a = -jnp.asarray(np.broadcast_to(np.arange(1, state + 1), (channels, state)), jnp.float32)
    d = jnp.ones((channels,), jnp.float32)
    args = (x, dt, a, b, c, d)
    out = {"batch": batch, "length": length, "channels": channels, "state": state}
    for name, scan in (("associative", selective_scan), ("sequential", selective_scan_sequential)):
        fwd = jax.jit(scan)
        grad = jax.jit(jax.grad(lambda *v, s=scan: jnp.sum(s(*v) ** 2), argnums=(0, 1, 3, 4)))
        out[f"{name}_forward_ms"] = 1e3 * _median_time(fwd, args, repeats)
        out[f"{name}_forward_backward_ms"] = 1e3 * _median_time(grad, args, repeats)
    out["max_abs_difference"] = float(jnp.max(jnp.abs(selective_scan(*args)
                                                      - selective_scan_sequential(*args))))
    out["speedup_forward_backward"] = (out["sequential_forward_backward_ms"]
                                       / out["associative_forward_backward_ms"])
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def plan(config) -> dict:
    """The study's (experiment, model) -> run config."""
    return importlib.import_module(STUDIES[config.study]).plan(config)


def model_steps(config, steps: int, batches: int) -> list[dict]:
    """One train step of each model of the study's first experiment (at its lengths)."""
    rows = []
    configs = plan(config)
    first = next(iter(configs))[0]
    for (experiment, model), rc in configs.items():
        if experiment != first:
            continue
        variant = variants.build(rc)
        loader, batch = loader_rate(rc, variant, batches)
        rate = step_rate(rc, variant, batch, steps)
        tokens = rc.train.batch_size * variant.train_length
        flops = variant.flops_per_step(rc.train.batch_size)
        rows.append({"study": config.study, "model": model, "experiment": experiment,
                     "params": variant.num_params(),
                     "batch": rc.train.batch_size, "tokens_per_example": variant.train_length,
                     "flops_per_step": flops, "steps_per_s": round(rate, 3),
                     "examples_per_s": round(rate * rc.train.batch_size, 1),
                     "tokens_per_s": round(rate * tokens, 1),
                     "gflop_per_s": round(rate * flops / 1e9, 2),
                     "loader_batches_per_s": round(loader, 1),
                     "loader_headroom": round(loader / rate, 1)})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="experiments/copying.py")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    cpu_devices.configure(config.run)
    lines = []
    # the study's sequence lengths (training rows and the longest evaluated copy)
    ssm = "models" in config and "mamba" in config.models
    lengths = sorted({variants.build(rc).max_len for rc in plan(config).values()}
                     | {variants.build(rc).train_length for rc in plan(config).values()})
    mamba, base = (config.models.mamba, config.run.model) if ssm else (None, None)
    for length in lengths if ssm else ():
        lines.append({"benchmark": "ssm_scan", **scan_comparison(
            config.run.train.batch_size, length, mamba.get("expand", base.expand)
            * mamba.get("width", base.width), mamba.get("state", base.state), args.repeats)})
        print(json.dumps(lines[-1]), flush=True)
    for row in model_steps(config, args.steps, args.batches):
        lines.append({"benchmark": "sequence_step", **row})
        print(json.dumps(lines[-1]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("".join(json.dumps(line) + "\n" for line in lines))


if __name__ == "__main__":
    main()

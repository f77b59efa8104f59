"""One Brain-JEPA train step of experiments/brain_jepa.py (or a preset): time per step, examples/s,
analytic FLOPs, TFLOP/s and MFU, the grain loader's rate against the step's, and the data wait
measured inside a short real run of the same config.

    python -m benchmarks.brain_jepa_step                 # the default (CPU-sized) config
    python -m benchmarks.brain_jepa_step --preset=tiny --steps=3 --run-steps=6

Prints one JSON line. On CPU the MFU peak is a measured 2048^3 fp32 matmul (as ijepa_step)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import jax
import numpy as np

from jepax import cpu_devices, experiment, sharding, train, variants
from jepax.config import load_config
from jepax.flops import peak_flops_per_device
from jepax.metrics import read_metrics

from benchmarks.data_pipeline import loader_rate
from benchmarks.ijepa_step import cpu_matmul_peak

CONFIG = "experiments/brain_jepa.py"


def config_for(preset: str):
    return load_config(CONFIG + (f":{preset}" if preset != "default" else ""))


def step_time(config, variant, batch_np, steps: int) -> tuple[float, float]:
    setup = experiment.build(config, variant, total_steps=1000)
    with setup.active():
        batch = setup.global_batch(batch_np)
        t0 = time.perf_counter()
        compiled, init = setup.compile(sharding.abstract_like(batch))
        state = init()
        compile_s = time.perf_counter() - t0
        state, m = compiled(state, batch)
        jax.block_until_ready(m)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            state, m = compiled(state, batch)
            jax.block_until_ready(m)
            times.append(time.perf_counter() - t0)
    return float(np.median(times)), compile_s


def run_data_wait(config, steps: int) -> dict:
    """Data wait inside a real run: the loop's own per-step measurement, first step excluded."""
    run = config.copy_and_resolve_references()
    run.train.update(steps=steps, checkpoint_every=0, log_every=1)
    run.eval.evaluators = ()
    run.logging.update(progress=False, tensorboard=False)
    with tempfile.TemporaryDirectory() as workdir:
        train.run(run, workdir)
        records = read_metrics(workdir)[1:]
    waits = np.array([r["data_wait_s"] for r in records])
    times = np.array([r["step_s"] for r in records])
    return {"run_steps": len(records), "run_step_s": round(float(np.median(times)), 3),
            "data_wait_frac": round(float(waits.sum() / times.sum()), 4)}


def measure(preset: str = "default", steps: int = 5, batches: int = 10,
            run_steps: int = 20) -> dict:
    config = config_for(preset)
    cpu_devices.configure(config)
    variant = variants.build(config)
    loader, batch = loader_rate(config, variant, batches)
    sec, compile_s = step_time(config, variant, batch, steps)
    flops = variant.flops_per_step(config.train.batch_size)
    peak, source = peak_flops_per_device(), "spec table (jepax.flops)"
    if peak is None and jax.devices()[0].platform == "cpu":
        peak, source = cpu_matmul_peak() / jax.device_count(), "measured 2048^3 fp32 matmul"
    m, d = config.model, config.data
    return {
        "brain_jepa_step": preset, "device": jax.devices()[0].device_kind,
        "num_devices": jax.device_count(), "batch_size": config.train.batch_size,
        "grid": list(variant.grid), "model": f"{m.width}x{m.depth}, predictor {m.pred_width}x"
                                             f"{m.pred_depth}, patch {m.patch}, {d.frames} frames",
        "step_ms": round(sec * 1e3, 1), "compile_s": round(compile_s, 1),
        "examples_per_s": round(config.train.batch_size / sec, 2),
        "flops_per_step": flops, "tflops_per_s": round(flops / sec / 1e12, 4),
        "mfu": round(flops / sec / (peak * jax.device_count()), 4) if peak else None,
        "peak_source": source, "loader_batches_per_s": round(loader, 2),
        "loader_headroom": round(loader * sec, 2), **run_data_wait(config, run_steps),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default", choices=("default", "tiny", "paper"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--run-steps", type=int, default=20)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.preset, args.steps, args.batches, args.run_steps)), flush=True)


if __name__ == "__main__":
    main()

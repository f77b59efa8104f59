"""What each variant costs, measured the same way for all of them through the variant contract:
the train step's time on one real batch, examples/s, analytic FLOPs and TFLOP/s, peak device
memory of the compiled step, compile time, and whether the data pipeline keeps up (its batches
per second against the step rate, with the config's reader threads).

    python -m benchmarks.variants --config=experiments/ijepa.py [--config=experiments/x.py:tiny ...]

One JSON line per config. `headroom` = pipeline batches/s over train steps/s: above 1 the
pipeline keeps ahead and the loop's data wait is near zero; below 1 the loop waits about
(1 - headroom) of each step (the loop reads ahead on other threads, so on a 2-core machine
the two compete: the real run's data_wait_frac in metrics.jsonl is the final word).
"""

from __future__ import annotations

import argparse
import json
import time

import jax

from benchmarks.data_pipeline import run_data_wait
from data_pipelines.pipeline import train_dataset
from jepax import cpu_devices, experiment, sharding
from jepax.config import load_config


def loader_rate(config, variant, batches: int):
    """Batches per second the configured pipeline produces, and one batch."""
    d = config.data
    it = iter(train_dataset(variant.train_source(), seed=config.seed,
                            global_batch=config.train.batch_size, example_fn=variant.example_fn(),
                            batch_fn=variant.batch_fn(), num_threads=d.num_threads,
                            prefetch=d.prefetch, num_workers=d.num_workers))
    batch = next(it)  # starts the read-ahead
    t0 = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
    return batches / (time.perf_counter() - t0), batch


def measure(spec: str, steps: int, batches: int, run_steps: int = 0) -> dict:
    """The cost of `spec`'s train step; with `run_steps`, also the data wait inside a real run
    of that many steps (without evaluation)."""
    config = load_config(spec)
    cpu_devices.configure(config)  # as jepax.main does, before devices exist
    setup = experiment.build(config)
    variant = setup.variant
    loader, batch_np = loader_rate(config, variant, batches)
    with setup.active():
        batch = setup.global_batch(batch_np)
        t0 = time.perf_counter()
        compiled, init = setup.compile(sharding.abstract_like(batch))
        compile_s = time.perf_counter() - t0
        state = init()
        state, metrics = compiled(state, batch)  # warm-up
        jax.block_until_ready(metrics)
        t0 = time.perf_counter()
        for _ in range(steps):
            state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        step_s = (time.perf_counter() - t0) / steps
    flops = variant.flops_per_step(config.train.batch_size)
    peak = experiment.peak_bytes(compiled)
    return {"variant_bench": spec, "variant": config.get("variant"),
            "device": jax.devices()[0].device_kind, "num_devices": jax.device_count(),
            "batch_size": config.train.batch_size, "step_ms": round(step_s * 1e3, 2),
            "examples_per_s": round(config.train.batch_size / step_s, 1),
            "flops_per_step": flops, "tflops_per_s": round(flops / step_s / 1e12, 4),
            "peak_memory_mib": None if peak is None else round(peak / 2 ** 20, 1),
            "compile_s": round(compile_s, 2), "loader_batches_per_s": round(loader, 2),
            "headroom": round(loader * step_s, 2),
            **(run_data_wait(spec, run_steps) if run_steps else {})}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True,
                        help="experiment config[:preset]; repeat for several")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--run-steps", type=int, default=0,
                        help="also measure the data wait inside a real run of this many steps")
    args = parser.parse_args(argv)
    for spec in args.config:
        print(json.dumps(measure(spec, args.steps, args.batches, args.run_steps)), flush=True)


if __name__ == "__main__":
    main()

"""Can the grain pipeline keep up with the train step? Masked batches per second (I-JEPA masks
on Fashion-MNIST, experiments/ijepa.py's batch) against that config's step rate, and the data
wait measured inside a real `ijepa.py:tiny` run.

    python -m benchmarks.data_pipeline
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import jax
import numpy as np

from data_pipelines.pipeline import train_dataset
from jepax import cpu_devices, experiment, sharding, train
from jepax.config import load_config
from jepax.metrics import read_metrics
from jepax.variants.ijepa import IJEPA


def loader_rate(config, variant, batches: int) -> float:
    it = iter(train_dataset(variant.train_source(), seed=0,
                            global_batch=config.train.batch_size, example_fn=variant.example_fn(),
                            batch_fn=variant.batch_fn(), num_threads=config.data.num_threads,
                            prefetch=config.data.prefetch))
    next(it)  # start the read-ahead threads
    t0 = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
    return batches / (time.perf_counter() - t0), batch


def step_rate(config, variant, batch_np, steps: int) -> float:
    setup = experiment.build(config, variant, total_steps=1000)
    with setup.active():
        batch = setup.global_batch(batch_np)
        compiled, init = setup.compile(sharding.abstract_like(batch))
        state = init()
        state, m = compiled(state, batch)
        jax.block_until_ready(m)
        t0 = time.perf_counter()
        for _ in range(steps):
            state, m = compiled(state, batch)
        jax.block_until_ready(m)
    return steps / (time.perf_counter() - t0)


def run_data_wait(spec: str = "experiments/ijepa.py:tiny", run_steps: int = 0) -> dict:
    """Data wait as a share of step time in a real run of `spec` (its first `run_steps` steps;
    0: all), without evaluation."""
    config = load_config(spec)
    config.logging.progress = False
    config.eval.evaluators = ()
    config.train.run_steps = run_steps
    with tempfile.TemporaryDirectory() as workdir:
        train.run(config, workdir)
        records = read_metrics(workdir)[1:]  # the first step waits for the compile's batch
    waits = np.array([r["data_wait_s"] for r in records])
    steps = np.array([r["step_s"] for r in records])
    return {"run_data_wait_frac": round(float(waits.sum() / steps.sum()), 4),
            "run_steps": len(records)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    config = load_config("experiments/ijepa.py")
    cpu_devices.configure(config)  # as jepax.main does, before devices exist
    variant = IJEPA(config)
    loader, batch = loader_rate(config, variant, args.batches)
    steps = step_rate(config, variant, batch, args.steps)
    print(json.dumps({"batch_size": config.train.batch_size,
                      "loader_batches_per_s": round(loader, 2), "steps_per_s": round(steps, 3),
                      "headroom": round(loader / steps, 2),
                      **run_data_wait("experiments/ijepa.py:tiny")}))


if __name__ == "__main__":
    main()

"""T-JEPA on tables: analytic FLOPs, examples/s of the real train step, how fast the grain
pipeline (rows + per-batch feature masks) delivers batches against it, and the data wait inside
a real run.

    python -m benchmarks.t_jepa                # experiments/t_jepa.py (diamonds, batch 512)
    python -m benchmarks.t_jepa --preset=tiny

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json

from benchmarks.data_pipeline import loader_rate, step_rate, tiny_run_data_wait
from jepax import cpu_devices
from jepax.config import load_config
from jepax.variants.t_jepa import TJEPA

CONFIG = "experiments/t_jepa.py"


def measure(preset: str = "", steps: int = 20, batches: int = 30, run_steps: int = 60) -> dict:
    spec = CONFIG + (f":{preset}" if preset else "")
    config = load_config(spec)
    cpu_devices.configure(config)  # as jepax.main does, before devices exist
    variant = TJEPA(config)
    batch_size = config.train.batch_size
    loader, batch = loader_rate(config, variant, batches)
    steps_per_s = step_rate(config, variant, batch, steps)
    flops = variant.flops_per_step(batch_size)
    wait = tiny_run_data_wait(spec, run_steps=run_steps)
    return {"t_jepa_preset": preset or "default", "table": config.data.table,
            "tokens": variant.n_tokens, "batch_size": batch_size, "flops_per_step": flops,
            "step_ms": round(1e3 / steps_per_s, 2),
            "examples_per_s": round(steps_per_s * batch_size, 1),
            "tflops_per_s": round(flops * steps_per_s / 1e12, 4),
            "loader_batches_per_s": round(loader, 2), "headroom": round(loader / steps_per_s, 2),
            "run_data_wait_frac": wait["tiny_run_data_wait_frac"],
            "run_steps": wait["tiny_run_steps"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="", help="'' (default config) or tiny")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--run-steps", type=int, default=60)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.preset, args.steps, args.batches, args.run_steps)))


if __name__ == "__main__":
    main()

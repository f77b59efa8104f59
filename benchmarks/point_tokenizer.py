"""The point tokenizer's geometry on the device: farthest point sampling, kNN grouping and
Point-JEPA's nearest-neighbour sequencer, each jit-compiled and batched at a config's train
batch, and their share of that config's whole train step (benchmarks.variants).

    python -m benchmarks.point_tokenizer --config=experiments/point_jepa.py

One JSON line per config: ms per batch for FPS, FPS + kNN (the tokenizer's parameter-free half,
run once per step and shared by the teacher and the student), the sequencer, the step, and
`tokenizer_share` = (FPS + kNN [+ sequencer for Point-JEPA]) / step.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from benchmarks.variants import measure
from jepax.config import load_config
from jepax.models import point_ops


def timed(fn, *args, repeats: int = 10) -> float:
    """Milliseconds per call of the compiled `fn` (after a warm-up call)."""
    compiled = jax.jit(fn).lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = compiled(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / repeats * 1e3


def geometry(spec: str, repeats: int) -> dict:
    config = load_config(spec)
    m, d, b = config.model, config.data, config.train.batch_size
    rng = np.random.default_rng(0)
    clouds = rng.normal(size=(b, d.points, 3)).astype(np.float32)
    centres = clouds[:, :m.num_groups]
    out = {"fps_ms": timed(lambda x: point_ops.farthest_point_sample(x, m.num_groups), clouds,
                           repeats=repeats),
           "group_ms": timed(lambda x: point_ops.group_points(x, m.num_groups, m.group_size),
                             clouds, repeats=repeats),
           "sequencer_ms": timed(point_ops.nearest_neighbour_order, centres, repeats=repeats)}
    out["knn_ms"] = out["group_ms"] - out["fps_ms"]
    return {k: round(v, 3) for k, v in out.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    for spec in args.config:
        config = load_config(spec)
        geo = geometry(spec, args.repeats)
        step = measure(spec, args.steps, batches=5)
        batch = config.train.batch_size
        tokenizer = geo["group_ms"] + (geo["sequencer_ms"] if config.variant == "point_jepa"
                                       else 0.0)
        print(json.dumps({"point_tokenizer": spec, "variant": config.variant,
                          "batch_size": batch, "points": config.data.points,
                          "groups": config.model.num_groups, **geo, "step_ms": step["step_ms"],
                          "tokenizer_share": round(tokenizer / step["step_ms"], 4),
                          "fps_clouds_per_s": round(batch / geo["fps_ms"] * 1e3)}), flush=True)


if __name__ == "__main__":
    main()

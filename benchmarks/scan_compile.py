"""Compile time of the I-JEPA train step as the encoder deepens, with and without
`model.scan_layers`, and the step time it costs at a small size.

    python -m benchmarks.scan_compile                     # ViT-S/B/L/H, unrolled vs scanned
    python -m benchmarks.scan_compile --sizes=S,B --step-time=0

Ahead of time: the train step is traced and lowered for abstract inputs, then compiled; no state
is created and no step runs, so even ViT-H costs only the compiler's memory. Shapes are
I-JEPA's at 224 x 224, patch 16 (a 14 x 14 grid; 98 context tokens, 4 blocks of 29 targets), a
predictor 384 wide and 12 deep, batch 8 (compile time hardly depends on the batch), fp32.
One JSON line per (size, setting); `--step-time` rounds then time the cpu-tiny step (depth 6,
scanning forced on and off) in alternating blocks, since scanning must not slow the step.
"""

from __future__ import annotations

import argparse
import json
import time

import jax

from benchmarks.ijepa_step import PRESETS, JepaxStep, alternate, fixed_batch, jepax_config

# I-JEPA's encoders: (width, depth, heads)
VIT_SIZES = {"S": (384, 12, 6), "B": (768, 12, 12), "L": (1024, 24, 16), "H": (1280, 32, 16)}


def shapes(size: str) -> dict:
    if size == "smoke":  # seconds on any machine: for tests of this harness
        return PRESETS["smoke"]
    width, depth, heads = VIT_SIZES[size]
    return dict(PRESETS["gpu-vitb"], width=width, depth=depth, heads=heads, pred_width=384,
                pred_depth=12, pred_heads=12, batch=8, dtype="float32")


def compile_time(size: str, scan: bool) -> dict:
    """Seconds to trace + lower and to compile the train step of ViT-`size`."""
    from jepax import experiment, sharding
    from jepax.variants.ijepa import IJEPA

    p = shapes(size)
    config = jepax_config(p, scan_layers=scan)
    variant = IJEPA(config)
    masks = variant.masks
    batch_np = fixed_batch(p, (masks.context_capacity, masks.target_capacity))
    setup = experiment.build(config, variant, total_steps=1000)
    with setup.active():
        batch = setup.global_batch(batch_np)
        t0 = time.perf_counter()
        lowered, options = setup.lower_step(sharding.abstract_like(batch))
        t1 = time.perf_counter()
        lowered.compile(compiler_options=options)
        t2 = time.perf_counter()
    return {"scan_compile": f"ViT-{size}", "scan_layers": scan, "depth": p["depth"],
            "pred_depth": p["pred_depth"], "width": p["width"],
            "lower_s": round(t1 - t0, 2), "compile_s": round(t2 - t1, 2),
            "total_s": round(t2 - t0, 2)}


def step_time(rounds: int) -> dict:
    """cpu-tiny step time, scanned vs unrolled, timed in alternating blocks."""
    p = PRESETS["cpu-tiny"]
    runners = {"unrolled": JepaxStep(p, scan_layers=False),
               "scanned": JepaxStep(p, scan_layers=True)}
    sec = alternate(runners, rounds, steps=3, warmup=2)
    return {"scan_step": "cpu-tiny", "depth": p["depth"], "pred_depth": p["pred_depth"],
            "unrolled_ms": round(sec["unrolled"] * 1e3, 1),
            "scanned_ms": round(sec["scanned"] * 1e3, 1),
            "ratio": round(sec["unrolled"] / sec["scanned"], 3),
            "compile_unrolled_s": round(runners["unrolled"].compile_s, 2),
            "compile_scanned_s": round(runners["scanned"].compile_s, 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="S,B,L,H",
                        help="comma-separated of " + ",".join(VIT_SIZES))
    parser.add_argument("--step-time", type=int, default=6, metavar="ROUNDS",
                        help="rounds of the cpu-tiny step-time comparison (0: skip)")
    args = parser.parse_args(argv)
    for size in args.sizes.split(","):
        for scan in (False, True):
            print(json.dumps(compile_time(size, scan)), flush=True)
    if args.step_time:
        print(json.dumps(step_time(args.step_time)), flush=True)


if __name__ == "__main__":
    jax.config.update("jax_platforms", "cpu")
    main()

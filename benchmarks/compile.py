"""Time to first step, and proof that no step after the first compiles anything.

    python -m benchmarks.compile --preset=cpu-tiny

Counts XLA backend compilations through jax.monitoring while steps run: after the first step
the count must stay at zero (the train step is AOT-compiled for fixed shapes)."""

from __future__ import annotations

import argparse
import json
import time

import jax

from benchmarks.ijepa_step import PRESETS, JepaxStep

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-tiny")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)

    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, seconds, **kw: compiles.append(seconds) if event == COMPILE_EVENT else None)
    t0 = time.perf_counter()
    step = JepaxStep(PRESETS[args.preset])  # builds the model, creates the state, compiles
    step.run(1)
    first = time.perf_counter() - t0
    before = len(compiles)
    step.run(args.steps)
    print(json.dumps({
        "preset": args.preset, "device": jax.devices()[0].device_kind,
        "time_to_first_step_s": round(first, 2), "train_step_compile_s": round(step.compile_s, 2),
        "compiles_before_first_step": before,
        "compiles_during_next_steps": len(compiles) - before, "next_steps": args.steps,
    }))


if __name__ == "__main__":
    main()

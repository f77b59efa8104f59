"""Time to first step, and proof that no step after the first compiles anything.

    python -m benchmarks.compile --preset=cpu-tiny

Counts XLA backend compilations through jax.monitoring while steps run: after the first step
the count must stay at zero (the train step is AOT-compiled for fixed shapes)."""

from __future__ import annotations

import argparse
import json
import time

import jax

from jepax.models.layers import ATTENTION_IMPLEMENTATIONS

from benchmarks.ijepa_step import PRESETS, JepaxStep, cpu_devices_arg

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def measure(preset: str, steps: int, attention: str = "auto", pad_multiple: int = 1,
            cpu_devices=None) -> dict:
    compiles = []

    def listener(event, seconds, **kwargs):
        if event == COMPILE_EVENT:
            compiles.append(seconds)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        t0 = time.perf_counter()
        # builds the model, creates the state, compiles the step
        step = JepaxStep(PRESETS[preset], attention, pad_multiple, cpu_devices)
        step.run(1)
        first = time.perf_counter() - t0
        before = len(compiles)
        step.run(steps)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return {
        "preset": preset, "device": jax.devices()[0].device_kind, "num_devices": jax.device_count(),
        "time_to_first_step_s": round(first, 2), "compile_s": round(step.compile_s, 2),
        "compiles_before_first_step": before,
        "compiles_during_next_steps": len(compiles) - before, "next_steps": steps,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-tiny")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--attention", default="auto", choices=ATTENTION_IMPLEMENTATIONS)
    parser.add_argument("--pad-multiple", type=int, default=1)
    parser.add_argument("--cpu-devices", type=cpu_devices_arg, default=None,
                        help="jepax's mesh.cpu_devices (default: the config's)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.preset, args.steps, args.attention, args.pad_multiple,
                             args.cpu_devices)))


if __name__ == "__main__":
    main()

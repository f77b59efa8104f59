"""Time to first step, and proof that no step after the first compiles anything.

    python -m benchmarks.compile --preset=cpu-tiny

Counts XLA backend compilations through jax.monitoring while steps run: after the first step
the count must stay at zero (the train step is AOT-compiled for fixed shapes).
`--repeats=K` measures K fresh processes (nothing compiled or cached before each) and reports
the median time to first step with every run, since one cold start on a shared machine is noisy."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import jax

from jepax.models.layers import ATTENTION_IMPLEMENTATIONS

from benchmarks.ijepa_step import PRESETS, JepaxStep, cpu_devices_arg, preset_parser

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


def in_fresh_processes(repeats: int, argv: list[str]) -> dict:
    """`measure` in `repeats` new interpreters, one after the other; the median run's numbers."""
    runs = []
    for i in range(repeats):
        out = subprocess.run([sys.executable, "-m", "benchmarks.compile", *argv], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(f"compile run {i + 1}/{repeats}: {runs[-1]['time_to_first_step_s']} s",
              file=sys.stderr, flush=True)
    first = [r["time_to_first_step_s"] for r in runs]
    median = dict(runs[first.index(statistics.median_low(first))])
    median.update(time_to_first_step_runs_s=first,
                  compiles_during_next_steps=max(r["compiles_during_next_steps"] for r in runs))
    return median


def main(argv=None):
    parser = preset_parser(__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--attention", default="auto", choices=ATTENTION_IMPLEMENTATIONS)
    parser.add_argument("--pad-multiple", type=int, default=1)
    parser.add_argument("--cpu-devices", type=cpu_devices_arg, default=None,
                        help="jepax's mesh.cpu_devices (default: the config's)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="measure this many fresh processes and report the median")
    args = parser.parse_args(argv)
    if args.repeats > 1:
        one = [f"--preset={args.preset}", f"--steps={args.steps}",
               f"--attention={args.attention}", f"--pad-multiple={args.pad_multiple}"]
        if args.cpu_devices is not None:
            one.append(f"--cpu-devices={args.cpu_devices}")
        print(json.dumps(in_fresh_processes(args.repeats, one)))
        return
    print(json.dumps(measure(args.preset, args.steps, args.attention, args.pad_multiple,
                             args.cpu_devices)))


if __name__ == "__main__":
    main()

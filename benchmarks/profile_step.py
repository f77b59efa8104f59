"""Where the jepax step's time goes on this backend: XLA's own per-op trace of a few train
steps (jax.profiler, Perfetto format), summed by op kind.

    python -m benchmarks.profile_step --preset=cpu-tiny

Prints one JSON line: milliseconds per step for each kind of compiled op (fusions named by XLA,
e.g. `ynn_fusion` = matrix multiplies lowered to YNNPACK on CPU), largest first, and the share
of the kinds holding a dot (matrix multiply). Independent ops run concurrently on the CPU's
threads, so the summed op time can exceed the step's wall time."""

from __future__ import annotations

import collections
import gzip
import json
import re
import tempfile
from pathlib import Path

import jax

from benchmarks.ijepa_step import PRESETS, JepaxStep, preset_main

# Host-side and runtime events that enclose the ops rather than being ops.
NOT_OPS = ("ThunkExecutor", "$", "SlinkyThreadPool", "PjitFunction", "CommonPjRt", "PjRt")


def op_kind_ms(trace: dict, steps: int) -> dict[str, float]:
    totals = collections.Counter()
    for event in trace["traceEvents"]:
        name = event.get("name", "")
        if event.get("ph") == "X" and not name.startswith(NOT_OPS):
            totals[re.sub(r"[.\d]+$", "", name)] += event["dur"] / 1e3 / steps
    return {kind: round(ms, 1) for kind, ms in totals.most_common()}


def measure(preset: str, steps: int) -> dict:
    jx = JepaxStep(PRESETS[preset])
    jx.run(2)
    with tempfile.TemporaryDirectory() as logdir:
        jax.profiler.start_trace(logdir, create_perfetto_trace=True)
        jx.run(steps)
        jax.profiler.stop_trace()
        trace_file = next(Path(logdir).rglob("*.trace.json.gz"))
        kinds = op_kind_ms(json.loads(gzip.open(trace_file).read()), steps)
    dots = [k for k in kinds if "dot" in k or k.startswith(("ynn_fusion", "xnn_fusion"))]
    total = sum(kinds.values())
    return {"profile_preset": preset, "ops_ms_per_step": round(total, 1),
            "dot_share": round(sum(kinds[k] for k in dots) / total, 3) if total else None,
            "ms_per_step_by_kind": dict(list(kinds.items())[:12])}


def main(argv=None):
    preset_main(__doc__, measure, argv, steps=3)


if __name__ == "__main__":
    main()

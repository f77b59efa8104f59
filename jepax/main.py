"""Command-line entry: ``python -m jepax.main --config=experiments/ijepa.py[:preset] [--workdir=DIR]``.

Overrides use ml_collections syntax (``--config.train.steps=200``); unknown keys are errors.
The distributed runtime is initialized before anything touches a device.

Failures the user can cause raise the project's own error classes (ConfigError, DataError,
CheckpointError, MeshError, WorkdirLocked, ...: any exception class defined in ``jepax`` or
``data_pipelines``); they end in one line, ``jepax: error: <what is wrong and the fix>``, and
exit status 1, never a traceback. Anything else is a bug and keeps its traceback. A stop by
SIGTERM exits 0 after checkpointing (schedulers requeue it), by Ctrl-C 130.
"""

from __future__ import annotations

import difflib
import json
import os
import signal
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file[:preset]",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (default: runs/<config name>)")
flags.mark_flags_as_required(["config"])

PROJECT_PACKAGES = ("jepax", "data_pipelines")
INTERNAL = ("Preempted",)  # handled inside the loop; never a user-facing error


def is_user_error(error: BaseException) -> bool:
    """An exception of the project's own classes: its message names the problem and the fix."""
    return any(cls.__module__.split(".")[0] in PROJECT_PACKAGES and cls.__name__ not in INTERNAL
               for cls in type(error).__mro__)


def fail(message: str, status: int = 1):
    print(f"jepax: error: {message}", file=sys.stderr)
    sys.exit(status)


def main(argv) -> None:
    try:
        summary = _train()
    except KeyboardInterrupt:  # multi-process runs keep Python's own Ctrl-C
        fail("interrupted: stopped at once, without a final checkpoint; rerun the same command "
             "to resume from the last one", 130)
    except Exception as e:  # noqa: BLE001 - the project's errors end in one line
        if not is_user_error(e):
            raise
        fail(str(e))
    import jax

    if jax.process_index() == 0:
        print(json.dumps(summary, indent=1, default=str))
    if summary.get("stopped_by") == "SIGINT":
        sys.exit(130)


def _train() -> dict:
    config = _CONFIG.value
    from jepax import cpu_devices, distributed, preemption

    if config.get("distributed", {}).get("mode", "off") != "off":
        # Several processes stop together through JAX's preemption service (its own SIGTERM
        # handler, installed by distributed.initialize); Ctrl-C aborts them.
        preemption.restore({signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler})
    if preemption.requested():
        print(f"jepax: stopped by {preemption.requested()} before the run started; nothing was "
              "written", file=sys.stderr)
        return {"preempted": True, "stopped_by": preemption.requested(), "step": None}
    # First: before jax creates its devices.
    cpu_devices.configure(config)
    distributed.maybe_initialize(config)
    from jepax import train

    return train.run(config, _WORKDIR.value)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with every command-line problem (a config file that does not
    exist or does not load, an unknown preset or key, a value of the wrong type, a stray
    argument) in one line."""
    problem = _config_problem(argv[1:])
    if problem:
        fail(problem)
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e).splitlines()[0])
    if len(rest) > 1:
        fail(f"unexpected arguments {rest[1:]}: flags look like --config=FILE[:preset], "
             "--workdir=DIR, --config.<section>.<key>=VALUE")
    return rest


def _config_problem(args: list[str]) -> str | None:
    """What is wrong with --config and its --config.<key> overrides, checked by loading the
    file the way the flag will (None: nothing found; absl then checks the values' types)."""
    spec = next((a.partition("=")[2] for a in args if a.startswith("--config=")), None)
    if spec is None and "--config" in args[:-1]:
        spec = args[args.index("--config") + 1]
    if not spec:
        return None  # absl says --config is required
    path = spec.partition(":")[0]
    if not os.path.isfile(path):
        return f"--config={spec}: {path} is not a file; pass an experiment config, e.g. " \
               "--config=experiments/ijepa.py:tiny"
    from jepax.config import load_config

    try:
        config = load_config(spec)
    except Exception as e:  # noqa: BLE001 - whatever the file raises, in one line
        return str(e) if is_user_error(e) else f"--config={spec} does not load ({type(e).__name__}: {e})"
    for arg in args:
        if not arg.startswith("--config."):
            continue
        node, keys = config, arg.partition("=")[0][len("--config."):].split(".")
        for depth, key in enumerate(keys):
            if not hasattr(node, "keys") or key not in node.keys():
                where = ".".join(["config", *keys[:depth]])
                known = sorted(node.keys()) if hasattr(node, "keys") else []
                close = difflib.get_close_matches(key, known, n=1)
                return (f"{arg.partition('=')[0]}: {where} has no key {key!r}"
                        + (f" (did you mean {close[0]!r}?)" if close else
                           f" (its keys: {', '.join(known)})" if known else ""))
            node = node[key]
    return None


def run() -> None:
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()

"""Command-line entry: ``python -m jepax.main --config=experiments/ijepa.py[:preset] [--workdir=DIR]``.

Overrides use ml_collections syntax (``--config.train.steps=200``); unknown keys are errors.
The distributed runtime is initialized before anything touches a device.
"""

from __future__ import annotations

import json

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file[:preset]",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (default: runs/<config name>)")
flags.mark_flags_as_required(["config"])


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    from jepax import cpu_devices, distributed

    # First: before jax creates its devices.
    cpu_devices.configure(config)
    distributed.maybe_initialize(config)
    from jepax import train

    summary = train.run(config, _WORKDIR.value)
    import jax

    if jax.process_index() == 0:
        print(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    app.run(main)

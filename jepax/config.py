"""Shared experiment-config helpers: the common sections, presets and validation.

Experiment files build on :func:`base_config` and return a *locked* ``ConfigDict``, so a typo
in a key (from Python or from ``--config.section.key=...``) is an error instead of a silent
new field. :func:`validate` checks values and names the fix.
"""

from __future__ import annotations

from typing import Callable

import ml_collections


class ConfigError(ValueError):
    """A config value that cannot work; the message says which and how to fix it."""


def base_config() -> ml_collections.ConfigDict:
    """Sections every run has: train loop, optimizer, mesh, logging, eval, distributed."""
    c = ml_collections.ConfigDict()
    c.name = ""
    c.seed = 0

    c.train = dict(
        steps=1000,
        batch_size=128,          # global batch, split over processes and the (data, fsdp) axes
        log_every=10,
        checkpoint_every=200,
        keep_checkpoints=3,
        async_checkpoints=True,
        init_from="",            # another run's workdir: start from its encoder weights
        nan_policy="stop",       # stop | rollback (restore last checkpoint, skip the batch)
        max_rollbacks=3,
        run_steps=0,             # stop this invocation after this many steps (0: run to the end)
        allow_config_change=False,  # resume a workdir whose saved config trains something else
    )
    # Every variant's data section starts with these: the source name (data_pipelines.sources)
    # and how the grain pipeline reads it (threads, read-ahead, worker processes).
    c.data = dict(dataset="", num_threads=1, prefetch=4, num_workers=0)
    c.optim = dict(
        lr=1e-3, start_lr=2e-4, final_lr=1e-6, warmup_steps=100,
        weight_decay=0.04, final_weight_decay=0.4,
        ema=(0.996, 1.0),
        b1=0.9, b2=0.999, eps=1e-8,
        grad_clip=0.0,           # global-norm clipping; 0: off
        grad_clip_value=0.0,     # element-wise clamp of each gradient to [-v, v]; 0: off
    )
    # cpu_devices: 0 = XLA's one CPU device; "auto" = one per core (jepax/cpu_devices.py)
    c.mesh = dict(data=-1, fsdp=1, tensor=1, rules=None, cpu_devices=any_type(0))
    c.logging = dict(
        tensorboard=True,
        progress=True,
        peak_flops_per_device=0.0,  # 0: look up by device kind (unknown kinds report no MFU)
    )
    c.eval = dict(
        batch_size=512,          # examples per device batch when computing outputs to evaluate
        evaluators=any_type(None),  # names of config.evals blocks to run (None: all)
    )
    c.evals = {}                 # name -> evaluator block (jepax.evaluators.block)
    c.distributed = dict(
        mode="off",              # off | auto | explicit
        coordinator_address="",  # explicit: host:port of process 0
        num_processes=0,
        process_id=-1,
        initialization_timeout=300,
        heartbeat_timeout=100,   # seconds before a dead peer fails the run instead of hanging
    )
    return c


def any_type(default):
    """A config field that accepts values of any type (e.g. None | 'auto' | int), from Python
    and from the command line (which parses literals)."""
    return ml_collections.FieldReference(default, field_type=object)


def parse_preset(arg: str | None, presets: dict[str, Callable]) -> Callable | None:
    """`--config=experiments/x.py:tiny` -> the preset function for 'tiny' (None for default)."""
    if not arg:
        return None
    if arg not in presets:
        raise ConfigError(f"unknown preset {arg!r}; available: {', '.join(sorted(presets))}")
    return presets[arg]


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Load `path/to/experiment.py[:preset]` the way `--config=` does (handy in Colab)."""
    import importlib.util

    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_jepax_experiment", path)
    if module_spec is None:
        raise ConfigError(f"config file {path} not found")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def finalize(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Lock the config so unknown keys are errors everywhere (Python and command line)."""
    config.lock()
    return config


def _positive(config, *paths):
    for path in paths:
        section, key = path.split(".")
        value = config[section][key]
        if not value > 0:
            raise ConfigError(f"{path}={value} must be positive; set --config.{path}=<positive>")


def validate(config: ml_collections.ConfigDict) -> None:
    """Value checks common to every run (variants add their own)."""
    _positive(config, "train.steps", "train.batch_size", "train.log_every", "optim.lr",
              "eval.batch_size")
    for path in ("train.run_steps", "optim.start_lr", "optim.final_lr", "optim.weight_decay",
                 "optim.final_weight_decay", "optim.warmup_steps", "train.checkpoint_every",
                 "optim.grad_clip", "optim.grad_clip_value"):
        section, key = path.split(".")
        if config[section][key] < 0:
            raise ConfigError(f"{path}={config[section][key]} must be >= 0")
    lo, hi = config.optim.ema
    if not 0 <= lo <= hi <= 1:
        raise ConfigError(f"optim.ema={tuple(config.optim.ema)} must satisfy 0 <= start <= end <= 1")
    if config.train.nan_policy not in ("stop", "rollback"):
        raise ConfigError(f"train.nan_policy={config.train.nan_policy!r}: use 'stop' or 'rollback'")
    if config.distributed.mode not in ("off", "auto", "explicit"):
        raise ConfigError(f"distributed.mode={config.distributed.mode!r}: use off, auto or explicit")

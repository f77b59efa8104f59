"""Shared experiment-config helpers: the common sections, presets and validation.

Experiment files build on :func:`base_config` and return a *locked* ``ConfigDict``, so a typo
in a key (from Python or from ``--config.section.key=...``) is an error instead of a silent
new field. :func:`validate` checks values and names the fix.
"""

from __future__ import annotations

import math
import os
from typing import Callable

import ml_collections


class ConfigError(ValueError):
    """A config value that cannot work; the message says which and how to fix it."""


def require_positive(section, name: str, keys) -> None:
    """A ConfigError naming the first of `keys` in config section `name` that is not > 0."""
    for key in keys:
        if section[key] <= 0:
            raise ConfigError(f"{name}.{key}={section[key]} must be positive")


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
        init_from="",            # another run's workdir, or a published .pth file (jepax.convert)
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
        # dtype the trained parameters are stored in: float32 (master weights; with
        # model.dtype=bfloat16 that is mixed precision), or bfloat16 (half the parameter memory;
        # optimizer moments, updates and the EMA target stay float32)
        param_dtype="float32",
    )
    # cpu_devices: 0 = XLA's one CPU device; "auto" = one per core (jepax/cpu_devices.py)
    c.mesh = dict(data=-1, fsdp=1, tensor=1, rules=None, cpu_devices=any_type(0))
    c.logging = dict(
        tensorboard=True,
        progress=True,
        peak_flops_per_device=0.0,  # 0: look up by device kind (unknown kinds report no MFU)
        collapse_warning=0.05,   # warn when the metric target_std falls below this (0: never)
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
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} not found")
    module_spec = importlib.util.spec_from_file_location("_jepax_experiment", path)
    if module_spec is None or not path.endswith(".py"):
        raise ConfigError(f"config file {path} is not a Python file with get_config(); pass an "
                          "experiment config, e.g. experiments/ijepa.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def finalize(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Lock the config so unknown keys are errors everywhere (Python and command line)."""
    config.lock()
    return config


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _int(lo: int):
    return (lambda v: _is_int(v) and v >= lo), (
        "must be a positive integer" if lo == 1 else f"must be an integer >= {lo}")


def _number(lo: float = 0.0, *, positive: bool = False, below: float | None = None):
    def ok(v):
        return _is_number(v) and (v > lo if positive else v >= lo) and (below is None or v < below)
    rng = f"{'>' if positive else '>='} {lo}" + (f" and < {below}" if below is not None else "")
    return ok, f"must be a finite number {rng}"


def _choice(*options):
    return (lambda v: v in options), f"must be one of {', '.join(map(repr, options))}"


def _ema(v):
    return (isinstance(v, (tuple, list)) and len(v) == 2 and all(_is_number(x) for x in v)
            and 0 <= v[0] <= v[1] <= 1)


_FLAG = (lambda v: isinstance(v, bool)), "must be True or False"
_TEXT = (lambda v: isinstance(v, str)), "must be a string"
_NAMES = ((lambda v: v is None or (isinstance(v, (tuple, list)) and all(isinstance(n, str) for n in v))),
          "must be None (all) or a tuple of names, e.g. \"('knn',)\"")
_MESH_AXIS = (lambda v: _is_int(v) and (v == -1 or v >= 1)), "must be a positive size or -1 (fill)"
_RULES_LIST = ((lambda v: v is None or isinstance(v, (tuple, list))),
               "must be None (the defaults) or a sequence of (logical name, mesh axes) pairs")

# Every value of base_config() and the rule it must satisfy (tests check that none is
# missing). Variant sections (model, mask, the rest of data) are checked by the variant.
RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "name": _TEXT,
    "seed": _int(0),
    "train.steps": _int(1),
    "train.batch_size": _int(1),
    "train.log_every": _int(1),
    "train.checkpoint_every": _int(0),
    "train.keep_checkpoints": _int(1),
    "train.async_checkpoints": _FLAG,
    "train.init_from": _TEXT,
    "train.nan_policy": _choice("stop", "rollback"),
    "train.max_rollbacks": _int(0),
    "train.run_steps": _int(0),
    "train.allow_config_change": _FLAG,
    "data.dataset": ((lambda v: isinstance(v, str) and bool(v)), "must name a data source"),
    "data.num_threads": _int(0),
    "data.prefetch": _int(0),
    "data.num_workers": _int(0),
    "optim.lr": _number(positive=True),
    "optim.start_lr": _number(),
    "optim.final_lr": _number(),
    "optim.warmup_steps": _int(0),
    "optim.weight_decay": _number(),
    "optim.final_weight_decay": _number(),
    "optim.ema": (_ema, "must be (start, end) with 0 <= start <= end <= 1"),
    "optim.b1": _number(below=1.0),
    "optim.b2": _number(below=1.0),
    "optim.eps": _number(positive=True),
    "optim.grad_clip": _number(),
    "optim.grad_clip_value": _number(),
    "optim.param_dtype": ((lambda v: v in ("float32", "bfloat16")), "must be float32 or bfloat16"),
    "mesh.data": _MESH_AXIS,
    "mesh.fsdp": _MESH_AXIS,
    "mesh.tensor": _MESH_AXIS,
    "mesh.rules": _RULES_LIST,
    "mesh.cpu_devices": ((lambda v: v == "auto" or _is_int(v) and v >= 0),
                         "must be 'auto', 0 (XLA's default) or a positive device count"),
    "logging.tensorboard": _FLAG,
    "logging.progress": _FLAG,
    "logging.peak_flops_per_device": _number(),
    "logging.collapse_warning": _number(),
    "eval.batch_size": _int(1),
    "eval.evaluators": _NAMES,
    "distributed.mode": _choice("off", "auto", "explicit"),
    "distributed.coordinator_address": _TEXT,
    "distributed.num_processes": _int(0),
    "distributed.process_id": _int(-1),
    "distributed.initialization_timeout": _number(positive=True),
    "distributed.heartbeat_timeout": _number(positive=True),
}


def validate(config: ml_collections.ConfigDict) -> None:
    """Value checks common to every run (variants check their own sections): every value of
    the base sections, then every evaluator block. ConfigError names the key and the fix."""
    for path, (ok, requirement) in RULES.items():
        node = config
        for key in path.split("."):
            node = node[key]
        if not ok(node):
            raise ConfigError(f"{path}={node!r} {requirement}; fix it with --config.{path}=<value>")
    from jepax import evaluators  # noqa: PLC0415 - the registry imports this module

    for name, config_block in config.evals.items():
        evaluators.build(name, config_block)
    evaluators.selected(config)

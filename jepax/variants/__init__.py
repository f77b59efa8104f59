"""Variant registry: config.variant -> the class implementing it.

A variant object provides: ``init_params(key)``, ``param_specs(mesh, rules)``,
``target_source(params)`` (what the EMA target tracks), ``example_fn()`` / ``batch_fn()`` (host
transforms for the grain pipeline), ``eval_transform()``, ``loss(params, target, batch, rng)``,
``features(target, images)`` (for evaluators) and ``flops_per_step(global_batch)``. Its module
also has ``validate(config)``.
"""

from __future__ import annotations

import importlib

from jepax.config import ConfigError

VARIANTS = {
    "ijepa": ("jepax.variants.ijepa", "IJEPA"),
}


def build(config):
    if config.variant not in VARIANTS:
        raise ConfigError(f"unknown variant {config.variant!r}; available: {', '.join(VARIANTS)}")
    module_name, class_name = VARIANTS[config.variant]
    module = importlib.import_module(module_name)
    module.validate(config)
    return getattr(module, class_name)(config)

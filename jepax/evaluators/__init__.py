"""Evaluator registry: each evaluator is a plug-in configured by its own config block.

An experiment lists its evaluations in ``config.evals``, one block each (big_vision's
``config.evals`` is the model)::

    c.evals = dict(
        linear_probe=evaluators.block("linear_probe", train_examples=60000),
        knn=evaluators.block("knn", k=20, every=500),
    )

A block's ``type`` picks the class here and its other keys are that class's ``DEFAULTS``
(unknown keys are errors); ``every`` is how often it runs (0: only at the end of training).
``config.eval.evaluators`` (None: all) chooses which blocks run, e.g. ``--config.eval.evaluators=()``.
Entries are ``"module:Class"`` paths imported on first use; add your own with :func:`register`.
"""

from __future__ import annotations

import importlib
from typing import Any

from jepax.config import ConfigError

EVALUATORS: dict[str, str | type] = {
    "linear_probe": "jepax.evaluators.linear_probe:LinearProbe",
    "knn": "jepax.evaluators.knn:KNN",
    "rankme": "jepax.evaluators.rankme:RankMe",
    "regression_probe": "jepax.evaluators.regression_probe:RegressionProbe",
    "fine_tune": "jepax.evaluators.fine_tune:FineTune",
    "collapse": "jepax.evaluators.collapse:CollapseGuard",
    "linear_svm": "jepax.evaluators.linear_svm:LinearSVM",
    "few_shot": "jepax.evaluators.few_shot:FewShot",
    "retrieval": "jepax.evaluators.retrieval:Retrieval",
    "exact_match": "jepax.evaluators.exact_match:ExactMatch",
    "eeg_downstream": "jepax.evaluators.eeg_downstream:EEGDownstream",
    "mlp_probe": "jepax.evaluators.mlp_probe:MLPProbe",
    "resnet_probe": "jepax.evaluators.mlp_probe:ResNetProbe",
    "gbdt": "jepax.evaluators.gbdt:GBDT",
    "flow_epe": "jepax.evaluators.flow_epe:FlowEPE",
    "fusion_check": "jepax.evaluators.fusion_check:FusionCheck",
    "downstream": "jepax.evaluators.downstream:Downstream",
    "intent_decoder": "jepax.evaluators.intent_decoder:IntentDecoder",
    "closed_loop": "jepax.evaluators.closed_loop:ClosedLoop",
    "world_model_probe": "jepax.evaluators.world_model_probe:WorldModelProbe",
}


def register(type_name: str, evaluator: str | type) -> None:
    EVALUATORS[type_name] = evaluator


def evaluator_class(type_name: str) -> type:
    if type_name not in EVALUATORS:
        raise ConfigError(f"unknown evaluator type {type_name!r}; available: "
                          f"{', '.join(sorted(EVALUATORS))}")
    entry = EVALUATORS[type_name]
    if isinstance(entry, str):
        module, _, cls = entry.partition(":")
        entry = getattr(importlib.import_module(module), cls)
    return entry


def block(type_name: str, **overrides: Any) -> dict[str, Any]:
    """A config block for an evaluator of `type_name`: its defaults with `overrides`."""
    defaults = evaluator_class(type_name).DEFAULTS
    unknown = set(overrides) - set(defaults) - {"every"}
    if unknown:
        raise ConfigError(f"evaluator {type_name!r} has no setting {sorted(unknown)}; its "
                          f"settings: {', '.join(['every', *defaults])}")
    return {"type": type_name, "every": 0, **defaults, **overrides}


def build(name: str, config_block) -> Any:
    """The evaluator for block `name` of config.evals. The block's keys and value types are
    checked here against the class's DEFAULTS (a value may be None where counts mean "all");
    the class's constructor checks the values' ranges."""
    if "type" not in config_block:
        raise ConfigError(f"evals.{name} has no 'type'; make blocks with "
                          f"jepax.evaluators.block(type, ...) (types: {', '.join(sorted(EVALUATORS))})")
    cls = evaluator_class(config_block["type"])
    expected = {"type", "every", *cls.DEFAULTS}
    unknown, missing = set(config_block) - expected, expected - set(config_block)
    if unknown or missing:
        raise ConfigError(f"evals.{name} ({config_block['type']}): "
                          + (f"unknown settings {sorted(unknown)} " if unknown else "")
                          + (f"missing settings {sorted(missing)} " if missing else "")
                          + f"(its settings: {', '.join(['every', *cls.DEFAULTS])})")
    for key, default in {"every": 0, **cls.DEFAULTS}.items():
        value = config_block[key]
        if not _same_kind(value, default):
            raise ConfigError(f"evals.{name}.{key}={value!r} must be a {type(default).__name__} "
                              f"(like its default {default!r}); set --config.evals.{name}.{key}")
    return cls(name, config_block)


def _same_kind(value, default) -> bool:
    if value is None or default is None:
        return True  # None: "all" for counts, "not set" for options
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def selected(config) -> list[str]:
    """Names of the config.evals blocks to run (config.eval.evaluators; None: all)."""
    chosen = config.eval.evaluators
    names = list(config.evals) if chosen is None else list(chosen)
    missing = [n for n in names if n not in config.evals]
    if missing:
        raise ConfigError(f"config.eval.evaluators names {missing}, which config.evals does not "
                          f"define; defined: {', '.join(config.evals) or 'none'}")
    return names

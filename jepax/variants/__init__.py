"""Variant registry: ``config.variant`` -> the class implementing it (jepax.variants.base).

Entries are ``"module:Class"`` paths imported on first use, so building one variant never
imports another's modality code. Register a variant of your own (e.g. from a notebook or a
test) with :func:`register`.
"""

from __future__ import annotations

import importlib
from typing import Any

from jepax.config import ConfigError

VARIANTS: dict[str, str | type] = {
    "ijepa": "jepax.variants.ijepa:IJEPA",
    "brain_jepa": "jepax.variants.brain_jepa:BrainJEPA",
    "point_jepa": "jepax.variants.point_jepa:PointJEPA",
    "jepa3d": "jepax.variants.jepa3d:JEPA3D",
    "sequence_lm": "jepax.variants.sequence_lm:SequenceLM",
    "s_jepa": "jepax.variants.s_jepa:SJEPA",
    "t_jepa": "jepax.variants.t_jepa:TJEPA",
    "mc_jepa": "jepax.variants.mc_jepa:MCJEPA",
    "text_mlm": "jepax.variants.text_mlm:TextMLM",
    "ti_jepa": "jepax.variants.ti_jepa:TIJEPA",
    "a_jepa": "jepax.variants.a_jepa:AJEPA",
    "ui_jepa": "jepax.variants.ui_jepa:UIJEPA",
    "act_jepa": "jepax.variants.act_jepa:ACTJEPA",
}


def register(name: str, variant: str | type) -> None:
    """Add a variant: its class or its ``"module:Class"`` path."""
    VARIANTS[name] = variant


def variant_class(name: str) -> type:
    if name not in VARIANTS:
        raise ConfigError(f"unknown variant {name!r}; available: {', '.join(sorted(VARIANTS))}")
    entry = VARIANTS[name]
    if isinstance(entry, str):
        module, _, cls = entry.partition(":")
        entry = getattr(importlib.import_module(module), cls)
    return entry


def build(config) -> Any:
    """The configured variant; its constructor validates its part of the config."""
    return variant_class(config.variant)(config)

"""Studies: experiments that are not JEPA pretraining runs (deep linear JEPA vs MAE, copying,
arithmetic length generalization). A config with a ``study`` key is dispatched here by
``jepax.train.run``; each study module has ``run(config, workdir) -> summary dict`` and writes
its tables and plots under ``<workdir>/results/``."""

from __future__ import annotations

import importlib
from pathlib import Path

from jepax.config import ConfigError

STUDIES = {
    "deep_linear": "jepax.studies.deep_linear",
}


def run(config, workdir: Path) -> dict:
    if config.study not in STUDIES:
        raise ConfigError(f"unknown study {config.study!r}; available: {', '.join(STUDIES)}")
    return importlib.import_module(STUDIES[config.study]).run(config, workdir)

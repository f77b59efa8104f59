"""Studies: experiments made of several runs or of no training at all (deep linear JEPA vs MAE,
copying, arithmetic length generalization). A config with a ``study`` key is dispatched here by
``jepax.train.run``; each study module has ``run(config, workdir) -> summary dict`` and writes
its tables and plots under ``<workdir>/results/`` (``jepax.studies.report``).

A study that trains networks trains each of them with ``jepax.train.run(run_config,
workdir / name)``, where ``run_config`` names a variant (e.g. a sequence model with a next-token
loss and no EMA target): every network then gets the mesh, the sharded step, checkpoints with
exact resume, preemption, metrics and evaluators of the one training loop, and rerunning the
study resumes each run where it stopped. A study that only solves equations (parts of
deep_linear) runs its own code.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from jepax.config import ConfigError

STUDIES: dict[str, str | Callable] = {
    "deep_linear": "jepax.studies.deep_linear",
    "copying": "jepax.studies.copying",
    "arithmetic": "jepax.studies.arithmetic",
}


def register(name: str, study: str | Callable) -> None:
    """Add a study: a module path (with ``run``) or a ``run(config, workdir)`` function."""
    STUDIES[name] = study


def run(config, workdir: Path) -> dict:
    if config.study not in STUDIES:
        raise ConfigError(f"unknown study {config.study!r}; available: {', '.join(STUDIES)}")
    entry = STUDIES[config.study]
    study_run = importlib.import_module(entry).run if isinstance(entry, str) else entry
    return study_run(config, workdir)

"""orbax checkpoints of the whole run: train state, grain iterator position and config.

Saves are asynchronous (training continues while arrays are written) and atomic (orbax writes
to a temporary directory and renames it on commit), with a keep-last-N policy. Restores go into
the *current* mesh's shardings, so a checkpoint written on one mesh loads on another.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No usable checkpoint where one was expected."""


class Checkpointer:
    def __init__(self, directory: str | Path, *, keep: int, async_save: bool = True):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=async_save, create=True,
            cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "data", "meta"),
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "data": grain.checkpoint.CheckpointHandler(),
                           "meta": ocp.JsonCheckpointHandler()})

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, data_iterator, meta: dict) -> None:
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(data_iterator),
            meta=ocp.args.JsonSave(meta)), force=True)

    def restore(self, step: int, abstract_state, data_iterator=None) -> tuple[Any, dict]:
        """Restore `step` into the shardings carried by `abstract_state` (and the iterator in
        place). Returns (state, meta)."""
        items = {"state": ocp.args.StandardRestore(abstract_state), "meta": ocp.args.JsonRestore()}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        return restored["state"], restored["meta"]

    def restore_params(self, step: int | None = None) -> dict:
        """The raw saved train-state tree (numpy, on the host), e.g. to take another run's
        encoder weights; shapes are whatever that run saved."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore()))
        return jax.tree.map(np.asarray, restored["state"])

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def run_config_path(workdir: str | Path) -> Path:
    return Path(workdir) / "config.json"


def save_run_config(workdir: str | Path, config_json: str) -> None:
    if jax.process_index() == 0:
        path = run_config_path(workdir)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(config_json)
        tmp.replace(path)


def load_run_config(workdir: str | Path) -> dict | None:
    path = run_config_path(workdir)
    return json.loads(path.read_text()) if path.exists() else None

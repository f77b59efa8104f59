"""orbax checkpoints of the whole run: train state, grain iterator position and config.

Saves are asynchronous (training continues while arrays are written) and atomic (orbax writes
to a temporary directory and renames it on commit), with a keep-last-N policy. Restores go into
the *current* mesh's shardings, so a checkpoint written on one mesh loads on another.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
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

    def _failed(self, what: str, error: Exception) -> CheckpointError:
        good = self.steps()
        return CheckpointError(
            f"{what} in {self.directory} failed ({type(error).__name__}: {error}). If the disk is "
            "full, free space or lower --config.train.keep_checkpoints; the last complete "
            f"checkpoint ({'step ' + str(good[-1]) if good else 'none yet'}) is intact and "
            "rerunning the same command resumes from it")

    def save(self, step: int, state, data_iterator, meta: dict) -> None:
        """Start an (async) save; errors of an earlier async save surface here."""
        try:
            self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=grain.checkpoint.CheckpointSave(data_iterator),
                meta=ocp.args.JsonSave(meta)), force=True)
        except Exception as e:  # orbax wraps I/O errors (e.g. ENOSPC) in several types
            raise self._failed(f"saving the checkpoint of step {step}", e) from e

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

    def restore_latest(self, abstract_state, data_iterator=None):
        """Restore the newest checkpoint that loads completely; a corrupt or incomplete one is
        moved aside (to ``<workdir>/corrupt_checkpoints/``) with a clear log line and the
        previous one is tried. Returns (state, meta), or (None, None) if there are none."""
        for step in reversed(self.steps()):
            try:
                return self.restore(step, abstract_state, data_iterator)
            except Exception as e:  # noqa: BLE001 - any failure means "not loadable"
                log.error("checkpoint at step %d in %s is corrupt or incomplete (%s: %s); moving "
                          "it aside and trying the previous one", step, self.directory,
                          type(e).__name__, str(e)[:300])
                self._quarantine(step)
        if self.steps():
            raise CheckpointError(f"no checkpoint in {self.directory} could be restored")
        return None, None

    def _quarantine(self, step: int) -> None:
        if jax.process_index() == 0:
            aside = self.directory.parent / "corrupt_checkpoints" / f"{step}-{int(time.time())}"
            aside.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(self.directory / str(step)), aside)
        multihost_sync("jepax_quarantine")
        self.manager.reload()

    def wait(self) -> None:
        try:
            self.manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001 - surface async write failures clearly
            raise self._failed("writing a checkpoint", e) from e

    def close(self) -> None:
        self.manager.close()


def multihost_sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


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

"""orbax checkpoints of the whole run: train state, data-stream position and config.

Saves are asynchronous (training continues while arrays are written) and atomic (orbax writes
to a temporary directory and renames it on commit), with a keep-last-N policy. Restores go into
the *current* mesh's shardings, so a checkpoint written on one mesh loads on another.

The data stream's position is a number in the checkpoint's metadata (batches drawn so far), not
grain's iterator state, so a run resumes exactly also after changing how the data is read
(threads, read-ahead, worker processes, process count).

A checkpoint is moved aside (to ``<workdir>/corrupt_checkpoints/``) only when it is proven
damaged: an incomplete commit, metadata that cannot be read, or array files that fail to read
although their metadata matches this run. One that does not match this run (another model, a
changed dtype) or fails for any other reason (memory, permissions) is an error that names the
cause and leaves every file where it is.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)

QUARANTINE = "corrupt_checkpoints"
# tensorstore's status codes for files that are cut short, fail their checksums or are gone.
_DAMAGE_CODES = ("DATA_LOSS", "OUT_OF_RANGE", "NOT_FOUND", "Error decoding")


class CheckpointError(RuntimeError):
    """No usable checkpoint where one was expected, or one that does not fit this run."""


def proves_damage(error: BaseException) -> bool:
    """Whether a failure to read a checkpoint (whose metadata matched this run, or which is
    the metadata) shows damaged files: truncated, failing checksums, missing, unparsable. Out
    of memory, permissions, network trouble and anything unknown do not."""
    if isinstance(error, (PermissionError, MemoryError)):
        return False
    if isinstance(error, (json.JSONDecodeError, FileNotFoundError, EOFError)):
        return True
    return any(code in str(error) for code in _DAMAGE_CODES)


def _key(path) -> str:
    """'params/encoder/...' for a tree path of dict keys, attributes and list indices."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


class Checkpointer:
    def __init__(self, directory: str | Path, *, keep: int = 1, async_save: bool = True,
                 read_only: bool = False):
        """`read_only`: open an existing checkpoint directory without creating anything."""
        self.directory = Path(directory).absolute()
        if read_only and not self.directory.is_dir():
            raise CheckpointError(f"{self.directory} does not exist: no checkpoints there")
        if not read_only and keep < 1:  # orbax would delete every checkpoint, old ones too
            raise CheckpointError(f"keep={keep}: at least one checkpoint must be kept")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else keep, save_interval_steps=0 if read_only else 1,
            enable_async_checkpointing=async_save, create=not read_only,
            cleanup_tmp_directories=not read_only, read_only=read_only)
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "meta"),
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "meta": ocp.JsonCheckpointHandler()})

    @property
    def quarantine_dir(self) -> Path:
        return self.directory.parent / QUARANTINE

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

    def save(self, step: int, state, meta: dict) -> None:
        """Start an (async) save; errors of an earlier async save surface here."""
        try:
            self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
        except Exception as e:  # orbax wraps I/O errors (e.g. ENOSPC) in several types
            raise self._failed(f"saving the checkpoint of step {step}", e) from e

    def restore(self, step: int, abstract_state) -> tuple[Any, dict]:
        """Restore `step` into the shardings carried by `abstract_state`. Returns (state, meta)."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
        return restored["state"], restored["meta"]

    def restore_params(self, step: int | None = None) -> dict:
        """The raw saved train-state tree (numpy, on the host), e.g. to take another run's
        encoder weights; shapes are whatever that run saved."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        try:
            # onto one local device: without a target, orbax insists on the saving run's
            # topology, so a run saved on 8 devices could not be read by a 1-device process
            device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            on_device = lambda m: (jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device)
                                   if isinstance(m, ocp.metadata.ArrayMetadata) else m)
            saved = self.manager.item_metadata(step)["state"]
            restored = self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(jax.tree.map(on_device, saved.tree))))
        except Exception as e:  # noqa: BLE001 - reported with the file it came from
            raise CheckpointError(f"the checkpoint of step {step} in {self.directory} cannot be "
                                  f"read ({type(e).__name__}: {str(e)[:300]})") from e
        return jax.tree.map(np.asarray, restored["state"])

    # -- what a checkpoint holds -------------------------------------------------------------
    def incomplete(self, step: int) -> str | None:
        """Why `step` is not a completely committed checkpoint (None: as far as its files
        tell). orbax commits by renaming a finished temporary directory, so this only happens
        where a step directory was copied or written without that rename."""
        path = self.directory / str(step)
        try:
            committed = json.loads((path / "_CHECKPOINT_METADATA").read_text())
        except (OSError, ValueError):
            committed = {}  # unreadable: orbax does not need it; the items decide
        if committed and not committed.get("commit_timestamp_nsecs"):
            return "its commit record has no commit time: the save never finished"
        missing = [item for item in ("state", "meta") if not (path / item).is_dir()]
        if missing:
            return f"it has no {' or '.join(missing)} item: the save never finished"
        return None

    def mismatch(self, step: int, abstract_state) -> list[str]:
        """How the saved train state differs from `abstract_state` (paths, shapes, dtypes);
        empty when it fits. Reads only metadata; raises if that cannot be read."""
        saved = self.manager.item_metadata(step)["state"]
        if saved is None:
            raise FileNotFoundError("the state item's metadata (_METADATA) is missing")
        theirs = {_key(p): (tuple(m.shape), np.dtype(m.dtype).name)
                  for p, m in jax.tree_util.tree_flatten_with_path(saved.tree)[0]}
        ours = {_key(p): (tuple(a.shape), np.dtype(a.dtype).name)
                for p, a in jax.tree_util.tree_flatten_with_path(abstract_state)[0]}
        describe = lambda d, k: f"{d[k][0]} {d[k][1]}" if k in d else "absent"
        return [f"{k}: {describe(theirs, k)} saved, {describe(ours, k)} in this run"
                for k in sorted(ours.keys() | theirs.keys(), key=lambda k: (k.split("/")[0] != "params", k))
                if ours.get(k) != theirs.get(k)]

    def restore_latest(self, abstract_state) -> tuple[Any, dict] | tuple[None, None]:
        """Restore the newest checkpoint. A proven-damaged one is moved aside (with a clear log
        line) and the previous one is tried; anything else that keeps the newest one from
        loading is a CheckpointError, with every file left in place. Returns (state, meta), or
        (None, None) when there is no checkpoint at all."""
        if not self.steps() and self._quarantined():
            raise CheckpointError(
                f"no usable checkpoint in {self.directory}: every one was damaged and was moved "
                f"to {self.quarantine_dir}. To start this run over from step 0, delete that "
                "directory; or pass a new --workdir")
        moved = []
        for step in reversed(self.steps()):
            damage = self.incomplete(step)
            if damage is None:
                restored, damage = self._restore_or_damage(step, abstract_state)
                if restored is not None:
                    return restored
            log.error("checkpoint at step %d in %s is damaged: %s; moving it to %s and trying the "
                      "previous one", step, self.directory, damage, self.quarantine_dir)
            self._quarantine(step)
            moved.append(step)
        if moved:
            raise CheckpointError(
                f"every checkpoint in {self.directory} (steps {sorted(moved)}) is damaged; they "
                f"were moved to {self.quarantine_dir} (see the log for why). To start this run "
                "over from step 0, delete that directory; or pass a new --workdir")
        return None, None

    def _restore_or_damage(self, step: int, abstract_state):
        """((state, meta), None), or (None, what proves the checkpoint damaged); CheckpointError
        (nothing moved) when it does not fit this run or fails for another reason."""
        untouched = ("nothing was moved or deleted. If its files are damaged, move that step's "
                     "directory aside and rerun to resume from the previous checkpoint")
        try:
            problems = self.mismatch(step, abstract_state)
        except Exception as e:  # noqa: BLE001 - classified
            if proves_damage(e):
                return None, f"its metadata cannot be read ({type(e).__name__}: {str(e)[:300]})"
            raise CheckpointError(f"reading the metadata of the checkpoint of step {step} in "
                                  f"{self.directory} failed ({type(e).__name__}: "
                                  f"{str(e)[:300]}); {untouched}") from e
        if problems:
            raise CheckpointError(
                f"the checkpoint of step {step} in {self.directory} does not fit this run's model "
                f"({len(problems)} differences, e.g. {'; '.join(problems[:3])}): the config "
                "changed what is trained. Resume with the settings it was written with "
                "(<workdir>/config.json) or pass a new --workdir; nothing was moved or deleted")
        try:
            return self.restore(step, abstract_state), None
        except Exception as e:  # noqa: BLE001 - classified
            if proves_damage(e):
                return None, f"its files fail to read ({type(e).__name__}: {str(e)[:300]})"
            raise CheckpointError(f"restoring the checkpoint of step {step} in {self.directory} "
                                  f"failed ({type(e).__name__}: {str(e)[:300]}); {untouched}") from e

    def _quarantined(self) -> bool:
        return self.quarantine_dir.is_dir() and any(self.quarantine_dir.iterdir())

    def _quarantine(self, step: int) -> None:
        if jax.process_index() == 0:
            aside = self.quarantine_dir / f"{step}-{int(time.time())}"
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
    """The config a workdir was trained with (None for a new workdir)."""
    path = run_config_path(workdir)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} (the config this workdir was trained with) cannot be read ({e}). If you are "
            "sure the config you pass is the one it was trained with, delete the file (it is "
            "rewritten); otherwise pass a new --workdir") from None

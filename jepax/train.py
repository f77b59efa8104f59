"""The training loop: ``run(config, workdir)``. Importable (Colab) without absl flags.

setup mesh -> sharded state (restored from the newest loadable checkpoint, if any) -> grain
stream -> AOT-compiled train step -> loop with one-step-late metrics, periodic async
checkpoints, evaluations, preemption and NaN handling -> final checkpoint and evaluation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import jax

from data_pipelines.errors import DataError
from data_pipelines.pipeline import prefetch_to_device, train_dataset
from jepax import checkpoint, config as config_lib, convert, cpu_devices, distributed, experiment
from jepax import flops, preemption, sharding
from jepax.evaluators.runner import EvalRunner
from jepax.layer_stack import relayout
from jepax.lock import exclusive
from jepax.metrics import MetricsWriter
from jepax.preemption import Preempted, PreemptionGuard
from jepax.variants.base import path_get, path_set

log = logging.getLogger("jepax")

# Keys that may differ when resuming a workdir: they don't change what is being trained.
RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
                     "train.async_checkpoints", "train.nan_policy", "train.max_rollbacks",
                     "train.run_steps", "train.allow_config_change", "logging.", "eval.", "evals.",
                     "distributed.", "mesh.", "data.num_threads", "data.prefetch",
                     "data.num_workers", "data.path", "data.data_dir")


class NonFiniteLossError(FloatingPointError):
    """The loss or gradient norm became NaN/Inf."""


class _Rollback(Exception):
    def __init__(self, step: int, position: int):
        super().__init__(step, position)
        self.step, self.position = step, position


def _setup_logging() -> None:
    root = logging.getLogger("jepax")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(logging.INFO if jax.process_index() == 0 else logging.WARNING)
    absl_logger = logging.getLogger("absl")  # orbax logs every save step at INFO through absl
    if absl_logger.level == logging.NOTSET:
        absl_logger.setLevel(logging.WARNING)


def default_workdir(config) -> Path:
    return Path("runs") / (config.get("name") or config.get("variant") or config.get("study"))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_workdir(workdir: str | Path) -> Path:
    """The absolute workdir, refused with the fix when it cannot be one (nothing is created)."""
    path = Path(workdir).absolute()
    if path.exists() and not path.is_dir():
        raise config_lib.ConfigError(f"--workdir {path} is a file, not a directory: pass a "
                                     "directory (it is created if missing)")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise config_lib.ConfigError(f"--workdir {path}: cannot write in {existing}; pass a "
                                     "directory you can write to")
    return path


def check_workdir_config(workdir: Path, config) -> None:
    """Refuse to resume a workdir written by a config that trains something else."""
    saved = checkpoint.load_run_config(workdir)
    if saved is None:
        return
    old, new = _flatten(saved), _flatten(json.loads(config.to_json()))
    changed = sorted(k for k in old.keys() | new.keys()
                     if old.get(k) != new.get(k) and not k.startswith(RESUMABLE_CHANGES))
    if changed and not config.train.allow_config_change:
        diff = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:6])
        raise config_lib.ConfigError(
            f"workdir {workdir} was written by a different config ({diff}). Use a new --workdir, "
            "or pass --config.train.allow_config_change=True to resume it anyway")


def _init_from_checkpoint(path: str) -> checkpoint.Checkpointer:
    """The checkpoints of another run named by train.init_from, opened read-only."""
    try:
        ckpt = checkpoint.Checkpointer(Path(path) / "checkpoints", read_only=True)
    except checkpoint.CheckpointError:
        ckpt = None
    if ckpt is None or ckpt.latest_step() is None:
        raise config_lib.ConfigError(
            f"train.init_from={path}: no checkpoint there (expected {path}/checkpoints/<step>); "
            "pass the --workdir of a run that saved one")
    return ckpt


def _saved_parts(path: str, variant, shapes_only: bool = False) -> dict:
    """{'params': ..., 'target': ...} saved by the source train.init_from names: another run's
    workdir (its latest checkpoint; with `shapes_only`, just its metadata) or a published
    PyTorch checkpoint file, converted (jepax.convert)."""
    if convert.is_checkpoint_file(path):
        return convert.convert_file(path, variant)
    if Path(path).is_file():
        raise config_lib.ConfigError(
            f"train.init_from={path} is a file jepax cannot read; pass a run's --workdir or a "
            f"PyTorch checkpoint ({', '.join(convert.TORCH_SUFFIXES)})")
    ckpt = _init_from_checkpoint(path)
    try:
        if shapes_only:
            return ckpt.manager.item_metadata(ckpt.latest_step())["state"]
        return ckpt.restore_params()
    finally:
        ckpt.close()


def _check_init_from(path: str, abstract, variant) -> None:
    """Before anything is trained: the parts to transfer exist in train.init_from with this
    run's shapes."""
    saved = _saved_parts(path, variant, shapes_only=True)
    ours = {"params": abstract.params, "target": abstract.target}
    problems = []
    for part in variant.transfer_paths:
        mine = path_get(ours, part)
        try:
            theirs = _by_path(relayout(path_get(saved, part), mine))  # either block layout
        except (KeyError, TypeError):
            problems.append(f"{part} is missing there")
            continue
        mine = _by_path(mine)
        shape = lambda arrays, k: tuple(arrays[k].shape) if k in arrays else "missing"
        problems += [f"{part}/{k}: {shape(theirs, k)} there, {shape(mine, k)} here"
                     for k in sorted(mine.keys() | theirs.keys())
                     if shape(mine, k) != shape(theirs, k)]
    if problems:
        raise config_lib.ConfigError(
            f"train.init_from={path}: its checkpoint does not match this model "
            f"({'; '.join(problems[:3])}); use the same model.* settings")


def _load_init_from(path: str, state, variant):
    """`state` with the parts the variant transfers (e.g. params/encoder and target) taken from
    train.init_from (checked by _check_init_from)."""
    saved = _saved_parts(path, variant)
    ours = {"params": state.params, "target": state.target}
    for part in variant.transfer_paths:
        mine = path_get(ours, part)
        theirs = _by_path(relayout(path_get(saved, part), mine))  # either block layout
        flat, treedef = jax.tree_util.tree_flatten_with_path(mine)
        loaded = treedef.unflatten([
            jax.device_put(theirs[sharding.path_key(p)].astype(a.dtype), a.sharding)
            for p, a in flat])
        ours = path_set(ours, part, loaded)
    return state.replace(params=ours["params"], target=ours["target"])


def _by_path(tree) -> dict:
    """{'transformer/blocks/0/...': array}: checkpoints store list indices as string keys, so
    trees are matched by path name, not by structure."""
    return {sharding.path_key(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


_depth = 0  # nesting of run() (a study's runs): a stop request is forgotten at the outermost


def run(config, workdir: str | Path | None = None) -> dict[str, Any]:
    """Train (or resume) the configured run in `workdir`; returns a summary.

    Everything that can be checked without training is checked before anything is written:
    the config, the workdir, the model and mesh, the training and evaluation data, the
    evaluators' settings against that data and train.init_from. Then the workdir is locked
    (one run per workdir) and training starts or resumes."""
    global _depth
    guard = PreemptionGuard(multiprocess=config.get("distributed", {}).get("mode", "off") != "off")
    _depth += 1
    try:
        return _run(config, workdir, guard)
    finally:
        guard.close()
        _depth -= 1
        if _depth == 0:
            preemption.clear()


def _run(config, workdir, guard: PreemptionGuard) -> dict[str, Any]:
    cpu_devices.configure(config)
    distributed.maybe_initialize(config)
    _setup_logging()
    workdir = check_workdir(workdir or default_workdir(config))
    if "study" in config:
        from jepax import studies

        with exclusive(workdir):
            return studies.run(config, workdir)
    config_lib.validate(config)
    setup = experiment.build(config)
    loop = _Loop(config, workdir, setup, guard)  # checks the data and evaluators; writes nothing
    if config.train.init_from:
        _check_init_from(config.train.init_from, setup.abstract, setup.variant)
    if guard.requested:  # arrived while the above was checked: nothing is written yet
        log.warning("stopped by %s before the run started: nothing was written", guard.requested)
        return {"workdir": str(workdir), "eval": {}, "preempted": True,
                "stopped_by": guard.requested, "step": None}
    log.info("run %s in %s: %s on mesh %s (%d processes)", config.name, workdir, config.variant,
             dict(setup.mesh.shape), jax.process_count())
    with exclusive(workdir), setup.active():
        check_workdir_config(workdir, config)
        try:
            return loop.run()
        finally:
            loop.close()


@dataclasses.dataclass(frozen=True)
class Hook:
    """Work between steps (checkpoints, evaluations): `fn(step)` after each step where
    `due(step)`; the step's loss is checked first, and its time is not counted as step time."""
    fn: Callable[[int], None]
    due: Callable[[int], bool]


class _Loop:
    """One invocation of training: owns the state, the data stream and the checkpointer."""

    def __init__(self, config, workdir: Path, setup: experiment.Setup, guard: PreemptionGuard):
        """Builds what can fail on bad input (the training source, the evaluators and their
        data) without touching the workdir."""
        self.config, self.workdir, self.setup, self.guard = config, workdir, setup, guard
        self.variant, self.mesh = setup.variant, setup.mesh
        self.total = int(config.train.steps)
        self.source = self.variant.train_source()
        if len(self.source) == 0:
            raise DataError(f"the training data of data.dataset={config.data.dataset!r} is empty")
        self.evaluate = self._evaluation()
        self.evaluate.check_data()
        self.data = None         # the stream, opened at the restored position
        self.ckpt = None
        self.hooks: list[Hook] = []
        self.state = None
        self.step = 0
        self.writer = None
        self.consumed = 0        # batches drawn from the stream (trained on or skipped)
        self.skipped: set[int] = set()  # stream positions of batches skipped after a NaN
        self.rollbacks = 0
        self.pending = None
        self._peeked = None
        self.last_loss = None
        self.collapse_warned = False
        self.last_saved = None

    def add_hook(self, fn: Callable[[int], None], every: int = 0,
                 when: Callable[[int], bool] | None = None) -> None:
        """Run `fn(step)` after every `every`-th step, or after steps where `when(step)`."""
        self.hooks.append(Hook(fn, when or (lambda step: bool(every) and step % every == 0)))

    # -- state -------------------------------------------------------------------------------
    def _open_stream(self, position: int) -> None:
        """The training stream from batch `position` on (the same batches in any case: they
        are a function of the seed and their position)."""
        if self.data is not None:
            self.data.close()
        c = self.config
        self.data = iter(prefetch_to_device(train_dataset(
            self.source, seed=c.seed, global_batch=c.train.batch_size,
            example_fn=self.variant.example_fn(), batch_fn=self.variant.batch_fn(),
            num_threads=c.data.num_threads, prefetch=c.data.prefetch,
            num_workers=c.data.num_workers, start=position), self.setup.global_batch))
        self.consumed = position
        self._peeked = None  # a batch drawn from an earlier stream is stale

    def _restore(self) -> bool:
        state, meta = self.ckpt.restore_latest(self.setup.abstract)
        if state is None:
            return False
        self._adopt(state, meta)
        if checkpoint.load_run_config(self.workdir) is None:  # deleted by hand: record it again
            checkpoint.save_run_config(self.workdir, self.config.to_json(indent=2))
        log.info("resuming from checkpoint at step %d in %s", self.step, self.ckpt.directory)
        return True

    def _start_fresh(self, init) -> None:
        self.state = init()
        self.step = 0
        if self.config.train.init_from:
            self.state = _load_init_from(self.config.train.init_from, self.state, self.variant)
            log.info("initialized %s from %s", ", ".join(self.variant.transfer_paths),
                     self.config.train.init_from)
        checkpoint.save_run_config(self.workdir, self.config.to_json(indent=2))
        if self.config.train.nan_policy == "rollback":
            self._save()  # something to roll back to, even before the first periodic save

    def _prepare(self):
        """Restore or initialize the state and compile the train step; returns the step.

        A fresh run compiles its initializer alongside the step. With nan_policy=rollback the
        initial state is saved before the first batch is drawn, so it is created first."""
        if not self._restore():
            self._open_stream(0)
            if self.config.train.nan_policy == "rollback":
                self._start_fresh(self.setup.create_state)
        self.guard.check()
        self._peeked = self._next_batch()  # its shapes define the compiled step
        compiled, init = self.setup.compile(sharding.abstract_like(self._peeked[0]),
                                            with_init=self.state is None)
        self.guard.check()
        if init is not None:
            self._start_fresh(init)
        return compiled

    def _adopt(self, state, meta) -> None:
        self.state = state
        self.step = int(meta["step"])
        self.skipped = set(meta.get("skipped_batches", []))
        self.last_saved = self.step
        self._open_stream(int(meta.get("batches_consumed", self.step)))

    def _save(self) -> None:
        self.ckpt.save(self.step, self.state, {
            "step": self.step, "batches_consumed": self.consumed,
            "skipped_batches": sorted(self.skipped)})
        self.last_saved = self.step

    def _next_batch(self):
        """The next global batch (on the devices), dropping stream positions skipped after NaNs."""
        if self._peeked is not None:
            peeked, self._peeked = self._peeked, None
            return peeked
        while True:
            position = self.consumed
            batch = next(self.data)
            self.consumed += 1
            if position not in self.skipped:
                return batch, position

    # -- metrics -----------------------------------------------------------------------------
    def _finish(self) -> None:
        """Fetch the pending step's metrics (blocks until that step is done) and log them."""
        if self.pending is None:
            return
        done_step, metrics, data_wait, position = self.pending
        self.pending = None
        host = jax.device_get(metrics)
        now = time.perf_counter()
        step_s, self.last_done = now - self.last_done, now
        if not bool(host.pop("finite")):
            if self.config.train.nan_policy == "rollback":
                raise _Rollback(done_step, position)
            raise NonFiniteLossError(
                f"loss {float(host['loss'])} / grad norm {float(host['grad_norm'])} is not finite "
                f"at step {done_step} (lr={float(host['lr']):.3g}). The run stopped; the last good "
                f"checkpoint is step {self.last_saved} in {self.ckpt.directory}. Lower "
                "--config.optim.lr, enable --config.optim.grad_clip or "
                "--config.train.nan_policy=rollback, or check the data")
        self.last_loss = float(host["loss"])
        self._watch_collapse(done_step, host)
        self.writer.write(done_step, {
            **host, "step_s": step_s, "data_wait_s": data_wait,
            "data_wait_frac": data_wait / step_s,
            "examples_per_s": self.config.train.batch_size / step_s,
            "tflops_per_s": self.flops_per_step / step_s / 1e12,
            "mfu": flops.mfu(self.flops_per_step, step_s, self.peak)})

    def _watch_collapse(self, step: int, host: dict) -> None:
        """Warn once each time the targets' spread across inputs (the variants' `target_std`
        monitor, jepax/variants/monitors.py) falls below logging.collapse_warning."""
        threshold = self.config.logging.collapse_warning
        if "target_std" not in host or not threshold:
            return
        low = float(host["target_std"]) < threshold
        if low and not self.collapse_warned:
            log.warning(
                "step %d: target_std=%.3g is below logging.collapse_warning=%g: the target "
                "features barely differ between inputs, the start of representation collapse. "
                "Try a lower --config.optim.lr, a slower EMA (--config.optim.ema) or more "
                "target tokens; docs/monitors.md explains the monitors", step,
                float(host["target_std"]), threshold)
            self.writer.write_event("collapse_warning", step=step,
                                    target_std=float(host["target_std"]))
        self.collapse_warned = low

    def _rollback(self, bad: _Rollback) -> None:
        self.rollbacks += 1
        if self.rollbacks > self.config.train.max_rollbacks:
            raise NonFiniteLossError(
                f"loss not finite at step {bad.step} after {self.rollbacks - 1} rollbacks "
                f"(train.max_rollbacks); the last good checkpoint is step {self.last_saved} in "
                f"{self.ckpt.directory}. Lower --config.optim.lr or check the data")
        self.ckpt.wait()
        known = self.skipped  # includes batches found bad after that checkpoint was written
        self._adopt(*self.ckpt.restore_latest(self.setup.abstract))
        self.skipped |= known | {bad.position}
        self.writer.rewind(self.step)
        self.writer.write_event("rollback", bad_step=bad.step, skipped_batch=bad.position,
                                restored_step=self.step)
        log.warning("loss not finite at step %d: rolled back to step %d and skipping batch %d "
                    "(rollback %d of at most %d)", bad.step, self.step, bad.position,
                    self.rollbacks, self.config.train.max_rollbacks)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        summary = {"workdir": str(self.workdir), "eval": {}, "preempted": False,
                   "stopped_by": None}
        self.ckpt = checkpoint.Checkpointer(self.workdir / "checkpoints",
                                            keep=self.config.train.keep_checkpoints,
                                            async_save=self.config.train.async_checkpoints)
        try:
            self._train(summary)
        except Preempted:
            self._finish()
            if self.state is not None and self.step > 0 and self.last_saved != self.step:
                self._save()
            self.ckpt.wait()
            if self.state is None or self.step == 0:
                log.warning("stopped by %s before the first step: nothing to save; rerun the "
                            "same command to start", self.guard.requested)
            else:
                log.warning("preempted at step %d by %s: checkpoint saved, exiting; rerun the "
                            "same command to resume", self.step, self.guard.requested)
            summary.update(preempted=True, stopped_by=self.guard.requested)
        summary.update(step=self.step, loss=self.last_loss, rollbacks=self.rollbacks)
        return summary

    def _train(self, summary: dict) -> None:
        t0 = time.perf_counter()
        compiled = self._prepare()
        summary["compile_s"] = compile_s = time.perf_counter() - t0
        log.info("parameter sharding:\n%s", sharding.sharding_report(self.state.params))
        peak_bytes = experiment.peak_bytes(compiled)
        log.info("state ready and train step compiled in %.1fs (peak device memory %s MiB per "
                 "device)", compile_s, None if peak_bytes is None else round(peak_bytes / 2 ** 20, 1))
        self.writer = MetricsWriter(self.workdir, total_steps=self.total, start_step=self.step,
                                    tensorboard=self.config.logging.tensorboard,
                                    progress=self.config.logging.progress,
                                    log_every=self.config.train.log_every)
        self.flops_per_step = self.variant.flops_per_step(self.config.train.batch_size)
        self.writer.write_event("compile", seconds=compile_s, peak_bytes_per_device=peak_bytes,
                                flops_per_step=self.flops_per_step)
        self.peak = flops.peak_flops_per_device(self.config.logging.peak_flops_per_device)
        train_cfg = self.config.train
        stop = min(self.total, self.step + train_cfg.run_steps) if train_cfg.run_steps else self.total
        evaluate, every = self.evaluate, train_cfg.checkpoint_every
        self.add_hook(lambda step: self._save(),
                      when=lambda step: bool(every) and step % every == 0 or step == stop)
        if evaluate:
            self.add_hook(lambda step: evaluate(step, final=False),
                          when=lambda step: evaluate.due(step) and step < self.total)
        if self.step >= self.total:
            log.info("already at step %d of %d: nothing to train", self.step, self.total)
        self.last_done = time.perf_counter()
        while self.step < stop:
            if self.guard.stop_at(self.step):
                raise Preempted()
            try:
                self._train_step(compiled)
                self._run_hooks()
            except _Rollback as bad:
                self._rollback(bad)
        self._finish()
        if self.step == self.total and evaluate:
            summary["eval"] = evaluate(self.step)

    def _evaluation(self) -> EvalRunner:
        """The evaluation runner of this run's state (falsy when nothing is evaluated)."""
        setup, variant = self.setup, self.variant

        def random_params():
            fresh = setup.create_state(self.config.seed + 1)
            return variant.eval_params(fresh.params, fresh.target)

        return EvalRunner(
            self.config, variant, setup.eval_param_shardings(), self.mesh, self.workdir,
            current_params=lambda: variant.eval_params(self.state.params, self.state.target),
            random_params=random_params, poll=self.guard.check)

    def _train_step(self, compiled) -> None:
        """Dispatch one step, then log the previous one."""
        t0 = time.perf_counter()
        batch, position = self._next_batch()
        data_wait = time.perf_counter() - t0
        self.state, metrics = compiled(self.state, batch)
        self._finish()
        self.step += 1
        self.pending = (self.step, metrics, data_wait, position)

    def _run_hooks(self) -> None:
        """The hooks due after this step, once its loss is known to be finite (so no checkpoint
        ever holds a non-finite state)."""
        due = [hook for hook in self.hooks if hook.due(self.step)]
        if due:
            self._finish()
            for hook in due:
                hook.fn(self.step)
            self.last_done = time.perf_counter()  # hook time is not step time

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        try:
            if self.ckpt is not None:
                self.ckpt.wait()
        finally:
            if self.ckpt is not None:
                self.ckpt.close()
            if self.data is not None:
                self.data.close()  # stops the read-ahead threads (and worker processes)

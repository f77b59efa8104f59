"""The training loop: ``run(config, workdir)``. Importable (Colab) without absl flags.

setup mesh -> sharded state (restored from the newest loadable checkpoint, if any) -> grain
stream -> AOT-compiled train step -> loop with one-step-late metrics, periodic async
checkpoints, evaluations, preemption and NaN handling -> final checkpoint and evaluation.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import jax

from data_pipelines.images import image_source
from data_pipelines.pipeline import prefetch_to_device, train_dataset
from jepax import checkpoint, config as config_lib, cpu_devices, distributed, flops, optim
from jepax import sharding, state as state_lib, step as step_lib, variants
from jepax.evaluators.runner import FeatureEvaluator
from jepax.metrics import MetricsWriter
from jepax.preemption import Preempted, PreemptionGuard

log = logging.getLogger("jepax")

# Keys that may differ when resuming a workdir: they don't change what is being trained.
RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.eval_every",
                     "train.checkpoint_every", "train.keep_checkpoints",
                     "train.async_checkpoints", "train.nan_policy", "train.max_rollbacks",
                     "train.run_steps", "train.allow_config_change", "logging.", "eval.",
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


def _validate_batching(config, mesh) -> None:
    shards = mesh.shape["data"] * mesh.shape["fsdp"]
    for name, size in (("train.batch_size", config.train.batch_size),
                       ("eval.batch_size", config.eval.batch_size)):
        if size % shards or size % jax.process_count():
            raise config_lib.ConfigError(
                f"{name}={size} is not divisible by the {shards} batch shards (mesh data x fsdp = "
                f"{mesh.shape['data']} x {mesh.shape['fsdp']}) and {jax.process_count()} processes;"
                f" use a multiple of {math.lcm(shards, jax.process_count())}")


def _load_init_from(path: str, params, target):
    """Encoder (and its EMA target) from another run's latest checkpoint."""
    ckpt = checkpoint.Checkpointer(Path(path) / "checkpoints", keep=1, async_save=False)
    saved = ckpt.restore_params()
    ckpt.close()
    ours = {"encoder": params["encoder"], "target": target}
    loaded = {sharding.path_key(p): v for p, v in jax.tree_util.tree_flatten_with_path(
        {"encoder": saved["params"]["encoder"], "target": saved["target"]})[0]}
    flat, treedef = jax.tree_util.tree_flatten_with_path(ours)
    key = lambda p: sharding.path_key(p)
    problems = [f"{key(p)}: {getattr(loaded.get(key(p)), 'shape', 'missing')} vs {a.shape}"
                for p, a in flat if getattr(loaded.get(key(p)), "shape", None) != a.shape]
    if problems or len(loaded) != len(flat):
        raise config_lib.ConfigError(
            f"train.init_from={path}: its encoder does not match this model "
            f"({'; '.join(problems[:3]) or 'different parameter tree'}); use the same model.*")
    new = [jax.device_put(loaded[key(p)].astype(a.dtype), a.sharding) for p, a in flat]
    new = jax.tree_util.tree_unflatten(treedef, new)
    return {**params, "encoder": new["encoder"]}, new["target"]


def run(config, workdir: str | Path | None = None) -> dict[str, Any]:
    """Train (or resume) the configured run in `workdir`; returns a summary."""
    cpu_devices.configure(config)
    distributed.maybe_initialize(config)
    _setup_logging()
    workdir = Path(workdir or default_workdir(config)).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    if "study" in config:
        from jepax import studies

        return studies.run(config, workdir)
    config_lib.validate(config)
    check_workdir_config(workdir, config)

    mesh = sharding.make_mesh(config.mesh)
    rules = sharding.rules_from_config(config.mesh)
    _validate_batching(config, mesh)
    variant = variants.build(config)
    log.info("run %s in %s: %s on mesh %s (%d processes)", config.name, workdir, config.variant,
             dict(mesh.shape), jax.process_count())
    with jax.set_mesh(mesh), sharding.use_rules(rules):
        loop = _Loop(config, workdir, mesh, rules, variant)
        try:
            return loop.run()
        finally:
            loop.close()


class _Loop:
    """One invocation of training: owns the state, the data stream and the checkpointer."""

    def __init__(self, config, workdir: Path, mesh, rules, variant):
        self.config, self.workdir, self.mesh, self.variant = config, workdir, mesh, variant
        self.total = int(config.train.steps)
        self.sched = optim.schedules(config.optim, self.total)
        self.tx = optim.optimizer(config.optim, self.sched)
        self.shardings = state_lib.state_shardings(variant, self.tx, mesh, rules, config.seed)
        self.abstract = state_lib.abstract_state(variant, self.tx, self.shardings, config.seed)
        self.data = iter(prefetch_to_device(train_dataset(
            image_source(config.data, "train"), seed=config.seed,
            global_batch=config.train.batch_size, example_fn=variant.example_fn(),
            batch_fn=variant.batch_fn(), num_threads=config.data.num_threads,
            prefetch=config.data.prefetch, num_workers=config.data.num_workers),
            functools.partial(sharding.global_batch, mesh=mesh)))
        self.ckpt = checkpoint.Checkpointer(workdir / "checkpoints",
                                            keep=config.train.keep_checkpoints,
                                            async_save=config.train.async_checkpoints)
        self.guard = PreemptionGuard()
        self.state = None
        self.writer = None
        self.consumed = 0        # batches drawn from the stream (trained on or skipped)
        self.skipped: set[int] = set()  # stream positions of batches skipped after a NaN
        self.rollbacks = 0
        self.pending = None
        self._peeked = None
        self.last_loss = None
        self.last_saved = None

    # -- state -------------------------------------------------------------------------------
    def _restore(self) -> bool:
        state, meta = self.ckpt.restore_latest(self.abstract, self.data)
        if state is None:
            return False
        self._adopt(state, meta)
        log.info("resuming from checkpoint at step %d in %s", self.step, self.ckpt.directory)
        return True

    def _lower_init(self):
        return (state_lib.lower_create(self.variant, self.tx, self.shardings, self.config.seed),
                state_lib.CHEAP_COMPILE)

    def _start_fresh(self, init) -> None:
        self.state = init()
        self.step = 0
        if self.config.train.init_from:
            params, target = _load_init_from(self.config.train.init_from, self.state.params,
                                             self.state.target)
            self.state = self.state.replace(params=params, target=target)
            log.info("initialized the encoder from %s", self.config.train.init_from)
        checkpoint.save_run_config(self.workdir, self.config.to_json(indent=2))
        if self.config.train.nan_policy == "rollback":
            self._save()  # something to roll back to, even before the first periodic save

    def _prepare(self):
        """Restore or initialize the state and compile the train step; returns the step.

        A fresh run compiles its initializer alongside the step. With nan_policy=rollback the
        initial state is saved before the first batch is drawn, so it is created first."""
        if not self._restore() and self.config.train.nan_policy == "rollback":
            init, = step_lib.compile_concurrently(self._lower_init())
            self._start_fresh(init)
        self._peeked = self._next_batch()  # its shapes define the compiled step
        step_job = (step_lib.lower_train_step(
            step_lib.make_train_step(self.variant, self.tx, self.sched), self.abstract,
            sharding.abstract_like(self._peeked[0]), sharding.replicated(self.mesh)),
            step_lib.step_compile_options())
        if self.state is not None:
            compiled, = step_lib.compile_concurrently(step_job)
        else:
            compiled, init = step_lib.compile_concurrently(step_job, self._lower_init())
            self._start_fresh(init)
        return compiled

    def _adopt(self, state, meta) -> None:
        self.state = state
        self.step = int(meta["step"])
        self.consumed = int(meta.get("batches_consumed", self.step))
        self.skipped = set(meta.get("skipped_batches", []))
        self.last_saved = self.step
        self._peeked = None  # the iterator was restored: a batch drawn earlier is stale

    def _save(self) -> None:
        self.ckpt.save(self.step, self.state, self.data, {
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
        self.writer.write(done_step, {
            **host, "step_s": step_s, "data_wait_s": data_wait,
            "data_wait_frac": data_wait / step_s,
            "examples_per_s": self.config.train.batch_size / step_s,
            "tflops_per_s": self.flops_per_step / step_s / 1e12,
            "mfu": flops.mfu(self.flops_per_step, step_s, self.peak)})

    def _rollback(self, bad: _Rollback) -> None:
        self.rollbacks += 1
        if self.rollbacks > self.config.train.max_rollbacks:
            raise NonFiniteLossError(
                f"loss not finite at step {bad.step} after {self.rollbacks - 1} rollbacks "
                f"(train.max_rollbacks); the last good checkpoint is step {self.last_saved} in "
                f"{self.ckpt.directory}. Lower --config.optim.lr or check the data")
        self.ckpt.wait()
        state, meta = self.ckpt.restore_latest(self.abstract, self.data)
        self._adopt(state, meta)
        self.skipped.add(bad.position)
        self.writer.rewind(self.step)
        self.writer.write_event("rollback", bad_step=bad.step, skipped_batch=bad.position,
                                restored_step=self.step)
        log.warning("loss not finite at step %d: rolled back to step %d and skipping batch %d "
                    "(rollback %d of at most %d)", bad.step, self.step, bad.position,
                    self.rollbacks, self.config.train.max_rollbacks)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        compiled = self._prepare()
        compile_s = time.perf_counter() - t0
        log.info("parameter sharding:\n%s", sharding.sharding_report(self.state.params))
        mem = compiled.memory_analysis()
        peak_bytes = None if mem is None else int(
            mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
            - mem.alias_size_in_bytes)
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
        evaluator = FeatureEvaluator(self.config, self.variant, self.mesh, self.shardings.target,
                                     self.workdir, poll=self.guard.check)
        random_target = lambda: state_lib.create(self.variant, self.tx, self.shardings,
                                                 self.config.seed + 1).target
        summary = {"workdir": str(self.workdir), "compile_s": compile_s, "eval": {},
                   "preempted": False}
        train_cfg = self.config.train
        stop = min(self.total, self.step + train_cfg.run_steps) if train_cfg.run_steps else self.total
        if self.step >= self.total:
            log.info("already at step %d of %d: nothing to train", self.step, self.total)
        self.last_done = time.perf_counter()
        try:
            while self.step < stop:
                if self.guard.stop_at(self.step):
                    raise Preempted()
                try:
                    self._train_step(compiled, stop)
                    if (train_cfg.eval_every and self.step % train_cfg.eval_every == 0
                            and self.step < self.total):
                        evaluator(self.step, self.state.target, random_target)
                        self.last_done = time.perf_counter()  # evaluation is not step time
                except _Rollback as bad:
                    self._rollback(bad)
            self._finish()
            if self.step == self.total and self.config.eval.evaluators:
                summary["eval"] = evaluator(self.step, self.state.target, random_target)
        except Preempted:
            self._finish()
            if self.last_saved != self.step:
                self._save()
            self.ckpt.wait()
            log.warning("preempted at step %d: checkpoint saved, exiting; rerun the same command "
                        "to resume", self.step)
            summary["preempted"] = True
        summary.update(step=self.step, loss=self.last_loss, rollbacks=self.rollbacks)
        return summary

    def _train_step(self, compiled, stop) -> None:
        """Dispatch one step, then log the previous one; checkpoint when due (after checking
        this step's loss, so no checkpoint ever holds a non-finite state)."""
        t0 = time.perf_counter()
        batch, position = self._next_batch()
        data_wait = time.perf_counter() - t0
        self.state, metrics = compiled(self.state, batch)
        self._finish()
        self.step += 1
        self.pending = (self.step, metrics, data_wait, position)
        every, eval_every = self.config.train.checkpoint_every, self.config.train.eval_every
        save = (every and self.step % every == 0) or self.step == stop
        if save or (eval_every and self.step % eval_every == 0):
            self._finish()
        if save:
            self._save()

    def close(self) -> None:
        self.guard.close()
        if self.writer is not None:
            self.writer.close()
        try:
            self.ckpt.wait()
        finally:
            self.ckpt.close()
            self.data.close()  # stops the read-ahead threads (and worker processes)

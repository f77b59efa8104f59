"""The training loop: ``run(config, workdir)``. Importable (Colab) without absl flags.

setup mesh -> sharded state (restored if the workdir has a checkpoint) -> grain stream ->
AOT-compiled train step -> loop with one-step-late metrics, periodic async checkpoints and
evaluations -> final checkpoint and evaluation.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from data_pipelines.images import image_source
from data_pipelines.pipeline import labelled_arrays, train_dataset
from jepax import checkpoint, config as config_lib, distributed, flops, optim, sharding
from jepax import state as state_lib, step as step_lib, variants
from jepax.evaluators.report import evaluate_features, pixel_features, write_results
from jepax.metrics import MetricsWriter

log = logging.getLogger("jepax")

# Keys that may differ when resuming a workdir: they don't change what is being trained.
RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.eval_every",
                     "train.checkpoint_every", "train.keep_checkpoints",
                     "train.async_checkpoints", "train.nan_policy", "train.max_rollbacks", "train.run_steps",
                     "train.allow_config_change", "logging.", "eval.", "distributed.", "mesh.",
                     "data.num_threads", "data.prefetch", "data.num_workers", "data.path",
                     "data.data_dir")


class NonFiniteLossError(FloatingPointError):
    """The loss or gradient norm became NaN/Inf."""


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
    return Path("runs") / (config.name or config.variant)


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


def _eval_arrays(config, variant, split: str, limit):
    return labelled_arrays(image_source(config.data, split), limit, variant.eval_transform())


class _Evaluator:
    """Features of the target encoder (and, once, of baselines) -> probe/k-NN/RankMe results."""

    def __init__(self, config, variant, mesh, target_shardings, workdir):
        self.config, self.variant, self.mesh, self.workdir = config, variant, mesh, workdir
        self.features = jax.jit(variant.features, in_shardings=(
            target_shardings, sharding.batch_sharding(mesh)), out_shardings=sharding.replicated(mesh))
        self.data = None
        self.baselines = None

    def _extract(self, target, images: np.ndarray) -> np.ndarray:
        bs = self.config.eval.batch_size
        out = []
        sh = sharding.batch_sharding(self.mesh)
        for start in range(0, len(images), bs):
            chunk = images[start:start + bs]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], bs - len(chunk), 0)])
            x = jax.make_array_from_callback(padded.shape, sh, lambda idx: padded[idx])
            out.append(np.asarray(jax.device_get(self.features(target, x)))[:len(chunk)])
        return np.concatenate(out)

    def __call__(self, step: int, target, random_target_fn) -> dict:
        e = self.config.eval
        if self.data is None:
            self.data = (_eval_arrays(self.config, self.variant, "train", e.train_examples),
                         _eval_arrays(self.config, self.variant, "test", e.test_examples))
        (xtr, ytr), (xte, yte) = self.data
        t0 = time.perf_counter()
        rows = {"pretrained": evaluate_features(self._extract(target, xtr), ytr,
                                                self._extract(target, xte), yte, e)}
        if self.baselines is None:
            random_target = random_target_fn()
            self.baselines = {
                "random init": evaluate_features(self._extract(random_target, xtr), ytr,
                                                 self._extract(random_target, xte), yte, e),
                "raw pixels": evaluate_features(pixel_features(xtr), ytr, pixel_features(xte),
                                                yte, e),
            }
        rows.update(self.baselines)
        write_results(self.workdir, step, rows)
        log.info("eval at step %d (%.1fs): %s", step, time.perf_counter() - t0,
                 "; ".join(f"{n}: " + ", ".join(f"{k}={v:.4f}" for k, v in r.items()
                                                 if isinstance(v, float)) for n, r in rows.items()))
        return rows


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
    problems = [f"{sharding.path_key(p)}: {getattr(loaded.get(sharding.path_key(p)), 'shape', 'missing')} vs "
                f"{a.shape}" for p, a in flat
                if getattr(loaded.get(sharding.path_key(p)), "shape", None) != a.shape]
    if problems or len(loaded) != len(flat):
        raise config_lib.ConfigError(
            f"train.init_from={path}: its encoder does not match this model "
            f"({'; '.join(problems[:3]) or 'different parameter tree'}); use the same model.*")
    new = [jax.device_put(loaded[sharding.path_key(p)].astype(a.dtype), a.sharding) for p, a in flat]
    new = jax.tree_util.tree_unflatten(treedef, new)
    return {**params, "encoder": new["encoder"]}, new["target"]


def run(config, workdir: str | Path | None = None) -> dict[str, Any]:
    """Train (or resume) the configured run in `workdir`; returns a summary."""
    distributed.maybe_initialize(config)
    _setup_logging()
    config_lib.validate(config)
    workdir = Path(workdir or default_workdir(config)).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    check_workdir_config(workdir, config)

    mesh = sharding.make_mesh(config.mesh)
    rules = sharding.rules_from_config(config.mesh)
    _validate_batching(config, mesh)
    variant = variants.build(config)
    total = int(config.train.steps)
    sched = optim.schedules(config.optim, total)
    tx = optim.optimizer(config.optim, sched)
    log.info("run %s in %s: %s on mesh %s (%d processes)", config.name, workdir, config.variant,
             dict(mesh.shape), jax.process_count())

    with jax.set_mesh(mesh), sharding.use_rules(rules):
        shardings = state_lib.state_shardings(variant, tx, mesh, rules, config.seed)
        abstract = state_lib.abstract_state(variant, tx, shardings, config.seed)
        data = iter(train_dataset(
            image_source(config.data, "train"), seed=config.seed,
            global_batch=config.train.batch_size, example_fn=variant.example_fn(),
            batch_fn=variant.batch_fn(), num_threads=config.data.num_threads,
            prefetch=config.data.prefetch, num_workers=config.data.num_workers))
        ckpt = checkpoint.Checkpointer(workdir / "checkpoints", keep=config.train.keep_checkpoints,
                                       async_save=config.train.async_checkpoints)
        try:
            return _train(config, workdir, mesh, variant, sched, tx, shardings, abstract, data,
                          ckpt, total)
        finally:
            ckpt.wait()
            ckpt.close()


def _train(config, workdir, mesh, variant, sched, tx, shardings, abstract, data, ckpt, total):
    latest = ckpt.latest_step()
    if latest is not None:
        state, _ = ckpt.restore(latest, abstract, data)
        log.info("resuming from checkpoint at step %d in %s", latest, ckpt.directory)
    else:
        state = state_lib.create(variant, tx, shardings, config.seed)
        if config.train.init_from:
            params, target = _load_init_from(config.train.init_from, state.params, state.target)
            state = state.replace(params=params, target=target)
            log.info("initialized the encoder from %s", config.train.init_from)
        checkpoint.save_run_config(workdir, config.to_json(indent=2))
    log.info("parameter sharding:\n%s", sharding.sharding_report(state.params))

    first = next(data)
    abstract_batch = sharding.batch_spec(first, mesh)
    t0 = time.perf_counter()
    compiled = step_lib.compile_train_step(step_lib.make_train_step(variant, tx, sched), abstract,
                                           abstract_batch, sharding.replicated(mesh))
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    peak_bytes = None if mem is None else int(
        mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
        - mem.alias_size_in_bytes)
    log.info("train step compiled in %.1fs (peak device memory %s MiB per device)", compile_s,
             None if peak_bytes is None else round(peak_bytes / 2 ** 20, 1))

    step = int(jax.device_get(state.step))
    writer = MetricsWriter(workdir, total_steps=total, start_step=step,
                           tensorboard=config.logging.tensorboard, progress=config.logging.progress,
                           log_every=config.train.log_every)
    writer.write_event("compile", seconds=compile_s, peak_bytes_per_device=peak_bytes)
    flops_per_step = variant.flops_per_step(config.train.batch_size)
    peak = flops.peak_flops_per_device(config.logging.peak_flops_per_device)
    evaluator = _Evaluator(config, variant, mesh, shardings.target, workdir)

    def random_target():
        fresh = state_lib.create(variant, tx, shardings, config.seed + 1)
        return fresh.target

    last_done = time.perf_counter()
    pending = None
    last_loss = None
    last_saved = latest

    def finish():
        """Fetch the pending step's metrics (blocks until that step is done) and log them."""
        nonlocal pending, last_done, last_loss
        if pending is None:
            return
        done_step, metrics, data_wait = pending
        pending = None
        host = jax.device_get(metrics)
        now = time.perf_counter()
        step_s, last_done = now - last_done, now
        if not bool(host.pop("finite")):
            raise NonFiniteLossError(
                f"loss {float(host['loss'])} / grad norm {float(host['grad_norm'])} is not finite "
                f"at step {done_step} (lr={float(host['lr']):.3g}). The run stopped; the last good "
                f"checkpoint is step {last_saved} in {ckpt.directory}. Lower --config.optim.lr, "
                "enable --config.optim.grad_clip, or check the data")
        last_loss = float(host["loss"])
        writer.write(done_step, {
            **host, "step_s": step_s, "data_wait_s": data_wait,
            "data_wait_frac": data_wait / step_s,
            "examples_per_s": config.train.batch_size / step_s,
            "tflops_per_s": flops_per_step / step_s / 1e12,
            "mfu": flops.mfu(flops_per_step, step_s, peak)})

    batch_local = first
    stop = min(total, step + config.train.run_steps) if config.train.run_steps else total
    if step >= total:
        log.info("already at step %d of %d: nothing to train", step, total)
    try:
        while step < stop:
            t0 = time.perf_counter()
            if batch_local is None:
                batch_local = next(data)
            batch = sharding.global_batch(batch_local, mesh)
            batch_local = None
            data_wait = time.perf_counter() - t0
            state, metrics = compiled(state, batch)
            step += 1
            finish()
            pending = (step, metrics, data_wait)
            every = config.train.checkpoint_every
            if (every and step % every == 0) or step == stop:
                finish()  # never checkpoint a state whose loss wasn't checked
                ckpt.save(step, state, data, {"step": step})
                last_saved = step
            if config.train.eval_every and step % config.train.eval_every == 0 and step < total:
                finish()
                evaluator(step, state.target, random_target)
                last_done = time.perf_counter()  # evaluation time is not step time
        finish()
        final = step == total and config.eval.evaluators
        results = evaluator(step, state.target, random_target) if final else {}
    finally:
        writer.close()
    return {"workdir": str(workdir), "step": step, "loss": last_loss, "eval": results,
            "compile_s": compile_s}

"""One setup path: everything built around a variant's train step, the same way for training
(jepax.train) and for the benchmarks: mesh and sharding rules, optimizer and schedules, state
shardings, the abstract (shape-only) state, and the compiled step and state initializer.

    setup = experiment.build(config)
    with setup.active():
        step, init = setup.compile(abstract_batch)   # compiled side by side
        state = init()
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

import jax
import optax
from jax.sharding import Mesh

from jepax import config as config_lib, optim, sharding, state as state_lib, step as step_lib
from jepax import variants


@dataclasses.dataclass
class Setup:
    config: Any
    variant: Any
    mesh: Mesh
    rules: dict
    sched: optim.Schedules
    tx: optax.GradientTransformation
    shardings: state_lib.TrainState   # NamedShardings of every state leaf
    abstract: state_lib.TrainState    # ShapeDtypeStructs carrying those shardings

    @contextlib.contextmanager
    def active(self):
        """The mesh and logical sharding rules that tracing the step needs."""
        with jax.set_mesh(self.mesh), sharding.use_rules(self.rules):
            yield self

    def global_batch(self, local: dict) -> dict:
        """This process's batch as global arrays laid out as the variant says."""
        return sharding.global_batch(local, self.mesh, self.variant.replicated_keys)

    def eval_param_shardings(self):
        return self.variant.eval_params(self.shardings.params, self.shardings.target)

    def lower_init(self, seed: int | None = None):
        seed = self.config.seed if seed is None else seed
        return (state_lib.lower_create(self.variant, self.tx, self.shardings, seed,
                                       param_dtype(self.config)),
                state_lib.CHEAP_COMPILE)

    def lower_step(self, abstract_batch):
        train_step = step_lib.make_train_step(self.variant, self.tx, self.sched)
        return (step_lib.lower_train_step(train_step, self.abstract, abstract_batch,
                                          sharding.replicated(self.mesh)),
                step_lib.step_compile_options())

    def compile(self, abstract_batch, with_init: bool = True):
        """(compiled step, compiled initializer or None), compiled at the same time."""
        jobs = [self.lower_step(abstract_batch)] + ([self.lower_init()] if with_init else [])
        compiled = step_lib.compile_concurrently(*jobs)
        return compiled[0], (compiled[1] if with_init else None)

    def create_state(self, seed: int | None = None) -> state_lib.TrainState:
        lowered, options = self.lower_init(seed)
        return lowered.compile(compiler_options=options)()


def build(config, variant=None, total_steps: int | None = None) -> Setup:
    """The setup for `config` (its variant built unless given), with the batch sizes checked
    against the mesh."""
    mesh = sharding.make_mesh(config.mesh)
    rules = sharding.rules_from_config(config.mesh)
    check_batching(config, mesh)
    variant = variants.build(config) if variant is None else variant
    sched = optim.schedules(config.optim, int(total_steps or config.train.steps))
    tx = optim.optimizer(config.optim, sched, getattr(variant, "frozen", ()))
    with jax.set_mesh(mesh), sharding.use_rules(rules):
        dtype = param_dtype(config)
        shardings = state_lib.state_shardings(variant, tx, mesh, rules, config.seed, dtype)
        abstract = state_lib.abstract_state(variant, tx, shardings, config.seed, dtype)
    return Setup(config, variant, mesh, rules, sched, tx, shardings, abstract)


def param_dtype(config) -> str:
    """optim.param_dtype (configs that write their own optim section keep float32)."""
    return config.optim.get("param_dtype", "float32")


def check_batching(config, mesh) -> None:
    shards = mesh.shape["data"] * mesh.shape["fsdp"]
    for name, size in (("train.batch_size", config.train.batch_size),
                       ("eval.batch_size", config.eval.batch_size)):
        if size % shards or size % jax.process_count():
            raise config_lib.ConfigError(
                f"{name}={size} is not divisible by the {shards} batch shards (mesh data x fsdp = "
                f"{mesh.shape['data']} x {mesh.shape['fsdp']}) and {jax.process_count()} processes;"
                f" use a multiple of {math.lcm(shards, jax.process_count())}")


def peak_bytes(compiled) -> int | None:
    """Peak device memory of a compiled program per device, from XLA's memory analysis."""
    mem = compiled.memory_analysis()
    if mem is None:
        return None
    return int(mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
               - mem.alias_size_in_bytes)

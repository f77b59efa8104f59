"""The bad inputs the reliability tests try, by kind. Each names the error it must raise and a
part of its message; tests/test_reliability.py runs them, and scripts/bad_input_table.py runs
them (and the scenarios of the other reliability tests) to write docs/reliability.md's table.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

from data_pipelines.errors import DataError
from data_pipelines.masks.multiblock import MaskConfigError
from jepax.checkpoint import CheckpointError
from jepax.config import ConfigError
from jepax.sharding import MeshError
from tests.helpers import IJEPA, small_ijepa


@dataclasses.dataclass(frozen=True)
class ConfigValue:
    """A config override (section__key=value, as tests.helpers.small_ijepa takes)."""
    name: str
    overrides: dict
    error: type
    match: str

    def config(self):
        config = small_ijepa()
        for key, value in self.overrides.items():
            *path, last = key.split("__")
            node = config
            for part in path:
                node = node[part]
            node[last] = value
        return config

    @property
    def flags(self) -> list[str]:
        def literal(v):
            if isinstance(v, tuple):
                return "(" + ",".join(map(repr, v)) + ("," if len(v) == 1 else "") + ")"
            return str(v)
        return [f"--config.{k.replace('__', '.')}={literal(v)}" for k, v in self.overrides.items()]


C = ConfigValue
CONFIG_VALUES = [
    C("keep no checkpoint", {"train__keep_checkpoints": 0}, ConfigError,
      "train.keep_checkpoints=0 must be a positive integer"),
    C("negative keep", {"train__keep_checkpoints": -1}, ConfigError, "train.keep_checkpoints=-1"),
    C("zero steps", {"train__steps": 0}, ConfigError, "train.steps=0 must be a positive integer"),
    C("zero batch", {"train__batch_size": 0}, ConfigError, "train.batch_size=0"),
    C("batch the mesh does not divide", {"train__batch_size": 12}, ConfigError,
      "train.batch_size=12 is not divisible by the 8 batch shards"),
    C("log every 0 steps", {"train__log_every": 0}, ConfigError, "train.log_every=0"),
    C("negative checkpoint period", {"train__checkpoint_every": -5}, ConfigError,
      "train.checkpoint_every=-5 must be an integer >= 0"),
    C("unknown NaN policy", {"train__nan_policy": "ignore"}, ConfigError,
      "train.nan_policy='ignore' must be one of 'stop', 'rollback'"),
    C("negative rollbacks", {"train__max_rollbacks": -1}, ConfigError, "train.max_rollbacks=-1"),
    C("negative run_steps", {"train__run_steps": -1}, ConfigError, "train.run_steps=-1"),
    C("init_from a path without checkpoints", {"train__init_from": "/nonexistent/run"},
      ConfigError, "train.init_from=/nonexistent/run: no checkpoint there"),
    C("negative seed", {"seed": -1}, ConfigError, "seed=-1 must be an integer >= 0"),
    C("negative data workers", {"data__num_workers": -1}, ConfigError, "data.num_workers=-1"),
    C("negative reader threads", {"data__num_threads": -1}, ConfigError, "data.num_threads=-1"),
    C("negative read-ahead", {"data__prefetch": -1}, ConfigError, "data.prefetch=-1"),
    C("empty dataset name", {"data__dataset": ""}, ConfigError, "data.dataset='' must name"),
    C("unknown dataset", {"data__dataset": "imagenet"}, DataError,
      "unknown data.dataset 'imagenet'; use one of"),
    C("missing data files", {"data__path": "/nonexistent"}, DataError,
      "apt-get install dataset-fashion-mnist"),
    C("image size the patch does not divide", {"data__image_size": 30}, ConfigError,
      "not divisible by model.patch_size"),
    C("normalization for the wrong channel count", {"data__mean": (0.1, 0.2)}, ConfigError,
      "data.mean/std need one value per channel"),
    C("zero eval batch", {"eval__batch_size": 0}, ConfigError, "eval.batch_size=0"),
    C("eval batch the mesh does not divide", {"eval__batch_size": 12}, ConfigError,
      "eval.batch_size=12 is not divisible"),
    C("unknown evaluator selected", {"eval__evaluators": ("knn", "linear")}, ConfigError,
      r"names \['linear'\], which config.evals does not define"),
    C("zero neighbours", {"evals__knn__k": 0}, ConfigError, "evals.knn.k=0 must be positive"),
    C("more neighbours than examples", {"eval__evaluators": ("knn",), "evals__knn__k": 300},
      ConfigError, "evals.knn.k=300 is more neighbours than the 256 training examples"),
    C("zero probe examples", {"evals__linear_probe__train_examples": 0}, ConfigError,
      "evals.linear_probe.train_examples=0 must be positive"),
    C("zero probe steps", {"evals__linear_probe__steps": 0}, ConfigError,
      "evals.linear_probe.steps=0"),
    C("negative weight decay of the probe", {"evals__linear_probe__weight_decay": -1.0},
      ConfigError, "evals.linear_probe.weight_decay=-1.0 must be >= 0"),
    C("zero RankMe examples", {"evals__rankme__examples": 0}, ConfigError,
      "evals.rankme.examples=0"),
    C("zero k-NN temperature", {"evals__knn__temperature": 0.0}, ConfigError,
      "evals.knn.temperature=0.0"),
    C("negative evaluation period", {"evals__knn__every": -1}, ConfigError, "evals.knn.every=-1"),
    C("evaluation split that does not exist", {"eval__evaluators": ("knn",),
                                               "evals__knn__test_split": "validation"},
      DataError, "evals.knn.test_split='validation': Fashion-MNIST split 'validation' does not"),
    C("label key the data does not have", {"eval__evaluators": ("knn",),
                                           "evals__knn__label": "class"},
      ConfigError, "evals.knn.label='class': the 'train' evaluation examples have no such key"),
    C("negative learning rate", {"optim__lr": -1.0}, ConfigError,
      "optim.lr=-1.0 must be a finite number > 0"),
    C("NaN learning rate", {"optim__lr": float("nan")}, ConfigError, "optim.lr=nan"),
    C("Adam beta of 1", {"optim__b2": 1.0}, ConfigError, "optim.b2=1.0 must be a finite number"),
    C("zero Adam epsilon", {"optim__eps": 0.0}, ConfigError, "optim.eps=0.0"),
    C("unknown parameter dtype", {"optim__param_dtype": "float16"}, ConfigError,
      "optim.param_dtype='float16' must be float32 or bfloat16"),
    C("EMA that decreases", {"optim__ema": (0.9, 0.8)}, ConfigError,
      r"optim.ema=\(0.9, 0.8\) must be \(start, end\) with 0 <= start <= end <= 1"),
    C("negative warmup", {"optim__warmup_steps": -1}, ConfigError, "optim.warmup_steps=-1"),
    C("mesh larger than the devices", {"mesh__data": 3}, MeshError,
      "needs 3 devices but 8 are available"),
    C("mesh axis of size 0", {"mesh__data": 0}, ConfigError, "mesh.data=0 must be a positive size"),
    C("negative CPU device count", {"mesh__cpu_devices": -2}, ConfigError, "mesh.cpu_devices=-2"),
    C("unknown distributed mode", {"distributed__mode": "cluster"}, ConfigError,
      "distributed.mode='cluster'"),
    C("zero heartbeat timeout", {"distributed__heartbeat_timeout": 0}, ConfigError,
      "distributed.heartbeat_timeout=0"),
    C("negative peak FLOP/s", {"logging__peak_flops_per_device": -1.0}, ConfigError,
      "logging.peak_flops_per_device=-1.0"),
    C("mask scale above 1", {"mask__target_scale": (0.2, 1.5)}, MaskConfigError, "target_scale"),
    C("unknown dtype", {"model__dtype": "float8"}, ConfigError, "model.dtype"),
    C("width the heads do not divide", {"model__heads": 3}, ConfigError,
      "must be divisible by their heads"),
]


@dataclasses.dataclass(frozen=True)
class Workdir:
    """A workdir made bad by `prepare(copy of a step-3 run) -> the --workdir to pass`."""
    name: str
    prepare: Callable[[Path], Path]
    error: type
    match: str


def _corrupt_config(run: Path) -> Path:
    (run / "config.json").write_text('{"train": {"steps": ')
    return run


def _other_model(run: Path) -> Path:
    saved = json.loads((run / "config.json").read_text())
    saved["model"]["depth"] = 3
    (run / "config.json").write_text(json.dumps(saved))
    return run


WORKDIRS = [
    Workdir("workdir that is a file", lambda run: run / "metrics.jsonl", ConfigError,
            "is a file, not a directory"),
    Workdir("workdir inside a file", lambda run: run / "metrics.jsonl" / "sub", ConfigError,
            "cannot write in"),
    Workdir("corrupt config.json", _corrupt_config, CheckpointError,
            "config.json .* cannot be read"),
    Workdir("workdir of another model", _other_model, ConfigError,
            "was written by a different config .*model.depth: 3 -> 1"),
]


@dataclasses.dataclass(frozen=True)
class CommandLine:
    name: str
    args: list
    match: str


COMMAND_LINES = [
    CommandLine("config file that does not exist", ["--config=experiments/nope.py"],
                "experiments/nope.py is not a file"),
    CommandLine("config that is not Python", [f"--config={Path(IJEPA).parents[1]}/README.md"],
                "is not a Python file with get_config()"),
    CommandLine("unknown preset", [f"--config={IJEPA}:tinny"],
                "unknown preset 'tinny'; available: tiny"),
    CommandLine("typo in a key", [f"--config={IJEPA}:tiny", "--config.train.stepz=3"],
                "--config.train.stepz: config.train has no key 'stepz' (did you mean 'steps'?)"),
    CommandLine("typo in a section", [f"--config={IJEPA}", "--config.trian.steps=3"],
                "config has no key 'trian' (did you mean 'train'?)"),
    CommandLine("setting of an evaluator that has none", [f"--config={IJEPA}",
                                                          "--config.evals.knn.kk=3"],
                "config.evals.knn has no key 'kk' (did you mean 'k'?)"),
]


# Found by absl while it parses the flags (after the checks above), or after parsing.
ABSL_COMMAND_LINES = [
    CommandLine("value of the wrong type", [f"--config={IJEPA}:tiny", "--config.train.steps=abc"],
                "flag --config.train.steps=abc: invalid literal for int()"),
    CommandLine("stray argument", [f"--config={IJEPA}:tiny", "tiny"],
                "unexpected arguments ['tiny']: flags look like --config=FILE[:preset]"),
    CommandLine("no --config", [], "Flag --config must have a value other than None"),
]

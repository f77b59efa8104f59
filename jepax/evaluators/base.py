"""What an evaluator sees: rows of the results table, each able to give the evaluation data.

A row is the pretrained model, a randomly initialised one, or a model-free baseline named by the
variant (raw pixels, band powers, ...). ``row.data(split, examples)`` returns the host arrays of
that evaluation subset (labels and whatever else the variant's eval source yields) merged with
the row's outputs (e.g. 'features'). An evaluator reads the keys its block names and returns a
dict of metrics, or {} when the row lacks an output it needs (a baseline that has no
'flow', say).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Protocol

import numpy as np

from jepax.config import ConfigError


class Row:
    """`params`: the row's evaluated parameters (the variant's eval_params), for evaluators that
    train on top of the model (fine-tuning), and `variant`, the model they belong to; both None
    for model-free baselines."""

    def __init__(self, name: str, data: Callable[[str, int | None], dict[str, np.ndarray]],
                 params: Any = None, variant: Any = None):
        self.name = name
        self._data = data
        self.params = params
        self.variant = variant

    def data(self, split: str, examples: int | None) -> dict[str, np.ndarray]:
        return self._data(split, examples)


class Evaluator(Protocol):
    DEFAULTS: ClassVar[dict[str, Any]]
    columns: tuple[str, ...]   # metrics shown in the results table, in order
    every: int

    def __init__(self, name: str, config_block) -> None: ...

    def evaluate(self, row: Row) -> dict[str, Any]: ...


class FeatureEvaluator:
    """Base of evaluators that fit on one split's outputs and score on another's."""

    DEFAULTS: ClassVar[dict[str, Any]] = dict(
        outputs="features", label="label", train_split="train", train_examples=10000,
        test_split="test", test_examples=10000)

    def __init__(self, name: str, config_block):
        self.name, self.block = name, config_block
        self.every = int(config_block["every"])
        check(name, config_block, nonnegative=("every",),
              positive=("train_examples", "test_examples"))

    def split_data(self, row: Row):
        """(train_x, train_y, test_x, test_y), or None when the row lacks the outputs."""
        b = self.block
        train = row.data(b["train_split"], b["train_examples"])
        if b["outputs"] not in train:
            return None
        test = row.data(b["test_split"], b["test_examples"])
        return train[b["outputs"]], train[b["label"]], test[b["outputs"]], test[b["label"]]


def check(name: str, config_block, *, positive=(), nonnegative=()) -> None:
    """ConfigError naming `evals.<name>.<key>` for values out of range."""
    for key in positive:
        value = config_block[key]
        if value is not None and not value > 0:
            raise ConfigError(f"evals.{name}.{key}={value} must be positive; set "
                              f"--config.evals.{name}.{key}=<positive>")
    for key in nonnegative:
        if config_block[key] < 0:
            raise ConfigError(f"evals.{name}.{key}={config_block[key]} must be >= 0")

"""What an evaluator sees: rows of the results table, each able to give the evaluation data.

A row is the pretrained model, a randomly initialised one, or a model-free baseline named by the
variant (raw pixels, band powers, ...). ``row.data(split, examples)`` returns the host arrays of
that evaluation subset (labels and whatever else the variant's eval source yields) merged with
the row's outputs (e.g. 'features'). An evaluator reads the keys its block names and returns a
dict of metrics, or {} when the row lacks an output it needs (a baseline that has no
'flow', say).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, ClassVar, Protocol

import numpy as np

from data_pipelines.errors import DataError
from jepax.config import ConfigError

log = logging.getLogger("jepax")

# The row of the same model at its random initialization.
RANDOM_INIT = "random init"


class Row:
    """`params`: the row's evaluated parameters (the variant's eval_params) and `variant` the
    variant that reads them, for evaluators that train on top of the model (fine-tuning); both
    None for model-free baselines."""

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

    # Optional: `check_data(data: EvalData)` raises ConfigError/DataError, before training
    # starts, when the evaluation data cannot serve the block's settings.


class EvalData(Protocol):
    """What is known about the evaluation data before training (nothing is computed)."""

    def size(self, split: str) -> int:
        """Examples in the variant's eval_source(split) (DataError if it cannot be read)."""

    def keys(self, split: str) -> set[str]:
        """Keys of one transformed example of that split (labels and inputs)."""


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

    def check_data(self, data: EvalData) -> dict[str, int]:
        """The examples each role ('train', 'test') will use; errors for empty splits and
        a label key the data does not have."""
        used = {}
        for role in ("train", "test"):
            used[role] = examples_used(self.name, self.block, f"{role}_split",
                                       f"{role}_examples", data)
            split, label = self.block[f"{role}_split"], self.block["label"]
            if label not in data.keys(split):
                raise ConfigError(
                    f"evals.{self.name}.label={label!r}: the {split!r} evaluation examples have "
                    f"no such key (they have {sorted(data.keys(split))}); set "
                    f"--config.evals.{self.name}.label")
        return used

    def split_data(self, row: Row):
        """(train_x, train_y, test_x, test_y), or None when the row lacks the outputs."""
        b = self.block
        train = row.data(b["train_split"], b["train_examples"])
        if b["outputs"] not in train:
            return None
        test = row.data(b["test_split"], b["test_examples"])
        return train[b["outputs"]], train[b["label"]], test[b["outputs"]], test[b["label"]]


def examples_used(name: str, config_block, split_key: str, examples_key: str,
                  data: EvalData) -> int:
    """How many examples of the block's split an evaluation reads (all when the setting is
    None); DataError naming the setting when the split cannot be read or is empty."""
    split, wanted = config_block[split_key], config_block[examples_key]
    try:
        available = data.size(split)
    except DataError as e:
        raise DataError(f"evals.{name}.{split_key}={split!r}: {e}") from None
    if available == 0:
        raise DataError(f"evals.{name}: the evaluation split {split!r} is empty; point "
                        f"--config.evals.{name}.{split_key} at a split with examples")
    if wanted is not None and wanted > available:
        log.warning("evals.%s.%s=%d but split %r has %d examples: using all %d", name,
                    examples_key, wanted, split, available, available)
    return available if wanted is None else min(wanted, available)


def check(name: str, config_block, *, positive=(), nonnegative=()) -> None:
    """ConfigError naming `evals.<name>.<key>` for values out of range (None passes: it means
    "all" for counts)."""
    for key in positive:
        value = config_block[key]
        if value is not None and not value > 0:
            raise ConfigError(f"evals.{name}.{key}={value} must be positive; set "
                              f"--config.evals.{name}.{key}=<positive>")
    for key in nonnegative:
        value = config_block[key]
        if value is None or not value >= 0:
            raise ConfigError(f"evals.{name}.{key}={value} must be >= 0; set "
                              f"--config.evals.{name}.{key}=<number >= 0>")

"""Base of downstream models trained on a row's outputs with the labels, over several seeds.

The task follows the labels' dtype: integer labels are classes (metric: test accuracy), float
labels are regression targets (metric: test RMSE, in the labels' units). Metrics are named
after the config block, ``<block>_acc`` / ``<block>_rmse`` (mean over seeds) and ``..._std``
(their standard deviation), so one evaluator class serves several blocks (e.g. the same model
on embeddings and on raw features is one block evaluated on two rows). ``rows`` limits the rows
a block runs on (e.g. gradient-boosted trees on the raw-feature row only); None: all.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from jepax.config import ConfigError
from jepax.evaluators.base import FeatureEvaluator, check


class SupervisedProbe(FeatureEvaluator):
    DEFAULTS: ClassVar[dict] = {**FeatureEvaluator.DEFAULTS, "train_examples": None,
                                "test_examples": None, "seeds": 3, "rows": None}

    def __init__(self, name, config_block):
        super().__init__(name, config_block)
        check(name, config_block, positive=("seeds",))
        rows = config_block["rows"]
        if rows is not None and (isinstance(rows, str) or not all(isinstance(r, str) for r in rows)):
            raise ConfigError(f"evals.{name}.rows={rows!r}: give a tuple of row names, e.g. "
                              "('raw features',), or None for every row")
        self.columns = tuple(f"{name}_{m}{s}" for m in ("acc", "rmse") for s in ("", "_std"))

    def evaluate(self, row):
        rows = self.block["rows"]
        if rows is not None and row.name not in rows:
            return {}
        data = self.split_data(row)
        if data is None:
            return {}
        train_x, train_y, test_x, test_y = data
        classify = np.issubdtype(np.asarray(train_y).dtype, np.integer)
        scores = [score(pred, test_y, classify)
                  for pred in self.fit_predict(train_x, train_y, test_x, classify)]
        metric = f"{self.name}_{'acc' if classify else 'rmse'}"
        return {metric: float(np.mean(scores)), f"{metric}_std": float(np.std(scores))}

    def fit_predict(self, train_x, train_y, test_x, classify: bool) -> list[np.ndarray]:
        """One prediction of the test labels per seed."""
        raise NotImplementedError


def score(prediction, labels, classify: bool) -> float:
    """Accuracy of predicted classes, or RMSE of predicted values."""
    prediction, labels = np.asarray(prediction), np.asarray(labels)
    if classify:
        return float(np.mean(prediction == labels))
    return float(np.sqrt(np.mean((prediction.astype(np.float64) - labels) ** 2)))

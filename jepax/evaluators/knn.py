"""k-nearest-neighbour classifier on cosine similarity, temperature-weighted votes (as DINO)."""

from __future__ import annotations

import numpy as np

from jepax.config import ConfigError
from jepax.evaluators.base import FeatureEvaluator, check


class KNN(FeatureEvaluator):
    DEFAULTS = {**FeatureEvaluator.DEFAULTS, "k": 20, "temperature": 0.07}
    columns = ("knn_acc",)

    def __init__(self, name, config_block):
        super().__init__(name, config_block)
        check(name, config_block, positive=("k", "temperature"))

    def check_data(self, data):
        used = super().check_data(data)
        if self.block["k"] > used["train"]:
            raise ConfigError(
                f"evals.{self.name}.k={self.block['k']} is more neighbours than the "
                f"{used['train']} training examples it votes among; lower "
                f"--config.evals.{self.name}.k or raise --config.evals.{self.name}.train_examples")
        return used

    def evaluate(self, row):
        data = self.split_data(row)
        if data is None:
            return {}
        return knn(*data, k=self.block["k"], temperature=self.block["temperature"])


def knn(train_x, train_y, test_x, test_y, *, k: int = 20, temperature: float = 0.07,
        chunk: int = 1024) -> dict:
    train = _normalize(np.asarray(train_x, np.float32))
    test = _normalize(np.asarray(test_x, np.float32))
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    if not 0 < k <= len(train):
        raise ValueError(f"k={k} neighbours among {len(train)} training examples")
    correct = 0
    for start in range(0, len(test), chunk):
        sims = test[start:start + chunk] @ train.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, 1)
        votes = np.zeros((len(top), num_classes), np.float64)
        np.add.at(votes, (np.arange(len(top))[:, None], train_y[top]),
                  np.exp(top_sims / temperature))
        correct += int((votes.argmax(1) == test_y[start:start + chunk]).sum())
    return {"knn_acc": correct / len(test)}


def _normalize(x):
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-8)

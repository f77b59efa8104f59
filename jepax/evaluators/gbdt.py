"""Gradient-boosted trees (scikit-learn's HistGradientBoosting) on a row's outputs: the strong
classical baseline on raw table features. Each seed changes the held-out share of the training
rows that early stopping watches, so the spread over seeds is that of a tuned-by-validation
model, not of the data split."""

from __future__ import annotations

import numpy as np

from jepax.evaluators.base import check
from jepax.evaluators.supervised import SupervisedProbe


class GBDT(SupervisedProbe):
    DEFAULTS = {**SupervisedProbe.DEFAULTS, "max_iter": 500, "learning_rate": 0.1,
                "max_leaf_nodes": 31, "validation_fraction": 0.1}

    def __init__(self, name, config_block):
        super().__init__(name, config_block)
        check(name, config_block, positive=("max_iter", "learning_rate", "max_leaf_nodes",
                                            "validation_fraction"))

    def fit_predict(self, train_x, train_y, test_x, classify):
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        b = self.block
        model = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        predictions = []
        for seed in range(b["seeds"]):
            fitted = model(max_iter=b["max_iter"], learning_rate=b["learning_rate"],
                           max_leaf_nodes=b["max_leaf_nodes"], early_stopping=True,
                           validation_fraction=b["validation_fraction"],
                           random_state=seed).fit(np.asarray(train_x), np.asarray(train_y))
            predictions.append(fitted.predict(np.asarray(test_x)))
        return predictions

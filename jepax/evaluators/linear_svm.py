"""Linear SVM on frozen features: the protocol Point-JEPA (and Point-M2AE, point2vec) report on
ModelNet40: libsvm's SVC with a linear kernel and C = 0.012 on max + mean pooled tokens.

Outputs with a seed axis (N, S, F) (the same clouds under S evaluation subsamplings, e.g.
`seed_features` of the point variants) get one SVM per seed; the result is the mean and std
over seeds, as the reference reports 10 evaluation seeds. Needs scikit-learn (extra `points`).
"""

from __future__ import annotations

import numpy as np

from jepax.config import ConfigError
from jepax.evaluators.base import FeatureEvaluator, check


def _svc():
    try:
        from sklearn.svm import SVC
    except ImportError as e:
        raise ConfigError("the linear_svm / few_shot evaluators need scikit-learn: "
                          "pip install -e .[points]") from e
    return SVC


class LinearSVM(FeatureEvaluator):
    DEFAULTS = {**FeatureEvaluator.DEFAULTS, "outputs": "seed_features", "C": 0.012,
                "standardize": True, "train_examples": None, "test_examples": None}
    columns = ("svm_acc", "svm_acc_std")

    def __init__(self, name, config_block):
        super().__init__(name, config_block)
        check(name, config_block, positive=("C",))

    def evaluate(self, row):
        data = self.split_data(row)
        if data is None:
            return {}
        return linear_svm(*data, C=self.block["C"], standardize=self.block["standardize"])


def standardized(train_x, test_x, on: bool):
    """z-score both sets with the training set's statistics (when `on`)."""
    train_x, test_x = np.asarray(train_x, np.float64), np.asarray(test_x, np.float64)
    if not on:
        return train_x, test_x
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    return (train_x - mean) / std, (test_x - mean) / std


def svm_accuracy(train_x, train_y, test_x, test_y, *, C: float, standardize: bool):
    """(test accuracy, train accuracy) of a linear-kernel SVC."""
    xtr, xte = standardized(train_x, test_x, standardize)
    svm = _svc()(C=C, kernel="linear").fit(xtr, train_y)
    return float(svm.score(xte, test_y)), float(svm.score(xtr, train_y))


def linear_svm(train_x, train_y, test_x, test_y, *, C: float = 0.012,
               standardize: bool = True) -> dict:
    """Features (N, F) or per seed (N, S, F) -> accuracy (mean and std over seeds)."""
    train_x, test_x = np.asarray(train_x), np.asarray(test_x)
    if train_x.ndim == 2:
        train_x, test_x = train_x[:, None], test_x[:, None]
    scores = [svm_accuracy(train_x[:, s], train_y, test_x[:, s], test_y, C=C,
                           standardize=standardize) for s in range(train_x.shape[1])]
    test, train = np.asarray(scores).T
    return {"svm_acc": float(test.mean()), "svm_acc_std": float(test.std()),
            "svm_train_acc": float(train.mean()), "svm_seeds": len(scores)}

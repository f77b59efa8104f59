"""Regression probe: ridge regression on standardized frozen outputs, the penalty chosen by
k-fold cross-validation on the training split; Pearson r and MSE on the test split (the
regression metrics of the Brain-JEPA paper). MSE is in units of the training targets' variance
(1.0 = predicting the training mean), so tasks with different label scales compare."""

from __future__ import annotations

import numpy as np

from jepax.evaluators.base import FeatureEvaluator, check

ALPHAS = np.logspace(-3, 6, 19)  # penalties tried, relative to standardized features


class RegressionProbe(FeatureEvaluator):
    DEFAULTS = {**FeatureEvaluator.DEFAULTS, "label": "target", "folds": 5}

    def __init__(self, name, config_block):
        super().__init__(name, config_block)
        check(name, config_block, positive=("folds",))
        self.name = name
        self.columns = (f"{name}_r", f"{name}_mse")

    def evaluate(self, row):
        data = self.split_data(row)
        if data is None:
            return {}
        res = ridge_probe(*data, folds=self.block["folds"])
        return {f"{self.name}_r": res["r"], f"{self.name}_mse": res["mse"],
                f"{self.name}_alpha": res["alpha"]}


def _ridge_fit(x, y, alphas):
    """Weights (features, alphas) minimizing |y - x w|^2 + alpha |w|^2 for every penalty, from
    one SVD of the (centred) x."""
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    shrink = s[:, None] / (s[:, None] ** 2 + alphas[None, :])
    return vt.T @ (shrink * (u.T @ y)[:, None])


def ridge_probe(train_x, train_y, test_x, test_y, *, folds: int = 5) -> dict:
    train_x = np.asarray(train_x, np.float64)
    test_x = np.asarray(test_x, np.float64)
    train_y = np.asarray(train_y, np.float64).reshape(-1)
    test_y = np.asarray(test_y, np.float64).reshape(-1)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-8
    xtr, xte = (train_x - mean) / std, (test_x - mean) / std
    y_mean, y_std = train_y.mean(), train_y.std() + 1e-12
    ytr = (train_y - y_mean) / y_std
    folds = max(2, min(folds, len(xtr)))
    fold_of = np.arange(len(xtr)) % folds
    errors = np.zeros(len(ALPHAS))
    for k in range(folds):
        fit, held = fold_of != k, fold_of == k
        xm, ym = xtr[fit].mean(0), ytr[fit].mean()
        w = _ridge_fit(xtr[fit] - xm, ytr[fit] - ym, ALPHAS)
        pred = (xtr[held] - xm) @ w + ym
        errors += ((pred - ytr[held, None]) ** 2).sum(0)
    alpha = ALPHAS[int(np.argmin(errors))]
    w = _ridge_fit(xtr, ytr, np.asarray([alpha]))[:, 0]
    pred = xte @ w  # standardized units; xtr and ytr are centred
    target = (test_y - y_mean) / y_std
    r = float(np.corrcoef(pred, target)[0, 1]) if pred.std() > 0 and target.std() > 0 else 0.0
    return {"r": r, "mse": float(np.mean((pred - target) ** 2)), "alpha": float(alpha)}

"""A linear classifier on frozen outputs, scored on the clean test split and on corrupted copies
of it: accuracy and macro-F1 (the multimodal-sentiment metrics), then accuracy when one input is
broken. For a model that fuses two inputs, each corruption (captions shuffled among examples,
images replaced by noise: ``<test_split>/<corruption>`` splits of the data source) should lower
the accuracy; a model that ignores an input is not hurt by breaking it.

Columns: ``<name>_acc``, ``<name>_macro_f1``, ``<name>_acc_<corruption>`` per corruption.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from jepax.evaluators.base import FeatureEvaluator, check, examples_used
from jepax.evaluators.linear_probe import fit_linear_probe


class FusionCheck(FeatureEvaluator):
    DEFAULTS = {**FeatureEvaluator.DEFAULTS, "steps": 500, "weight_decay": 1e-4,
                "corruptions": ("shuffled_captions", "noise_images")}

    def __init__(self, name, config_block):
        super().__init__(name, config_block)
        check(name, config_block, positive=("steps",), nonnegative=("weight_decay",))
        self.corruptions = tuple(config_block["corruptions"])
        self.columns = (f"{name}_acc", f"{name}_macro_f1") + tuple(
            f"{name}_acc_{c}" for c in self.corruptions)

    def corrupted_split(self, corruption: str) -> str:
        return f"{self.block['test_split']}/{corruption}"

    def check_data(self, data):
        used = super().check_data(data)
        for c in self.corruptions:
            examples_used(self.name, {**self.block, "split": self.corrupted_split(c)}, "split",
                          "test_examples", data)
        return used

    def evaluate(self, row):
        data = self.split_data(row)
        if data is None:
            return {}
        train_x, train_y, test_x, test_y = data
        predict = fit_linear_probe(train_x, train_y, steps=self.block["steps"],
                                   weight_decay=self.block["weight_decay"])
        labels = np.unique(train_y)
        predicted = predict(test_x)
        out = {f"{self.name}_acc": float(np.mean(predicted == test_y)),
               f"{self.name}_macro_f1": float(f1_score(test_y, predicted, labels=labels,
                                                       average="macro", zero_division=0))}
        for c in self.corruptions:
            broken = row.data(self.corrupted_split(c), self.block["test_examples"])
            out[f"{self.name}_acc_{c}"] = float(np.mean(
                predict(broken[self.block["outputs"]]) == broken[self.block["label"]]))
        return out

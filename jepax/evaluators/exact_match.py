"""Exact-match accuracy grouped by length: the length-generalization metric of the sequence
studies (copying, arithmetic).

Reads a per-example correctness output (1 = the whole answer right, e.g. the sequence_lm
variant's ``correct``) and a per-example group label of the evaluation data (``length``: string
length, phone-book entries, operand digits). Metrics of block ``<name>``:

* ``<name>_exact_match``: over all evaluated examples;
* ``<name>_by_length``: {length: accuracy};
* ``<name>_reach``: the longest length L such that every evaluated length <= L reaches
  ``threshold`` (0 when the shortest does not): "copies strings up to L".
"""

from __future__ import annotations

import numpy as np

from jepax.evaluators.base import check


class ExactMatch:
    DEFAULTS = dict(outputs="correct", group="length", split="test", examples=None,
                    threshold=0.9)

    def __init__(self, name, config_block):
        self.name, self.block = name, config_block
        self.every = int(config_block["every"])
        self.columns = (f"{name}_exact_match",)
        check(name, config_block, positive=("examples", "threshold"), nonnegative=("every",))

    def evaluate(self, row):
        b = self.block
        data = row.data(b["split"], b["examples"])
        if b["outputs"] not in data:
            return {}
        by_length = accuracy_by_group(data[b["outputs"]], data[b["group"]])
        return {f"{self.name}_exact_match": float(np.mean(data[b["outputs"]])),
                f"{self.name}_by_length": by_length,
                f"{self.name}_reach": reach(by_length, b["threshold"])}


def accuracy_by_group(correct, groups) -> dict[int, float]:
    correct, groups = np.asarray(correct, np.float64), np.asarray(groups)
    return {int(g): float(correct[groups == g].mean()) for g in np.unique(groups)}


def reach(by_length: dict, threshold: float) -> int:
    """Longest length up to which every evaluated length has accuracy >= threshold."""
    best = 0
    for length in sorted(by_length, key=int):
        if by_length[length] < threshold:
            break
        best = int(length)
    return best

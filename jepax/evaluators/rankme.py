"""RankMe (Garrido et al., 2023): effective rank of the embedding matrix, a label-free
collapse monitor. exp(entropy of the normalized singular values); ranges over [1, min(N, D)]."""

from __future__ import annotations

import numpy as np

from jepax.evaluators.base import check, examples_used


class RankMe:
    """Effective rank of one split's outputs (no labels needed)."""

    DEFAULTS = {"outputs": "features", "split": "train", "examples": 10000}
    columns = ("rankme",)

    def __init__(self, name, config_block):
        self.name, self.block = name, config_block
        self.every = int(config_block["every"])
        check(name, config_block, positive=("examples",), nonnegative=("every",))

    def check_data(self, data):
        return {"train": examples_used(self.name, self.block, "split", "examples", data)}

    def evaluate(self, row):
        data = row.data(self.block["split"], self.block["examples"])
        if self.block["outputs"] not in data:
            return {}
        return rankme(data[self.block["outputs"]])


def rankme(features, max_samples: int = 25600) -> dict:
    x = np.asarray(features, np.float64)[:max_samples]
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum() + 1e-7
    return {"rankme": float(np.exp(-(p * np.log(p)).sum())), "rankme_max": int(min(x.shape))}

"""Few-shot classification on frozen features: N-way K-shot episodes.

Each episode draws `ways` classes, `shots` support examples per class from the support split and
up to `queries` query examples per class from the query split (the point-cloud papers'
ModelNet40 protocol: 5/10-way, 10/20-shot, 20 queries, 10 episodes), fits a linear SVM on the
support features and scores the queries. Reports mean and std over episodes. The papers
fine-tune the whole encoder per episode; here the encoder is frozen (a linear read-out).
"""

from __future__ import annotations

import numpy as np

from jepax.evaluators.base import check
from jepax.evaluators.linear_svm import svm_accuracy


class FewShot:
    DEFAULTS = {"outputs": "features", "label": "label", "support_split": "train",
                "query_split": "test", "ways": 5, "shots": 10, "queries": 20, "episodes": 10,
                "C": 0.012, "standardize": True, "support_examples": None,
                "query_examples": None, "seed": 0}
    columns = ("few_shot_acc", "few_shot_acc_std")

    def __init__(self, name, config_block):
        self.block = config_block
        self.every = int(config_block["every"])
        check(name, config_block, nonnegative=("every", "seed"),
              positive=("ways", "shots", "queries", "episodes", "C", "support_examples",
                        "query_examples"))

    def evaluate(self, row):
        b = self.block
        support = row.data(b["support_split"], b["support_examples"])
        if b["outputs"] not in support:
            return {}
        query = row.data(b["query_split"], b["query_examples"])
        return few_shot(support[b["outputs"]], support[b["label"]], query[b["outputs"]],
                        query[b["label"]], ways=b["ways"], shots=b["shots"],
                        queries=b["queries"], episodes=b["episodes"], C=b["C"],
                        standardize=b["standardize"], seed=b["seed"])


def few_shot(support_x, support_y, query_x, query_y, *, ways: int, shots: int, queries: int,
             episodes: int, C: float, standardize: bool = True, seed: int = 0) -> dict:
    support_y, query_y = np.asarray(support_y), np.asarray(query_y)
    eligible = [c for c in np.unique(support_y)
                if (support_y == c).sum() >= shots and (query_y == c).any()]
    if len(eligible) < ways:
        raise ValueError(f"few-shot: only {len(eligible)} classes have {shots} support and one "
                         f"query example; lower evals.<name>.ways or shots")
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(episodes):
        classes = rng.choice(eligible, ways, replace=False)
        s_idx = np.concatenate([rng.choice(np.flatnonzero(support_y == c), shots, replace=False)
                                for c in classes])
        q_idx = np.concatenate([
            rng.permutation(np.flatnonzero(query_y == c))[:queries] for c in classes])
        acc, _ = svm_accuracy(support_x[s_idx], support_y[s_idx], query_x[q_idx], query_y[q_idx],
                              C=C, standardize=standardize)
        accs.append(acc)
    return {"few_shot_acc": float(np.mean(accs)), "few_shot_acc_std": float(np.std(accs))}

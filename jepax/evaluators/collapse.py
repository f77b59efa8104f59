"""Collapse guard: stops training with a clear message when the pretrained representation has
collapsed (every input mapped to nearly the same features), the failure JEPA users report as a
loss falling to ~0 early with probes at chance.

On one split's outputs it measures the spread across examples relative to the features' size
(`collapse_spread`: mean over dimensions of the std across examples, divided by the RMS feature
value; ~0 when collapsed) and the effective rank of the *centred* features (`collapse_rank`,
RankMe after removing the mean: the shared mean direction of un-centred features makes plain
RankMe small even for healthy features). Below either threshold on the 'pretrained' row it raises
:class:`RepresentationCollapse`, which ends the run (the last checkpoint stays). Other rows only
report the numbers. Put this block first in config.evals and give it an `every` to check during
training."""

from __future__ import annotations

import numpy as np

from jepax.evaluators.base import check
from jepax.evaluators.rankme import rankme


class RepresentationCollapse(RuntimeError):
    """The pretrained features no longer distinguish inputs."""


class CollapseGuard:
    DEFAULTS = {"outputs": "features", "split": "train", "examples": 512,
                "min_spread": 1e-3, "min_rank": 1.5}
    columns = ("collapse_spread", "collapse_rank")

    def __init__(self, name, config_block):
        self.name, self.block = name, config_block
        self.every = int(config_block["every"])
        check(name, config_block, positive=("examples",),
              nonnegative=("every", "min_spread", "min_rank"))

    def evaluate(self, row):
        b = self.block
        data = row.data(b["split"], b["examples"])
        if b["outputs"] not in data:
            return {}
        measured = collapse_metrics(data[b["outputs"]])
        if row.name == "pretrained" and (measured["collapse_spread"] < b["min_spread"]
                                         or measured["collapse_rank"] < b["min_rank"]):
            raise RepresentationCollapse(
                f"the representation collapsed: on {len(data[b['outputs']])} '{b['split']}' "
                f"examples the features' spread across inputs is {measured['collapse_spread']:.2e}"
                f" of their size (threshold {b['min_spread']:g}) and their centred effective rank "
                f"{measured['collapse_rank']:.2f} (threshold {b['min_rank']:g}). Training stopped; "
                "the last checkpoint is kept. Try a lower --config.optim.lr, a slower EMA "
                "(--config.optim.ema='(0.998, 1.0)'), more target tokens, or check that the "
                "inputs differ between examples (scaling, demeaning). Thresholds: "
                f"--config.evals.{self.name}.min_spread / min_rank")
        return measured


def collapse_metrics(features) -> dict:
    x = np.asarray(features, np.float64)
    centred = x - x.mean(axis=0)
    rms = np.sqrt(np.mean(x ** 2)) + 1e-12
    return {"collapse_spread": float(x.std(axis=0).mean() / rms),
            "collapse_rank": rankme(centred)["rankme"]}

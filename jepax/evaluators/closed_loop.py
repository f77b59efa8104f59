"""Closed-loop success rate: roll the row's policy out in its simulator from held-out seeds and
count the episodes that solve their task (at any step, as Meta-World's success flag).

Reads a variant with ``rollouts(policy, seeds, tasks, max_steps=, execute=)`` (ACT-JEPA on
point pushing); model-free rows have no policy and get no entry. Metrics of block ``<name>``:
``<name>_success`` over all rollouts and ``<name>_<task>`` per task (tasks alternate over
the seeds). Seeds start at ``first_seed``, far from the recorded demonstrations' seeds.
``temporal_ensemble=True`` queries the policy every step and runs the weighted average of the
overlapping chunks' actions (ACT's temporal ensembling, weight decay ``ensemble_decay``)
instead of running `execute` actions of each chunk open loop.
"""

from __future__ import annotations

import numpy as np

from jepax.evaluators.base import check


class ClosedLoop:
    DEFAULTS = dict(rollouts=50, max_steps=100, execute=10, first_seed=10**9,
                    tasks=("push", "reach"), temporal_ensemble=False, ensemble_decay=0.01)

    def __init__(self, name, config_block):
        self.name, self.block = name, config_block
        self.every = int(config_block["every"])
        check(name, config_block, positive=("rollouts", "max_steps", "execute"),
              nonnegative=("every", "ensemble_decay"))
        self.columns = (f"{name}_success", *(f"{name}_{t}" for t in config_block["tasks"]))

    def evaluate(self, row):
        if row.params is None or not hasattr(row.variant, "rollouts"):
            return {}
        b = self.block
        rates = success_rates(row.variant, row.params, rollouts=b["rollouts"],
                              first_seed=b["first_seed"], tasks=tuple(b["tasks"]),
                              max_steps=b["max_steps"], execute=b["execute"],
                              ensemble=b["ensemble_decay"] if b["temporal_ensemble"] else None)
        return {f"{self.name}_{k}": v for k, v in rates.items()}


def success_rates(variant, policy, *, rollouts: int, first_seed: int, tasks: tuple[str, ...],
                  max_steps: int, execute: int, ensemble: float | None = None) -> dict:
    """{'success': over all rollouts, <task>: per task} of `policy` on seeds first_seed, ...,
    tasks alternating over the seeds."""
    seeds = first_seed + np.arange(rollouts)
    ids = seeds % len(tasks)
    success = variant.rollouts(policy, seeds, ids, max_steps=max_steps, execute=execute,
                               ensemble=ensemble)["success"]
    return {"success": float(success.mean()),
            **{task: float(success[ids == i].mean()) for i, task in enumerate(tasks)}}

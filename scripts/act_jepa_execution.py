"""Closed-loop success of trained ACT-JEPA / baseline policies on point pushing under each way
of executing their chunks: open loop for `execute` steps, or ACT's temporal ensembling (queried
every step, overlapping chunks averaged). Same held-out seeds as the closed_loop evaluator.

    python scripts/act_jepa_execution.py runs/act_jepa runs/act --rollouts=100 \\
        --execute=10,1 --ensemble=0.01 [--json=results/act_jepa_execution.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from act_jepa_rollout import load_policy  # noqa: E402

from jepax.evaluators.closed_loop import ClosedLoop, success_rates  # noqa: E402


def success_by_mode(workdir: Path, rollouts: int, max_steps: int, executes,
                    ensembles) -> dict[str, dict[str, float]]:
    variant, policy = load_policy(workdir)
    block = ClosedLoop.DEFAULTS  # the evaluator's held-out seeds and tasks
    modes = {f"execute {k}": dict(execute=k) for k in executes}
    modes.update({f"ensemble {m:g}": dict(execute=1, ensemble=m) for m in ensembles})
    return {name: success_rates(variant, policy, rollouts=rollouts, max_steps=max_steps,
                                first_seed=block["first_seed"], tasks=block["tasks"], **kwargs)
            for name, kwargs in modes.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdirs", nargs="+", type=Path)
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument("--max_steps", type=int, default=100)
    parser.add_argument("--execute", default="10,1")
    parser.add_argument("--ensemble", default="0.01")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    executes = [int(k) for k in args.execute.split(",") if k]
    ensembles = [float(m) for m in args.ensemble.split(",") if m]
    results = {}
    for workdir in args.workdirs:
        results[str(workdir)] = success_by_mode(workdir, args.rollouts, args.max_steps,
                                                executes, ensembles)
        for mode, row in results[str(workdir)].items():
            print(f"{workdir}  {mode:>14}: success {row['success']:.2f}  push {row['push']:.2f}  "
                  f"reach {row['reach']:.2f}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

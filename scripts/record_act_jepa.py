"""Write ACT-JEPA's results table (closed-loop success, world-model probe RMSE, RankMe) for the
ACT-JEPA run, the action-chunking baseline run (jepa_weight=0), optionally the transfer run
(JEPA-only encoder, frozen, + trained action decoder), the untrained network and the probe on
the raw observation, between `<results>` markers; with ``--execution`` (the JSON of
scripts/act_jepa_execution.py) also closed-loop success per way of executing the chunks.

    python scripts/record_act_jepa.py --workdir=runs/act_jepa --baseline=runs/act \\
        [--jepa_only=runs/jepa_only --transfer=runs/transfer] \\
        [--execution=results/act_jepa_execution.json] --into=experiments/act_jepa.py \\
        [--note="shared machine"]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from record_results import (cpu_name, newest_eval, training_minutes,  # noqa: E402
                            write_between_markers)

COLUMNS = (("closed_loop_success", "success", ".2f"), ("closed_loop_push", "push", ".2f"),
           ("closed_loop_reach", "reach", ".2f"), ("world_model_rmse", "world-model RMSE", ".3f"),
           ("world_model_rmse_last", "RMSE at +30", ".3f"), ("rankme", "RankMe", ".1f"))


def rows(workdir: Path, baseline: Path, transfer: Path | None) -> dict[str, dict]:
    run, base = newest_eval(workdir), newest_eval(baseline)
    out = {"ACT-JEPA": run["pretrained"], "ACT (no JEPA branch)": base["pretrained"]}
    if transfer is not None:
        out["JEPA-only encoder (frozen) + action decoder"] = newest_eval(transfer)["pretrained"]
    out["random init"] = run["random init"]
    out["raw observation (probe only)"] = run.get("raw observation", {})
    return out


def _fmt(row, key, spec):
    return format(row[key], spec) if isinstance(row.get(key), (int, float)) else "-"


def footer(name: str, workdir: Path) -> str:
    config = json.loads((workdir / "config.json").read_text())
    minutes = training_minutes(workdir)
    evaluated = config["eval"]["evaluators"]
    rollouts = (f"{config['evals']['closed_loop']['rollouts']} closed-loop rollouts"
                if evaluated is None or "closed_loop" in evaluated else "no closed loop")
    return (f"{name}: {newest_eval(workdir)['step']} steps of batch {config['train']['batch_size']}"
            f" in {minutes:.1f} min of training; {rollouts}.")


def execution_table(results: dict, names: dict[str, str]) -> list[str]:
    """Success (push / reach) of each run (rows) under each execution mode (columns)."""
    modes = list(next(iter(results.values())))
    lines = ["| policy | " + " | ".join(modes) + " |", "| --- |" + " --- |" * len(modes)]
    for path, by_mode in results.items():
        cells = [f"{r['success']:.2f} ({r['push']:.2f} / {r['reach']:.2f})"
                 for r in by_mode.values()]
        lines.append(f"| {names.get(path, path)} | " + " | ".join(cells) + " |")
    return lines


def table(workdir: Path, baseline: Path, transfer: Path | None, note: str,
          jepa_only: Path | None = None, execution: Path | None = None) -> list[str]:
    table_rows = rows(workdir, baseline, transfer)
    lines = ["| policy | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "| --- |" + " --- |" * len(COLUMNS)]
    for name, row in table_rows.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(row, k, s) for k, _, s in COLUMNS) + " |")
    lines.append("")
    runs = {"ACT-JEPA": workdir, "baseline": baseline, "JEPA-only": jepa_only,
            "transfer": transfer}
    lines += [footer(name, path) for name, path in runs.items() if path is not None]
    lines.append(f"Machine: {cpu_name()}" + (f"; {note}" if note else "") + ".")
    if execution is not None:
        names = {str(path): name for name, path in runs.items() if path is not None}
        lines += ["", "Closed-loop success (push / reach) by how chunks are executed, on the",
                  "same checkpoints and seeds (scripts/act_jepa_execution.py):", ""]
        lines += execution_table(json.loads(execution.read_text()), names)
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--baseline", required=True, type=Path)
    parser.add_argument("--jepa_only", type=Path, default=None)
    parser.add_argument("--transfer", type=Path, default=None)
    parser.add_argument("--execution", type=Path, default=None)
    parser.add_argument("--into", required=True, type=Path)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    write_between_markers(args.into, table(args.workdir, args.baseline, args.transfer, args.note,
                                           args.jepa_only, args.execution))


if __name__ == "__main__":
    main()

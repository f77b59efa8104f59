"""Write A-JEPA's downstream table (spoken digits on held-out voices and phrase identification;
linear probe and fine-tuning; pretrained vs the no-curriculum ablation vs random init vs MFCC +
logistic regression) between `<results>` markers.

    python scripts/record_a_jepa.py --workdir=runs/a_jepa --ablation=runs/a_jepa_no_curriculum \\
        --into=experiments/a_jepa.py [--note="shared 2-core machine"]

Reads the newest results/eval_step*.json of each run (written by the downstream and rankme
evaluators); the ablation column is left out when --ablation is not given."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from record_results import (cpu_name, newest_eval, training_minutes,  # noqa: E402
                            write_between_markers)

from data_pipelines.speech_tasks import DIGITS  # noqa: E402
from jepax.evaluators.report import eval_settings  # noqa: E402

TASKS = {"digits": "spoken digits, held-out voices", "phrases": "Asterisk phrases, held-out speeds",
         "folder": "your folder"}
MODES = {"probe": "linear probe", "finetune": "fine-tune"}
BASELINE = "MFCC + logistic regression"


def columns(run: dict, ablation: dict | None) -> dict[str, dict]:
    out = {"A-JEPA": run.get("pretrained", {})}
    if ablation is not None:
        out["A-JEPA, random blocks only"] = ablation.get("pretrained", {})
    out["random init"] = run.get("random init", {})
    out[BASELINE] = run.get(BASELINE, {})
    return out


def chance(config: dict, task: str) -> str:
    classes = {"digits": len(DIGITS), "phrases": config["data"]["phrases"]["classes"]}.get(task)
    return f" (chance {1 / classes:.3f})" if classes else ""


def table(workdir: Path, ablation_dir: Path | None, note: str) -> list[str]:
    run = newest_eval(workdir)
    ablation = newest_eval(ablation_dir) if ablation_dir else None
    config = settings(workdir, run)
    cols = columns(run, ablation)
    fmt = lambda row, key, spec=".3f": (format(row[key], spec)
                                        if isinstance(row.get(key), (int, float)) else "-")
    lines = ["| accuracy | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for task, what in TASKS.items():
        for mode, how in MODES.items():
            key = f"{task}_{mode}_acc"
            if any(key in row for row in cols.values()):
                lines.append(f"| {what}: {how}{chance(config, task)} | "
                             + " | ".join(fmt(row, key) for row in cols.values()) + " |")
    lines.append("| RankMe (test features) | "
                 + " | ".join(fmt(row, "rankme", ".1f") for row in cols.values()) + " |")
    lines.append("")
    minutes = training_minutes(workdir)
    lines.append(f"{run['step']} steps of batch {config['train']['batch_size']} "
                 f"({minutes:.1f} min of training) on {cpu_name()}"
                 + (f"; {note}" if note else "") + ".")
    if ablation is not None:
        other = settings(ablation_dir, ablation)
        differs = sorted(k for k in _flat(config).keys() | _flat(other).keys()
                         if _flat(config).get(k) != _flat(other).get(k) and k != "name")
        lines.append(f"Ablation column: {ablation['step']} steps with mask.kind="
                     f"{other['mask']['kind']!r}; settings that differ from the main run: "
                     f"{', '.join(differs) or 'none'}.")
    return lines


def settings(run_dir: Path, result: dict) -> dict:
    """The run's config with the evaluator settings its newest evaluation ran with (a
    re-evaluated run's config.json keeps those it was trained with)."""
    config = json.loads((run_dir / "config.json").read_text())
    return {**config, "evals": eval_settings(run_dir, result["step"])}


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--ablation", type=Path, default=None)
    parser.add_argument("--into", required=True, type=Path)
    parser.add_argument("--note", default="", help="e.g. how the run differs from the default")
    args = parser.parse_args()
    write_between_markers(args.into, table(args.workdir, args.ablation, args.note))


if __name__ == "__main__":
    main()

"""Write an S-JEPA run's downstream table (3 heads x probe / fine-tune, pretrained vs random init,
and the classical pipelines) between `<results>` markers, and plot it.

    python scripts/record_s_jepa.py --workdir=runs/s_jepa --into=experiments/s_jepa.py

Reads the newest results/eval_step*.json of the run (written by the eeg_downstream evaluator);
writes the table as results/s_jepa/downstream.md and its bar chart as
results/s_jepa/downstream.png (heads x probe / fine-tune; pretrained, random init and the
classical pipeline's level), and the plot also into the run's own results/ folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from record_results import (cpu_name, newest_eval, training_minutes,  # noqa: E402
                            write_between_markers)

from jepax.evaluators.report import eval_settings  # noqa: E402

HEADS = ("contextual", "post_local", "pre_local")
MODES = {"probe": "linear probe", "finetune": "fine-tune"}
TASKS = {"mi": "MI accuracy", "erp": "ERP ROC-AUC"}
ROWS = ("pretrained", "random init")
RESULTS = Path(__file__).resolve().parents[1] / "results" / "s_jepa"


def table(workdir: Path) -> list[str]:
    result = newest_eval(workdir)
    classical = next((v for k, v in result.items() if k.startswith("classical")), {})
    fmt = lambda row, key: f"{row[key]:.3f}" if isinstance(row.get(key), (int, float)) else "-"
    header = "| head, training | " + " | ".join(f"{TASKS[t]}: {r}" for t in TASKS for r in ROWS)
    lines = [header + " |", "| --- |" + " --- |" * (len(TASKS) * len(ROWS))]
    for head in HEADS:
        for mode, mode_name in MODES.items():
            cells = [fmt(result.get(r, {}), f"{t}_{head}_{mode}") for t in TASKS for r in ROWS]
            lines.append(f"| {head.replace('_', '-')}, {mode_name} | " + " | ".join(cells) + " |")
    cells = [fmt(classical, f"{t}_classical") if r == ROWS[0] else "" for t in TASKS for r in ROWS]
    lines.append("| CSP + LDA (MI) / xDAWN + shrinkage LDA (ERP) | " + " | ".join(cells) + " |")
    config = json.loads((workdir / "config.json").read_text())
    ranks = ", ".join(f"{k} {v['rankme']:.1f}" for k, v in result.items()
                      if isinstance(v, dict) and "rankme" in v)
    # a re-evaluated run's config.json keeps the settings it was trained with
    block = eval_settings(workdir, result["step"])["downstream"]
    lines += ["", f"{result['step']} steps of batch {config['train']['batch_size']} in "
              f"{training_minutes(workdir):.1f} min of training on {cpu_name()}, shared with "
              "other jobs; "
              f"{block['folds']}-fold CV per held-out subject ({config['data']['heldout_subjects']}"
              f" subjects); probe: the head fit to convergence (L-BFGS, {block['probe_steps']} "
              f"steps), fine-tune: {block['finetune_epochs']} epochs at lr {block['finetune_lr']:g}"
              f". Chance: 0.5 on both tasks. RankMe of pooled features (validation windows): {ranks}."]
    if any("| - " in line for line in lines):
        lines[-1] += " '-': not evaluated in this run."
    return lines


def plot(workdir: Path, paths: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    result = newest_eval(workdir)
    classical = next((v for k, v in result.items() if k.startswith("classical")), {})
    fig, axes = plt.subplots(1, len(TASKS), figsize=(11, 3.8))
    labels = [f"{h.replace('_', '-')}\n{MODES[m]}" for h in HEADS for m in MODES]
    x = np.arange(len(labels))
    for ax, (task, name) in zip(axes, TASKS.items()):
        for i, row in enumerate(ROWS):
            values = [result.get(row, {}).get(f"{task}_{h}_{m}", np.nan) for h in HEADS for m in MODES]
            ax.bar(x + (i - 0.5) * 0.38, values, 0.38, label=row)
        if f"{task}_classical" in classical:
            ax.axhline(classical[f"{task}_classical"], color="k", ls="--",
                       label="CSP + LDA" if task == "mi" else "xDAWN + LDA")
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_title(f"{name} (held-out subjects)")
        ax.set_ylim(0.3, 1.0)
        ax.legend(fontsize=7)
    fig.suptitle(f"S-JEPA downstream, step {result['step']}: within-subject CV on the "
                 "held-out subjects (grey: chance)", fontsize=9)
    fig.tight_layout()
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--into", type=Path, help="also write the table between <results> markers")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder for downstream.md and downstream.png")
    args = parser.parse_args()
    lines = table(args.workdir)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "downstream.md").write_text("\n".join(lines) + "\n")
    if args.into:
        write_between_markers(args.into, lines)
    plot(args.workdir, [args.workdir / "results" / "downstream.png",
                        args.results / "downstream.png"])
    print("\n".join(lines) + f"\n\nwrote {args.results / 'downstream.md'} and downstream.png")


if __name__ == "__main__":
    main()

"""Brain-JEPA's downstream table and plot from a run's newest results/eval_step*.json, with the
paper's headline numbers beside it; optionally written into a file between <results> markers.

    python scripts/record_brain_jepa.py --workdir=runs/brain_jepa                # results/ only
    python scripts/record_brain_jepa.py --workdir=runs/brain_jepa --into=experiments/brain_jepa.py

Writes <workdir>/results/downstream.md and downstream.png (one panel per task: pretrained,
random init, raw ROI series and FC, probe and fine-tuned)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages

from jepax.config import load_config  # noqa: E402
from jepax.metrics import read_metrics  # noqa: E402
from scripts.record_results import (cpu_name, newest_eval, training_minutes,  # noqa: E402
                                    write_between_markers)

CONFIG = str(Path(__file__).resolve().parents[1] / "experiments" / "brain_jepa.py")
ROWS = ("pretrained", "random init", "raw ROI series", "FC")
# (metric key, column title, format); a missing metric shows as an empty cell.
COLUMNS = (
    ("fingerprint_acc", "fingerprint acc, probe", ".3f"),
    ("fingerprint_roi_acc", "fingerprint acc, probe per ROI", ".3f"),
    ("fingerprint_short_acc", "short-window fingerprint, probe", ".3f"),
    ("fingerprint_short_roi_acc", "short-window fingerprint, probe per ROI", ".3f"),
    ("fingerprint_ft_acc", "fingerprint acc, fine-tuned", ".3f"),
    ("coupling_r", "coupling r, probe", ".3f"),
    ("coupling_mse", "coupling MSE, probe", ".3f"),
    ("coupling_roi_r", "coupling r, probe per ROI", ".3f"),
    ("coupling_roi_mse", "coupling MSE, probe per ROI", ".3f"),
    ("coupling_ft_r", "coupling r, fine-tuned", ".3f"),
    ("coupling_ft_mse", "coupling MSE, fine-tuned", ".3f"),
    ("rankme", "RankMe", ".1f"),
)
PAPER = ("Paper, for context only (Dong et al. 2024, Table 1: HCP-Aging, 656 subjects, 450 ROIs, "
         "ViT-B pretrained on ~32k UK Biobank scans, fine-tuned; different data, tasks and "
         "scale): age Pearson r ~0.84, sex accuracy ~81.5%.")


def table(workdir: Path, shared: bool = False) -> list[str]:
    result = newest_eval(workdir)
    config = json.loads((workdir / "config.json").read_text())
    logged = [r for r in read_metrics(workdir) if "step_s" in r]
    waits = [r["data_wait_frac"] for r in logged[1:] if "data_wait_frac" in r]  # not compile
    wait = f", data wait {sum(waits) / len(waits):.1%} of step time" if waits else ""
    machine = cpu_name() + (", shared with other jobs (an idle machine is faster)" if shared else "")
    default_steps = load_config(CONFIG).train.steps
    steps = config["train"]["steps"]
    reduced = (f" (not the default config's {default_steps}: fewer to fit the time available; "
               f"warmup {config['optim']['warmup_steps']})" if steps != default_steps else "")
    present = [c for c in COLUMNS if any(c[0] in result.get(r, {}) for r in ROWS)]
    lines = [f"| features (step {result['step']}) | " + " | ".join(c[1] for c in present) + " |",
             "| --- |" + " --- |" * len(present)]
    for row in ROWS:
        if row not in result:
            continue
        cells = [format(result[row][k], f) if isinstance(result[row].get(k), (int, float)) else ""
                 for k, _, f in present]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    d, m = config["data"], config["model"]
    pre = result.get("pretrained", {})
    lines += ["", f"{result['step']} steps{reduced} of batch {config['train']['batch_size']} "
              f"({m['width']}x{m['depth']} ViT, {d['rois']} ROIs x {d['frames']} frames, patch "
              f"{m['patch']}) in {training_minutes(workdir):.1f} min of training{wait} on {machine}. "
              f"Collapse check of the pretrained features: spread "
              f"{pre.get('collapse_spread', float('nan')):.3g}, centred rank "
              f"{pre.get('collapse_rank', float('nan')):.1f}. Fingerprint chance 1/7 = 0.143; "
              "coupling MSE is in units of the label variance (1 = predicting the mean).",
              "", PAPER]
    return lines


def plot(workdir: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = newest_eval(workdir)
    panels = [("subject fingerprint (accuracy)",
               ("fingerprint_acc", "fingerprint_roi_acc", "fingerprint_short_acc",
                "fingerprint_short_roi_acc", "fingerprint_ft_acc"),
               ("probe", "probe\nper ROI", "short\nprobe", "short probe\nper ROI", "fine-\ntuned")),
              ("global coupling (Pearson r)", ("coupling_r", "coupling_roi_r", "coupling_ft_r"),
               ("probe", "probe\nper ROI", "fine-\ntuned"))]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [5, 3]})
    for ax, (title, keys, labels) in zip(axes, panels):
        rows = [r for r in ROWS if r in result]
        width = 0.8 / len(rows)
        for i, row in enumerate(rows):
            values = [result[row].get(k, float("nan")) for k in keys]
            ax.bar([j + i * width for j in range(len(keys))], values, width, label=row)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))], labels)
        ax.set_title(title)
        ax.axhline(0, color="black", linewidth=0.5)
    axes[0].axhline(1 / 7, color="gray", linestyle=":", label="chance")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Brain-JEPA downstream, step {result['step']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--into", type=Path, help="also write the table between <results> markers")
    parser.add_argument("--shared", action="store_true", help="say the machine was shared")
    args = parser.parse_args()
    lines = table(args.workdir, args.shared)
    results = args.workdir / "results"
    (results / "downstream.md").write_text("\n".join(lines) + "\n")
    plot(args.workdir, results / "downstream.png")
    print("\n".join(lines))
    print(f"\nwrote {results / 'downstream.md'} and {results / 'downstream.png'}")
    if args.into:
        write_between_markers(args.into, lines)


if __name__ == "__main__":
    main()

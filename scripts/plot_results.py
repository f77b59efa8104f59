"""Plots of a run for its results folder: the training loss and the newest evaluation, one
group of bars per metric with a bar per row (pretrained, random init, baselines) and error
bars where the evaluator reports a std (e.g. the SVM over evaluation seeds).

    python scripts/plot_results.py --workdir=runs/point_jepa

Writes <workdir>/results/loss.png and <workdir>/results/eval.png; `--metrics` picks and orders
the metrics (default: every accuracy-like metric the rows share). `--curve=METRIC` also plots
that metric of every evaluation during training against minutes of training, pretrained vs the
comparison rows (results/<METRIC>_curve.png; e.g. I-JEPA's `probe_10k_acc`)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jepax.metrics import read_metrics  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from record_results import newest_eval  # noqa: E402

HIDDEN = re.compile(r"(_std|_max|_seeds|_train_acc)$")


def plot_loss(workdir: Path) -> Path:
    records = [r for r in read_metrics(workdir) if "loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in records], [r["loss"] for r in records], lw=1)
    ax.set(xlabel="step", ylabel="training loss", title=workdir.name)
    ax.grid(alpha=0.3)
    out = workdir / "results" / "loss.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_eval(workdir: Path, metrics: list[str] | None = None) -> Path:
    result = newest_eval(workdir)
    rows = {k: v for k, v in result.items() if k != "step"}
    if metrics is None:
        shared = set.intersection(*(set(r) for r in rows.values()))
        metrics = sorted(k for k in shared if not HIDDEN.search(k) and k != "rankme")
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(metrics), 3.8))
    width = 0.8 / len(rows)
    for i, (name, row) in enumerate(rows.items()):
        values = [row.get(m, np.nan) for m in metrics]
        errors = [row.get(f"{m}_std", 0.0) for m in metrics]
        ax.bar(np.arange(len(metrics)) + (i - (len(rows) - 1) / 2) * width, values, width,
               yerr=errors, capsize=3, label=name)
    ax.set_xticks(np.arange(len(metrics)), [m.replace("_", " ") for m in metrics])
    ax.set(ylim=(0, 1), ylabel="score", title=f"{workdir.name}, step {result['step']}")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    out = workdir / "results" / "eval.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_curve(workdir: Path, metric: str) -> Path:
    """`metric` at every evaluation of the run against cumulative minutes of training."""
    evals = sorted((json.loads(p.read_text())
                    for p in (workdir / "results").glob("eval_step*.json")), key=lambda r: r["step"])
    evals = [r for r in evals if metric in r["pretrained"]]
    if not evals:
        raise SystemExit(f"no evaluation in {workdir}/results has {metric!r}")
    minutes, elapsed = {}, 0.0
    for r in read_metrics(workdir):
        elapsed += r.get("step_s", 0.0)
        minutes[r["step"]] = elapsed / 60
    # an evaluation at an unlogged step: the minutes of the last logged step before it
    at = lambda step: minutes.get(step, max((m for s, m in minutes.items() if s <= step),
                                            default=0))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([at(r["step"]) for r in evals], [r["pretrained"][metric] for r in evals], "o-",
            label="pretrained")
    for name, row in evals[-1].items():  # fixed rows: flat lines
        if name not in ("step", "pretrained") and metric in row:
            ax.axhline(row[metric], ls="--", lw=1, color=f"C{len(ax.lines)}", label=name)
    ax.set(xlabel="minutes of training", ylabel=metric.replace("_", " "), title=workdir.name)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    out = workdir / "results" / f"{metric}_curve.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--metrics", nargs="*", default=None)
    parser.add_argument("--curve", default=None, help="a metric evaluated during training")
    args = parser.parse_args()
    print(plot_loss(args.workdir), plot_eval(args.workdir, args.metrics))
    if args.curve:
        print(plot_curve(args.workdir, args.curve))


if __name__ == "__main__":
    main()

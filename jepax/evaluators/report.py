"""Run the configured evaluators on features and write JSON + markdown results."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from jepax.evaluators.knn import knn
from jepax.evaluators.linear_probe import linear_probe
from jepax.evaluators.rankme import rankme

EVALUATORS = ("linear_probe", "knn", "rankme")


def evaluate_features(train_x, train_y, test_x, test_y, eval_config) -> dict:
    unknown = set(eval_config.evaluators) - set(EVALUATORS)
    if unknown:
        raise ValueError(f"unknown evaluators {sorted(unknown)}; available: {EVALUATORS}")
    out = {}
    if "linear_probe" in eval_config.evaluators:
        out.update(linear_probe(train_x, train_y, test_x, test_y, steps=eval_config.probe_steps,
                                weight_decay=eval_config.probe_weight_decay))
    if "knn" in eval_config.evaluators:
        out.update(knn(train_x, train_y, test_x, test_y, k=eval_config.knn_k,
                       temperature=eval_config.knn_temperature))
    if "rankme" in eval_config.evaluators:
        out.update(rankme(train_x))
    return out


COLUMNS = ("linear_probe_acc", "knn_acc", "rankme")


def write_results(workdir: str | Path, step: int, rows: dict[str, dict]) -> Path:
    """rows: name -> metrics (e.g. 'pretrained', 'random init', 'raw pixels'). Writes
    results/eval_step<step>.json and appends to results/eval.md; returns the JSON path."""
    results = Path(workdir) / "results"
    if jax.process_index() != 0:
        return results / f"eval_step{step}.json"
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"eval_step{step}.json"
    path.write_text(json.dumps({"step": step, **rows}, indent=2))
    table = [f"| features (step {step}) | " + " | ".join(COLUMNS) + " |",
             "| --- |" + " --- |" * len(COLUMNS)]
    for name, metrics in rows.items():
        cells = [f"{metrics[c]:.4f}" if isinstance(metrics.get(c), float) else "" for c in COLUMNS]
        table.append(f"| {name} | " + " | ".join(cells) + " |")
    with open(results / "eval.md", "a") as f:
        f.write("\n".join(table) + "\n\n")
    return path


def pixel_features(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0

"""Results files: one JSON per evaluation and a growing markdown table (results/eval.md)."""

from __future__ import annotations

import json
from pathlib import Path

import jax


def write_results(workdir: str | Path, step: int, rows: dict[str, dict],
                  columns: tuple[str, ...]) -> Path:
    """rows: name -> metrics (e.g. 'pretrained', 'random init', 'raw pixels'). Writes
    results/eval_step<step>.json and appends `columns` of every row to results/eval.md;
    returns the JSON path."""
    results = Path(workdir) / "results"
    path = results / f"eval_step{step}.json"
    if jax.process_index() != 0:
        return path
    results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"step": step, **rows}, indent=2))
    table = [f"| outputs (step {step}) | " + " | ".join(columns) + " |",
             "| --- |" + " --- |" * len(columns)]
    for name, metrics in rows.items():
        cells = [f"{metrics[c]:.4f}" if isinstance(metrics.get(c), float) else "" for c in columns]
        table.append(f"| {name} | " + " | ".join(cells) + " |")
    with open(results / "eval.md", "a") as f:
        f.write("\n".join(table) + "\n\n")
    return path

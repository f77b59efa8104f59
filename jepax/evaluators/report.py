"""Results files: one JSON per evaluation and a growing markdown table (results/eval.md)."""

from __future__ import annotations

import json
from pathlib import Path

import jax


def write_results(workdir: str | Path, step: int, rows: dict[str, dict],
                  columns: tuple[str, ...], settings: dict[str, dict]) -> Path:
    """rows: name -> metrics (e.g. 'pretrained', 'random init', 'raw pixels'); settings:
    evaluator -> the config block it ran with. Writes results/eval_step<step>.json, the
    settings beside it (`eval_settings`) and appends `columns` of every row to
    results/eval.md; returns the JSON path."""
    results = Path(workdir) / "results"
    path = results / f"eval_step{step}.json"
    if jax.process_index() != 0:
        return path
    _settings_path(workdir, step).parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"step": step, **rows}, indent=2))
    _settings_path(workdir, step).write_text(json.dumps(settings, indent=2))
    table = [f"| outputs (step {step}) | " + " | ".join(columns) + " |",
             "| --- |" + " --- |" * len(columns)]
    for name, metrics in rows.items():
        cells = [f"{metrics[c]:.4f}" if isinstance(metrics.get(c), float) else "" for c in columns]
        table.append(f"| {name} | " + " | ".join(cells) + " |")
    with open(results / "eval.md", "a") as f:
        f.write("\n".join(table) + "\n\n")
    return path


def eval_settings(workdir: str | Path, step: int) -> dict[str, dict]:
    """The evaluator settings the evaluation at `step` ran with. A finished run re-evaluated
    with new settings overwrites its results, so these, not the run's config.json, describe
    them; results written before settings were recorded fall back to config.json's."""
    path = _settings_path(workdir, step)
    if path.exists():
        return json.loads(path.read_text())
    return json.loads((Path(workdir) / "config.json").read_text())["evals"]


def _settings_path(workdir: str | Path, step: int) -> Path:
    # a subfolder: readers glob results/eval_step*.json and a study's results/<study>.json
    return Path(workdir) / "results" / "settings" / f"eval_step{step}.json"

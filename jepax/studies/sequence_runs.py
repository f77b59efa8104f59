"""What the sequence studies (copying, arithmetic) share: one run = one sequence_lm network
trained by the one loop in its own workdir, and the numbers read back from it.

A study config has ``run`` (the base sequence_lm run config: optimizer, batch, evaluators),
``models`` (name -> overrides of ``run.model``) and its experiments; :func:`run_config` merges
them, :func:`train_or_load` trains (or resumes) and returns the final evaluation, and the readers
return the sample-efficiency curve and the training throughput from the run's files.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from jepax import train, variants
from jepax import config as config_lib
from jepax.metrics import read_metrics

log = logging.getLogger("jepax")

# The exact_match evaluator blocks every sequence study's run config has: accuracy by length at
# the end of training, and at the longest training length during training.
LENGTH_BLOCK, TRAIN_BLOCK = "lengths", "in_distribution"


def run_config(study_config, model: str, *, name: str, data: dict, steps: int):
    """study_config.run with the model's overrides, `data` overrides and `steps`."""
    if model not in study_config.models:
        raise config_lib.ConfigError(f"model {model!r} is not in config.models; defined: "
                                     f"{', '.join(study_config.models)}")
    rc = study_config.run.copy_and_resolve_references()
    rc.name = name
    rc.seed = study_config.seed
    rc.model.update(dict(study_config.models[model]))
    rc.data.update(dict(data))
    rc.train.steps = int(steps)
    return rc


def check(run_configs) -> dict[str, int]:
    """Validate every run before training any (one clear error, before minutes of training);
    returns each run's parameter count."""
    counts = {}
    for name, rc in run_configs.items():
        config_lib.validate(rc)
        counts[name] = variants.build(rc).num_params()
    return counts


def train_or_load(rc, workdir: Path) -> dict:
    """The final evaluation rows of the run in `workdir`: read back when that run already
    finished with exactly this config, else trained (or resumed) by jepax.train.run."""
    final = workdir / "results" / f"eval_step{rc.train.steps}.json"
    saved = workdir / "config.json"
    if final.exists() and saved.exists() and json.loads(saved.read_text()) == json.loads(
            rc.to_json()):
        return {k: v for k, v in json.loads(final.read_text()).items() if k != "step"}
    summary = train.run(rc, workdir)
    if summary.get("preempted"):
        raise SystemExit(f"preempted during {workdir}; rerun the same command to resume")
    return summary["eval"]


def train_all(study: str, configs: dict, counts: dict, workdir: Path, target: float) -> dict:
    """Train (or read back) every (experiment, run) of a study in
    `workdir/<experiment>/<run>`, in order; returns {experiment: {run: measure(...)}}."""
    results: dict[str, dict[str, dict]] = {}
    for i, ((experiment, name), rc) in enumerate(configs.items()):
        params = counts[f"{experiment}/{name}"]
        log.info("%s: run %d of %d: %s / %s (%d parameters)", study, i + 1, len(configs),
                 experiment, name, params)
        run_dir = workdir / experiment / name
        rows = train_or_load(rc, run_dir)
        results.setdefault(experiment, {})[name] = measure(rc, run_dir, rows, params, target)
    return results


def reaches(results: dict) -> dict:
    """{experiment: {run: reach}} of train_all's results: the headline of a study."""
    return {e: {name: m["reach"] for name, m in runs.items()} for e, runs in results.items()}


def curve(workdir: Path, metric: str, row: str = "pretrained") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of `metric` in every periodic evaluation of the run."""
    points = []
    for path in (workdir / "results").glob("eval_step*.json"):
        result = json.loads(path.read_text())
        if metric in result.get(row, {}):
            points.append((int(re.findall(r"\d+", path.stem)[-1]), result[row][metric]))
    points.sort()
    return np.array([p[0] for p in points]), np.array([p[1] for p in points])


def first_reaching(steps, values, target: float) -> int | None:
    """The first step whose value is >= target (None: never)."""
    hit = np.nonzero(np.asarray(values) >= target)[0]
    return int(steps[hit[0]]) if len(hit) else None


def throughput(workdir: Path, tokens_per_example: int, skip: float = 0.1) -> dict:
    """Median training speed of the run (its first `skip` of steps dropped as warm-up):
    examples/s and tokens/s (padded tokens: what the step computes), and the training time."""
    records = [r for r in read_metrics(workdir) if "step_s" in r]
    if not records:
        return {"examples_per_s": None, "tokens_per_s": None, "train_s": 0.0}
    step_s = np.array([r["step_s"] for r in records])
    examples = np.array([r["examples_per_s"] for r in records])[int(len(records) * skip):]
    rate = float(np.median(examples))
    return {"examples_per_s": rate, "tokens_per_s": rate * tokens_per_example,
            "train_s": float(step_s.sum())}


def measure(rc, run_dir: Path, rows: dict, params: int, target: float) -> dict:
    """One run's numbers: exact match by length (trained and at random init), reach, sample
    efficiency (examples seen until the in-distribution exact match reaches `target`; a packed
    row holds several examples), throughput and sizes."""
    from data_pipelines import sources

    final, chance = rows["pretrained"], rows.get("random init", {})
    steps, acc = curve(run_dir, f"{TRAIN_BLOCK}_exact_match")
    first = first_reaching(steps, acc, target)
    source = sources.get(rc.data, "train")
    per_step = rc.train.batch_size * source.examples_per_row()
    return {
        "arch": rc.model.arch,
        "positions": rc.model.positions if rc.model.arch == "transformer" else "-",
        "params": params, "state": state_numbers(rc.model),
        "by_length": _int_keys(final[f"{LENGTH_BLOCK}_by_length"]),
        "random_init_by_length": _int_keys(chance.get(f"{LENGTH_BLOCK}_by_length", {})),
        "reach": final[f"{LENGTH_BLOCK}_reach"],
        "train_lengths": list(rc.data.get("train_lengths", ())),
        "in_distribution": final[f"{TRAIN_BLOCK}_exact_match"],
        "curve_steps": steps, "curve_accuracy": acc, "examples_per_step": per_step,
        "examples_to_target": None if first is None else round(first * per_step),
        "examples_trained": round(rc.train.steps * per_step),
        **throughput(run_dir, source.length),
    }


def _int_keys(by_length: dict) -> dict[int, float]:
    """{length: accuracy} with int keys (read back from JSON they are strings)."""
    return {int(k): v for k, v in by_length.items()}


def state_numbers(model_config) -> str:
    """The recurrent state a model keeps per sequence, in numbers (a transformer's KV cache
    grows with the length instead)."""
    m = model_config
    if m.arch == "mamba":
        return str(m.depth * m.expand * m.width * m.state)
    if m.arch == "lstm":
        return str(m.depth * 2 * m.width)
    inner = m.heads * (m.head_dim or m.width // m.heads)
    return f"{2 * m.depth * inner} per token"  # keys and values of every layer


def length_figure(models: dict, title: str, *, xlabel: str, trained: int, trained_label: str):
    """Exact match against length, one line per run, and a dashed line at the longest length
    trained on."""
    from jepax.studies.report import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, m in models.items():
        lengths = sorted(m["by_length"])
        ax.plot(lengths, [m["by_length"][n] for n in lengths], marker="o", ms=3, label=name)
    ax.axvline(trained, color="gray", ls="--", lw=1, label=trained_label)
    ax.set(xlabel=xlabel, ylabel="exact match", ylim=(-0.03, 1.03), title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

"""Arithmetic length-generalization study: position encodings and train-set priming (Jelassi,
d'Ascoli, Domingo-Enrich, Wu, Li, Charton, "Length Generalization in Arithmetic Transformers",
2023).

Every network is a ``sequence_lm`` encoder trained by the one loop in
``<workdir>/<experiment>/<run>``; rerunning resumes (or reads back) every run. Experiments:

* ``addition``: one encoder per position encoding (``config.addition.models``), trained on
  operands up to the training length, exact match at every length up to the padded width;
* ``priming``: one encoding (``config.priming.model``) on multiplication, trained on the base
  lengths with ``count`` primed long examples added, for every training-set size and count:
  accuracy at the target length against the number of primed examples (the priming curve), the
  fewest primed examples that reach the threshold per training-set size, and one run primed at
  several target lengths at once (``config.priming.multi_lengths``).

Writes ``<workdir>/results/arithmetic.{json,md}`` and PNG plots; the paper's claims are checked
against the numbers in ``claims``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from jepax.config import ConfigError
from jepax.studies import report as report_lib
from jepax.studies import sequence_runs as runs

log = logging.getLogger("jepax")


def plan(config) -> dict[tuple[str, str], object]:
    """(experiment, run) -> run config."""
    out = {}
    add = config.addition
    for model in add.models:
        out["addition", model] = runs.run_config(
            config, model, name=f"arithmetic/addition/{model}", data=dict(add.data),
            steps=add.steps)
    p = config.priming
    for size in p.train_sizes:
        for count in p.counts:
            data = dict(p.data, train_size=size, prime_count=count,
                        prime_lengths=(p.target_length,) if count else ())
            out["priming", f"n{size}_p{count}"] = runs.run_config(
                config, p.model, name=f"arithmetic/priming/n{size}_p{count}", data=data,
                steps=p.steps)
    if p.multi_lengths:
        size, count = max(p.train_sizes), p.multi_count
        data = dict(p.data, train_size=size, prime_count=count,
                    prime_lengths=tuple(p.multi_lengths))
        out["priming_multi", f"n{size}_p{count}"] = runs.run_config(
            config, p.model, name=f"arithmetic/priming_multi/n{size}_p{count}", data=data,
            steps=p.steps)
    return out


def check_config(config) -> tuple[dict, dict[str, int]]:
    for block in (runs.LENGTH_BLOCK, runs.TRAIN_BLOCK):
        if block not in config.run.evals:
            raise ConfigError(f"config.run.evals needs the exact_match block {block!r}")
    p = config.priming
    for name, lengths in (("target_length", (p.target_length,)),
                          ("multi_lengths", tuple(p.multi_lengths))):
        if not set(lengths) <= set(p.data.eval_lengths):
            raise ConfigError(f"priming.{name}={lengths} must be among priming.data."
                              f"eval_lengths={tuple(p.data.eval_lengths)}")
    configs = plan(config)
    return configs, runs.check({"/".join(k): rc for k, rc in configs.items()})


def run(config, workdir: Path) -> dict:
    start = time.perf_counter()
    configs, counts = check_config(config)
    results = runs.train_all("arithmetic", configs, counts, workdir, config.threshold)
    for (experiment, name), rc in configs.items():
        results[experiment][name].update(
            train_size=rc.data.train_size, prime_count=rc.data.prime_count,
            prime_lengths=list(rc.data.prime_lengths),
            train_digits=[list(d) for d in rc.data.train_digits])
    report = report_lib.StudyReport(workdir, "arithmetic")
    if "addition" in results:
        report.figure(length_figure(results["addition"], "addition: exact match by length"),
                      "addition_accuracy")
    priming = results.get("priming", {})
    if priming:
        report.figure(priming_figure(priming, config.priming.target_length), "priming_curve")
        report.figure(length_figure(priming, "multiplication: exact match by length"),
                      "multiplication_accuracy")
    if "priming_multi" in results:
        report.figure(length_figure(results["priming_multi"],
                                    "multiplication primed at several lengths"),
                      "priming_multi_accuracy")
    summary = {"experiments": results, "claims": claims(results, config),
               "priming_needed": priming_needed(priming, config),
               "wall_seconds": time.perf_counter() - start}
    summary = report.finish(summary, markdown(results, summary, config))
    log.info("arithmetic: wrote %s in %.0fs", report.dir, summary["wall_seconds"])
    return {"results": str(report.dir), "claims": summary["claims"],
            "reach": runs.reaches(results)}


def at(m: dict, length: int) -> float:
    return m["by_length"].get(length, float("nan"))


def priming_needed(priming: dict, config) -> dict[int, int | None]:
    """Per training-set size: the fewest primed examples whose run reaches the threshold at the
    target length (None: none of the counts tried did)."""
    out = {}
    for size in config.priming.train_sizes:
        hits = sorted(m["prime_count"] for m in priming.values() if m["train_size"] == size
                      and at(m, config.priming.target_length) >= config.threshold)
        out[size] = hits[0] if hits else None
    return out


# -- the paper's claims against the measurements ---------------------------------------------------

def claims(results: dict, config) -> list[dict]:
    out = []
    add = results.get("addition", {})
    trained = max((m["train_digits"][0][1] for m in add.values()), default=0)
    ape = add.get("ape")
    rpe = {n: m for n, m in add.items() if m["positions"] in ("rpe_k", "rpe_kq")}
    if ape and rpe:
        longer = [n for n in ape["by_length"] if n > trained]
        out.append(dict(
            claim=f"addition: APE fails beyond the training length ({trained} digits)",
            measured=f"APE exact match at {trained + 1}..{max(longer)} digits: "
                     + ", ".join(f"{at(ape, n):.2f}" for n in longer),
            holds=bool(longer and max(at(ape, n) for n in longer) < config.threshold)))
        out.append(dict(
            claim="addition: RPE generalizes beyond the training length (paper: 5 -> 15 "
                  "digits)",
            measured=", ".join(f"{n} reaches {m['reach']} digits" for n, m in rpe.items())
            + f" (exact match >= {config.threshold:.0%} at every length up to it)",
            holds=bool(max(m["reach"] for m in rpe.values()) > trained)))
    p = config.priming
    priming = results.get("priming", {})
    if priming:
        for size in p.train_sizes:
            runs_n = sorted((m for m in priming.values() if m["train_size"] == size),
                            key=lambda m: m["prime_count"])
            if len(runs_n) < 2 or runs_n[0]["prime_count"]:
                continue
            base, best = runs_n[0], max(runs_n[1:], key=lambda m: at(m, p.target_length))
            out.append(dict(
                claim=f"multiplication ({size:,} training examples): without priming no "
                      f"generalization to {p.target_length} digits; a few primed examples "
                      "give it",
                measured=f"exact match at {p.target_length} digits: "
                         + ", ".join(f"{m['prime_count']} primed {at(m, p.target_length):.2f}"
                                     for m in runs_n),
                holds=bool(at(base, p.target_length) < config.threshold
                           <= at(best, p.target_length))))
        needed = priming_needed(priming, config)
        if len(needed) > 1:
            out.append(dict(
                claim="the number of primed examples needed grows with the training set "
                      "(paper: like its logarithm)",
                measured=", ".join(f"{size:,} examples: {n if n is not None else 'none tried'}"
                                   for size, n in needed.items()),
                holds=None))  # a few counts per size: read, not tested
    multi = results.get("priming_multi", {})
    for m in multi.values():
        out.append(dict(
            claim="priming at several target lengths at once generalizes to each of them",
            measured=", ".join(f"{n} digits {at(m, n):.2f}" for n in m["prime_lengths"]),
            holds=bool(min(at(m, n) for n in m["prime_lengths"]) >= config.threshold)))
    return out


# -- tables and plots ------------------------------------------------------------------------------

def markdown(results: dict, summary: dict, config) -> str:
    verdict = {True: "yes", False: "no", None: "see numbers"}
    parts = ["# Arithmetic length generalization", "",
             "## The paper's claims and what was measured", "",
             report_lib.markdown_table(["claim (paper)", "measured here", "holds"],
                                       [[c["claim"], c["measured"], verdict[c["holds"]]]
                                        for c in summary["claims"]]), ""]
    for experiment, models in results.items():
        lengths = sorted({n for m in models.values() for n in m["by_length"]})
        headers = ["run", "positions", "params", "tokens/s", "primed", "train set",
                   f"reach >= {config.threshold:.0%}", *[f"{n}" for n in lengths]]
        rows = [[name, m["positions"], f"{m['params']:,}",
                 "-" if m["tokens_per_s"] is None else f"{m['tokens_per_s']:,.0f}",
                 f"{m['prime_count']} x {m['prime_lengths']}" if m["prime_count"] else "0",
                 f"{m['train_size']:,}", m["reach"], *[f"{at(m, n):.2f}" for n in lengths]]
                for name, m in models.items()]
        parts += [f"## {experiment}: exact match by number of digits", "",
                  report_lib.markdown_table(headers, rows), ""]
    if summary["priming_needed"]:
        parts += [f"## priming: fewest primed examples reaching {config.threshold:.0%} at "
                  f"{config.priming.target_length} digits", "",
                  report_lib.markdown_table(
                      ["training examples", "primed examples needed"],
                      [[f"{size:,}", "none of " + str(tuple(config.priming.counts)) if n is None
                        else n] for size, n in summary["priming_needed"].items()]), ""]
    parts.append("tokens/s: median training throughput (padded tokens per second) on the "
                 "machine that ran the study.")
    return "\n".join(parts) + "\n"


def length_figure(models: dict, title: str):
    return runs.length_figure(models, title, xlabel="digits",
                              trained=max(m["train_digits"][0][1] for m in models.values()),
                              trained_label="longest training operand")


def priming_figure(priming: dict, target: int):
    plt = report_lib.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for size in sorted({m["train_size"] for m in priming.values()}):
        ms = sorted((m for m in priming.values() if m["train_size"] == size),
                    key=lambda m: m["prime_count"])
        counts = np.array([m["prime_count"] for m in ms], float)
        ax.plot(np.maximum(counts, 0.5), [at(m, target) for m in ms], marker="o",
                label=f"{size:,} training examples")
    ax.set_xscale("log")
    ax.set(xlabel="primed examples (0 drawn at 0.5)", ylabel=f"exact match at {target} digits",
           ylim=(-0.03, 1.03), title="multiplication: train-set priming")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

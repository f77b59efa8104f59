"""Deep linear JEPA vs MAE: which features each objective learns first.

Reproduces the analysis of Littwin, Saremi, Advani, Thilak, Nakkiran, Huang, Susskind, "How JEPA
Avoids Noisy Features: The Implicit Bias of Deep Linear Self Distillation Networks" (NeurIPS
2024, arXiv:2407.03475) with trained JAX networks next to the per-feature dynamics.

    theory.py       data model, per-feature ODEs, closed-form and critical times (and where the
                    ODEs stop holding)
    simulation.py   deep linear networks, JEPA / MAE losses, full-batch gradient descent
    compare.py      one run: a trained network next to its solved ODE on the same time grid
    experiments.py  config checks, the synthetic and Fashion-MNIST experiments, the claims
    report.py       this study's tables and plots

Paper's claims vs what jepax measures: see ``experiments/deep_linear.py`` (the numbers there come
from ``python -m jepax.main --config=experiments/deep_linear.py``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from jepax.studies.deep_linear.experiments import (SYNTHETIC, check_config, claims,
                                                   real_experiment, synthetic_experiment)
from jepax.studies.deep_linear.report import figures, markdown, strip_curves
from jepax.studies.report import StudyReport

log = logging.getLogger("jepax")


def run(config, workdir: Path) -> dict:
    """Run the experiments, write JSON, markdown and plots under <workdir>/results/."""
    check_config(config)
    start = time.perf_counter()
    report = StudyReport(workdir, "deep_linear")
    real = None
    if config.real.enabled:  # first: a missing dataset fails before minutes of synthetic runs
        log.info("deep_linear: fashion-mnist, depths %s", tuple(config.real.depths))
        real = real_experiment(config)
    synthetic = []
    for name in SYNTHETIC:
        log.info("deep_linear: %s, depths %s", name, tuple(config.model.depths))
        synthetic.append(synthetic_experiment(name, config.data[name], config.model.depths,
                                              config))
    spec = config.data.sequential
    log.info("deep_linear: sequential, depths %s", tuple(spec.depths))
    sequential = synthetic_experiment("sequential", spec, spec.depths, config)
    summary = {"claims": claims(*synthetic, sequential)}
    if real is not None:
        summary["fashion_mnist"] = strip_curves(real)
    # the ODEs' accuracy where their decoupling holds; "sequential" measures where it does not
    decoupled = [r for e in synthetic for r in e["runs"]]
    summary["max_rel_err_half_time"] = float(max(np.max(r["rel_err"]) for r in decoupled))
    summary["max_curve_dev"] = float(max(r["curve_max_dev"] for r in decoupled))
    summary["max_curve_time_err"] = float(max(r["curve_time_err"] for r in decoupled))
    summary["max_balance_residual"] = float(max(r["balance_residual"] for r in decoupled))
    synthetic.append(sequential)
    summary["experiments"] = {e["name"]: strip_curves(e) for e in synthetic}
    for stem, fig in figures(synthetic, real, summary):
        report.figure(fig, stem)
    text = markdown(synthetic + ([real] if real is not None else []), summary)
    summary["wall_seconds"] = time.perf_counter() - start
    summary = report.finish(summary, text)
    log.info("deep_linear: wrote %s in %.0fs", report.dir, summary["wall_seconds"])
    return {"results": str(report.dir), "claims": summary["claims"],
            "max_rel_err_half_time": summary["max_rel_err_half_time"],
            "max_curve_time_err": summary["max_curve_time_err"],
            "wall_seconds": summary["wall_seconds"]}

"""Optical-flow accuracy against ground truth: end-point error (EPE, the mean Euclidean
distance between estimated and true flow vectors, in pixels) over the valid pixels ('all',
occluded ones included, as Sintel reports it) and over the pixels visible in both frames
('noc'), plus KITTI's outlier rate Fl (EPE > 3 px and > 5% of the true flow's length).

Reads a row's estimated flow (B, H, W, 2) and the evaluation split's ground truth; a row
without flow (e.g. raw pixels) gets no entry.
"""

from __future__ import annotations

import numpy as np

from jepax.evaluators.base import check, examples_used


class FlowEPE:
    DEFAULTS = {"split": "synthetic_flow", "examples": None, "outputs": "flow",
                "target": "flow_gt", "valid": "flow_valid", "noc": "flow_noc"}

    def __init__(self, name, config_block):
        self.name, self.block = name, config_block
        self.every = int(config_block["every"])
        check(name, config_block, positive=("examples",), nonnegative=("every",))
        self.columns = (f"{name}_epe", f"{name}_epe_noc", f"{name}_fl")

    def check_data(self, data):
        from jepax.config import ConfigError

        used = examples_used(self.name, self.block, "split", "examples", data)
        missing = {self.block[k] for k in ("target", "valid", "noc")} - data.keys(self.block["split"])
        if missing:
            raise ConfigError(f"evals.{self.name}: the {self.block['split']!r} examples have no "
                              f"{sorted(missing)}; point --config.evals.{self.name}.split at a "
                              "split with ground-truth flow")
        return {"test": used}

    def evaluate(self, row):
        b = self.block
        data = row.data(b["split"], b["examples"])
        if b["outputs"] not in data:
            return {}
        return {f"{self.name}_{k}": v for k, v in end_point_errors(
            data[b["outputs"]], data[b["target"]], data[b["valid"]], data[b["noc"]]).items()}


def end_point_errors(flow, truth, valid, noc) -> dict:
    """EPE over `valid` pixels, over `valid & noc` pixels, and the Fl outlier fraction."""
    flow, truth = np.asarray(flow, np.float64), np.asarray(truth, np.float64)
    if flow.shape != truth.shape:
        raise ValueError(f"estimated flow {flow.shape} and ground truth {truth.shape} differ")
    valid = np.asarray(valid, bool)
    epe = np.linalg.norm(flow - truth, axis=-1)
    length = np.linalg.norm(truth, axis=-1)
    both = valid & np.asarray(noc, bool)
    outlier = (epe > 3.0) & (epe > 0.05 * length)
    return {"epe": float(epe[valid].mean()), "epe_noc": float(epe[both].mean()),
            "fl": float(outlier[valid].mean())}

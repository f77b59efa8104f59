"""Evaluate a run's frozen target encoder (and, once per run, two baselines: a randomly
initialised encoder and raw pixels) with the configured evaluators."""

from __future__ import annotations

import logging
import time
from typing import Callable

import jax
import numpy as np

from data_pipelines.images import image_source
from data_pipelines.pipeline import labelled_arrays
from jepax import sharding
from jepax.evaluators.report import evaluate_features, pixel_features, write_results

log = logging.getLogger("jepax")


class FeatureEvaluator:
    def __init__(self, config, variant, mesh, target_shardings, workdir,
                 poll: Callable[[], None] = lambda: None):
        self.config, self.variant, self.mesh, self.workdir = config, variant, mesh, workdir
        self.poll = poll  # called between batches: raises to abandon the evaluation
        self.features = jax.jit(variant.features, in_shardings=(
            target_shardings, sharding.batch_sharding(mesh)), out_shardings=sharding.replicated(mesh))
        self.data = None
        self.baselines = None

    def _arrays(self, split: str, limit):
        source = image_source(self.config.data, split)
        return labelled_arrays(source, limit, self.variant.eval_transform())

    def _extract(self, target, images: np.ndarray) -> np.ndarray:
        """Features for `images` in fixed-size batches (the last one padded)."""
        bs = self.config.eval.batch_size
        sh = sharding.batch_sharding(self.mesh)
        out = []
        for start in range(0, len(images), bs):
            self.poll()
            chunk = images[start:start + bs]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], bs - len(chunk), 0)])
            x = jax.make_array_from_callback(padded.shape, sh, lambda idx: padded[idx])
            out.append(np.asarray(jax.device_get(self.features(target, x)))[:len(chunk)])
        return np.concatenate(out)

    def _evaluate(self, target) -> dict:
        (xtr, ytr), (xte, yte) = self.data
        return evaluate_features(self._extract(target, xtr), ytr, self._extract(target, xte), yte,
                                 self.config.eval)

    def __call__(self, step: int, target, random_target_fn: Callable) -> dict:
        e = self.config.eval
        t0 = time.perf_counter()
        if self.data is None:
            self.data = (self._arrays("train", e.train_examples), self._arrays("test", e.test_examples))
        rows = {"pretrained": self._evaluate(target)}
        if self.baselines is None:
            (xtr, ytr), (xte, yte) = self.data
            self.baselines = {
                "random init": self._evaluate(random_target_fn()),
                "raw pixels": evaluate_features(pixel_features(xtr), ytr, pixel_features(xte),
                                                yte, e),
            }
        rows.update(self.baselines)
        write_results(self.workdir, step, rows)
        log.info("eval at step %d (%.1fs): %s", step, time.perf_counter() - t0,
                 "; ".join(f"{n}: " + ", ".join(f"{k}={v:.4f}" for k, v in r.items()
                                                 if isinstance(v, float)) for n, r in rows.items()))
        return rows

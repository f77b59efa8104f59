"""Run the configured evaluators (jepax.evaluators) on a run's model and its comparison rows.

Rows: 'pretrained' (the variant's eval_params of the current state), 'random init' (the same
model freshly initialised with another seed) and the variant's model-free baselines. Evaluation
data comes from the variant (eval_source + eval_example_fn); each (split, examples) subset is
loaded once per run, and each row's outputs on it are computed once per evaluation and shared by
every evaluator that reads them. Rows that do not change during training (random init,
baselines) are evaluated once per run.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import jax
import numpy as np

from data_pipelines.pipeline import eval_arrays
from jepax import evaluators as registry
from jepax import sharding
from jepax.evaluators.base import RANDOM_INIT, Row
from jepax.evaluators.report import write_results

log = logging.getLogger("jepax")


class EvalRunner:
    def __init__(self, config, variant, eval_param_shardings, mesh, workdir, *,
                 current_params: Callable[[], object], random_params: Callable[[], object],
                 poll: Callable[[], None] = lambda: None):
        """`current_params()`: what to evaluate now (the variant's eval_params of the train
        state); `random_params()`: the same for a fresh initialisation (called once)."""
        self.config, self.variant, self.mesh, self.workdir = config, variant, mesh, workdir
        self.current_params, self.random_params = current_params, random_params
        self.poll = poll  # called between batches: raises to abandon the evaluation
        self.evaluators = {name: registry.build(name, config.evals[name])
                           for name in registry.selected(config)}
        self.outputs_fn = jax.jit(variant.outputs, in_shardings=(
            eval_param_shardings, sharding.batch_sharding(mesh)),
            out_shardings=sharding.replicated(mesh))
        self._sources: dict[str, object] = {}
        self._arrays: dict[tuple, dict[str, np.ndarray]] = {}
        self._comparison: list[Row] | None = None  # random init + baselines, built once
        self._fixed: dict[tuple[str, str], dict] = {}  # (row, evaluator) -> metrics

    def __bool__(self) -> bool:
        return bool(self.evaluators)

    def due(self, step: int) -> bool:
        return any(e.every and step % e.every == 0 for e in self.evaluators.values())

    # -- data --------------------------------------------------------------------------------
    def source(self, split: str):
        """The variant's evaluation source for `split`, opened once per run."""
        if split not in self._sources:
            self._sources[split] = self.variant.eval_source(split)
        return self._sources[split]

    def size(self, split: str) -> int:
        return len(self.source(split))

    def keys(self, split: str) -> set[str]:
        transform = self.variant.eval_example_fn() or (lambda example: example)
        return set(transform(self.source(split)[0]))

    def check_data(self) -> None:
        """Before training: every selected evaluator can run on the evaluation data (splits
        exist and are not empty, settings such as k fit the number of examples)."""
        for evaluator in self.evaluators.values():
            if hasattr(evaluator, "check_data"):
                evaluator.check_data(self)

    def arrays(self, split: str, examples: int | None) -> dict[str, np.ndarray]:
        key = (split, examples)
        if key not in self._arrays:
            self._arrays[key] = eval_arrays(self.source(split), examples,
                                            self.variant.eval_example_fn())
        return self._arrays[key]

    def _extract(self, params, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The variant's outputs for every example, in fixed-size batches (the last padded)."""
        bs = self.config.eval.batch_size
        sh = sharding.batch_sharding(self.mesh)
        inputs = {k: arrays[k] for k in self.variant.eval_inputs if k in arrays}
        n = len(next(iter(inputs.values())))
        chunks = []
        for start in range(0, n, bs):
            self.poll()
            batch = {}
            for k, v in inputs.items():
                chunk = v[start:start + bs]
                padded = np.concatenate([chunk, np.repeat(chunk[-1:], bs - len(chunk), 0)])
                batch[k] = jax.make_array_from_callback(padded.shape, sh,
                                                        lambda idx, a=padded: a[idx])
            out = jax.device_get(self.outputs_fn(params, batch))
            chunks.append({k: np.asarray(v)[:min(bs, n - start)] for k, v in out.items()})
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

    def _row(self, name: str, outputs_of: Callable[[dict], dict], params=None) -> Row:
        cache = {}

        def data(split, examples):
            if (split, examples) not in cache:
                arrays = self.arrays(split, examples)
                cache[split, examples] = {**arrays, **outputs_of(arrays)}
            return cache[split, examples]

        return Row(name, data, params, self.variant if params is not None else None)

    def model_row(self, name: str, params) -> Row:
        return self._row(name, lambda arrays: self._extract(params, arrays), params)

    # -- evaluation --------------------------------------------------------------------------
    def __call__(self, step: int, final: bool = True) -> dict[str, dict]:
        """Run the evaluators (all when `final`, else those due at `step`); write and return
        the rows of results."""
        t0 = time.perf_counter()
        names = [n for n, e in self.evaluators.items()
                 if final or (e.every and step % e.every == 0)]
        log.info("evaluating at step %d: %s", step, ", ".join(names))
        rows = {"pretrained": {}}
        pretrained = self.model_row("pretrained", self.current_params())
        for n in names:
            rows["pretrained"].update(self.evaluators[n].evaluate(pretrained))
        if self._comparison is None:
            self._comparison = [self.model_row(RANDOM_INIT, self.random_params())] + [
                self._row(name, fn) for name, fn in self.variant.baselines().items()]
        for row in self._comparison:
            rows[row.name] = {}
            for n in names:
                if (row.name, n) not in self._fixed:
                    self._fixed[row.name, n] = self.evaluators[n].evaluate(row)
                rows[row.name].update(self._fixed[row.name, n])
        columns = tuple(c for n in names for c in self.evaluators[n].columns)
        write_results(self.workdir, step, rows, columns,
                      {n: self.config.evals[n].to_dict() for n in names})
        log.info("eval at step %d (%.1fs): %s", step, time.perf_counter() - t0,
                 "; ".join(f"{n}: " + ", ".join(f"{k}={v:.4f}" for k, v in r.items()
                                                 if isinstance(v, float)) for n, r in rows.items()))
        return rows


"""The variant contract: everything the training loop, the checkpoints and the evaluators need
from a JEPA variant (or a study's network), and nothing about its modality.

The loop calls these members and knows no images, signals, point clouds or tokens; a new
variant is one module implementing :class:`Variant`, registered in ``jepax.variants``.
``tests/test_variant_contract.py`` checks every registered variant against this protocol.

Data flow of one training batch::

    train_source()[i] -> example_fn(example, rng) -> batch of examples -> batch_fn(batch, rng)
      -> global arrays (keys in ``replicated_keys`` are replicated, the rest split over the
         mesh's batch axes) -> loss(params, target, batch, rng) inside the jitted step
      -> AdamW on params; target <- EMA of ema_source(params) (no target if it is None)

and of one evaluation::

    eval_source(split) -> eval_example_fn -> stacked host arrays
      -> outputs(eval_params(params, target), {k: arrays[k] for k in eval_inputs}) on device
      -> the evaluators (jepax.evaluators) read the outputs and host arrays they name;
         baselines() give the same outputs from the raw input, without a model.

Optional member: ``frozen``, a tuple of top-level keys of the params (e.g. pretrained encoders
a variant builds on): jepax.optim never changes those parameters.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import numpy as np

Params = Any            # a pytree of arrays (nested dicts)
Batch = Mapping[str, Any]
ExampleFn = Callable[[dict, np.random.Generator], dict]
BatchFn = Callable[[dict, np.random.Generator], dict]
Baseline = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


@runtime_checkable
class Variant(Protocol):
    """What a variant provides. Built as ``Variant(config)``; the constructor validates the
    config's variant-specific values and raises ``ConfigError`` naming the fix."""

    config: Any

    # -- parameters --------------------------------------------------------------------------
    def init_params(self, key) -> Params:
        """Fresh parameters (traced under jit with out_shardings: created sharded)."""

    def param_specs(self, mesh, rules) -> Any:
        """PartitionSpecs shaped like ``init_params``' output."""

    def ema_source(self, params: Params) -> Params | None:
        """The subtree of `params` the EMA target tracks, or None: no target (supervised
        networks, e.g. the sequence models of the studies). Also applied to sharding trees."""

    transfer_paths: tuple[str, ...]
    """Parts of the train state that ``train.init_from`` loads from another run, as paths
    ('params/encoder', 'target'); the rest starts fresh."""

    # -- training data -----------------------------------------------------------------------
    def train_source(self) -> Any:
        """A random-access source (``len``, ``[i] -> dict``) of training examples."""

    def example_fn(self) -> ExampleFn | None:
        """Per-example host transform (augmentation, masks), seeded per global example index."""

    def batch_fn(self) -> BatchFn | None:
        """Per-batch host transform (e.g. masks drawn once per batch), or None."""

    replicated_keys: frozenset[str]
    """Batch keys not split over the batch axes (per-batch tables, a montage, a vocabulary):
    every device gets the whole array. All other keys have the batch as leading axis."""

    # -- objective ---------------------------------------------------------------------------
    def loss(self, params: Params, target: Params | None, batch: Batch, rng) -> tuple[Any, dict]:
        """(scalar loss, dict of scalar metrics to log); pure and jit-traceable."""

    def flops_per_step(self, global_batch: int) -> float:
        """Analytic FLOPs of one train step (forward + backward), for throughput and MFU."""

    # -- evaluation --------------------------------------------------------------------------
    def eval_source(self, split: str) -> Any:
        """A random-access source of labelled examples for `split` (e.g. 'train', 'test')."""

    def eval_example_fn(self) -> Callable[[dict], dict] | None:
        """Deterministic host transform of one evaluation example (e.g. resize)."""

    eval_inputs: tuple[str, ...]
    """Keys of the evaluation arrays that ``outputs`` reads (the rest stay on the host). A
    variant with several kinds of evaluation split lists every key; ``outputs`` gets the ones
    the split at hand has."""

    def eval_params(self, params: Params, target: Params | None) -> Params:
        """What is evaluated: e.g. the EMA target encoder. Also applied to sharding trees."""

    def outputs(self, eval_params: Params, inputs: Batch) -> dict[str, Any]:
        """Per-example model outputs for evaluators, batch-leading (e.g. 'features': (B, D));
        jit-traceable."""

    def baselines(self) -> dict[str, Baseline]:
        """Model-free rows of the results table: name -> fn(host arrays) -> outputs with the
        same keys as ``outputs`` (e.g. 'raw pixels' -> flattened images as 'features')."""


def path_get(tree: Mapping, path: str):
    """``tree['params']['encoder']`` for 'params/encoder' ('' is the tree itself)."""
    for key in filter(None, path.split("/")):
        tree = tree[key]
    return tree


def path_set(tree: Mapping, path: str, value) -> dict:
    """A copy of `tree` with the subtree at `path` replaced (the tree's other nodes shared)."""
    keys = list(filter(None, path.split("/")))
    if not keys:
        return value
    head, rest = keys[0], "/".join(keys[1:])
    return {**tree, head: path_set(tree[head], rest, value)}

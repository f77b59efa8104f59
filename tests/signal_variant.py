"""Test-only variants on a 1-D signal modality: proof that the loop, checkpoints and evaluators
need nothing of images.

* ``signal_jepa``: predict the EMA target encoder's embeddings of a few signal patches from the
  others; masks are drawn once per batch and travel as replicated batch keys.
* ``signal_classifier``: a supervised encoder + linear head, with no EMA target.

Signals: sinusoids whose frequency is the class (4 classes), with random amplitude, a small
random phase and noise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from data_pipelines import sources
from jepax import evaluators, flops, variants
from jepax.config import ConfigError, base_config, finalize
from jepax.models.functional import Functional
from jepax.models.layers import dense_init, zeros
from jepax.models.vit import Encoder, Predictor

FREQUENCIES = (2.0, 3.5, 5.0, 7.0)  # cycles per signal, one per class


class Signals:
    """Deterministic per (seed, index) noisy sinusoids: {'signal': (length,), 'label'}."""

    def __init__(self, size: int, length: int, seed: int):
        self.size, self.length, self.seed = size, length, seed

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        rng = np.random.default_rng((self.seed, int(i)))
        label = int(i) % len(FREQUENCIES)
        t = np.arange(self.length) / self.length
        x = rng.uniform(0.5, 1.5) * np.sin(2 * np.pi * FREQUENCIES[label] * t + rng.uniform(0, 0.5))
        x = x + rng.normal(0, 0.3, self.length)
        return {"signal": x.astype(np.float32), "label": np.int32(label)}


def signal_source(data_config, split):
    return Signals(data_config.size if split == "train" else data_config.size // 4,
                   data_config.length, seed={"train": 0, "test": 1}[split])


class SignalPatches(nnx.Module):
    """(B, L) signals -> (B, L / p, p) patches -> linear embedding."""

    def __init__(self, patch: int, dim: int, *, rngs):
        self.patch = patch
        self.proj = nnx.Linear(patch, dim, kernel_init=dense_init(None, "embed"),
                               bias_init=zeros("embed"), rngs=rngs)

    def split(self, signals):
        return signals.reshape(signals.shape[0], -1, self.patch)

    def embed(self, patches):
        return self.proj(patches)


class _SignalBase:
    replicated_keys = frozenset()
    eval_inputs = ("signal",)

    def __init__(self, config):
        m, d = config.model, config.data
        if d.length % m.patch:
            raise ConfigError(f"data.length={d.length} is not divisible by model.patch={m.patch}")
        self.config = config
        self.tokens = d.length // m.patch
        self.encoder = Functional(lambda rngs: Encoder(
            SignalPatches(m.patch, m.width, rngs=rngs), (self.tokens,), dim=m.width,
            depth=m.depth, heads=m.heads, mlp_ratio=2.0, dtype=jnp.float32,
            attention_impl="auto", rngs=rngs))

    def param_specs(self, mesh, rules):
        return {name: module.specs(mesh, rules) for name, module in self._modules().items()}

    def init_params(self, key):
        keys = jax.random.split(key, len(self._modules()))
        return {name: module.init(k) for (name, module), k in zip(self._modules().items(), keys)}

    def train_source(self):
        return sources.get(self.config.data, "train")

    def example_fn(self):
        return None

    def eval_source(self, split):
        return sources.get(self.config.data, split)

    def eval_example_fn(self):
        return None

    def outputs(self, encoder_params, inputs):
        return {"features": self.encoder(encoder_params, inputs["signal"]).mean(axis=1)}

    @staticmethod
    def baselines():
        return {"raw signal": lambda a: {"features": a["signal"]},
                "spectrum": lambda a: {"features": np.abs(np.fft.rfft(a["signal"], axis=1))}}

    def flops_per_step(self, global_batch):
        m = self.config.model
        return 3 * flops.transformer(global_batch, self.tokens, m.width, m.depth, 2.0)


class SignalJEPA(_SignalBase):
    transfer_paths = ("params/encoder", "target")
    replicated_keys = frozenset({"context_idx", "target_idx"})

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        self.num_targets = config.mask.num_targets
        self.predictor = Functional(lambda rngs: Predictor(
            (self.tokens,), in_dim=m.width, dim=m.width // 2, depth=1, heads=m.heads,
            mlp_ratio=2.0, dtype=jnp.float32, attention_impl="auto", rngs=rngs))

    def _modules(self):
        return {"encoder": self.encoder, "predictor": self.predictor}

    @staticmethod
    def ema_source(params):
        return params["encoder"]

    def batch_fn(self):
        tokens, k = self.tokens, self.num_targets

        def masks(batch, rng):  # one mask table per batch, shared by its examples
            order = rng.permutation(tokens)
            return {**batch, "target_idx": np.sort(order[:k]).astype(np.int32),
                    "context_idx": np.sort(order[k:]).astype(np.int32)}
        return masks

    def loss(self, params, target, batch, rng):
        x = batch["signal"]
        b = x.shape[0]
        h = jax.lax.stop_gradient(self.encoder(target, x))
        h = (h - h.mean(-1, keepdims=True)) / jnp.sqrt(h.var(-1, keepdims=True) + 1e-5)
        ctx = jnp.broadcast_to(batch["context_idx"], (b, self.tokens - self.num_targets))
        tgt = jnp.broadcast_to(batch["target_idx"], (b, 1, self.num_targets))
        ctx_valid, tgt_valid = jnp.ones(ctx.shape, bool), jnp.ones(tgt.shape, bool)
        z = self.encoder(params["encoder"], x, ctx, ctx_valid)
        pred = self.predictor(params["predictor"], z, ctx, ctx_valid, tgt, tgt_valid)[:, 0]
        return jnp.mean((pred - h[:, batch["target_idx"]]) ** 2), {}

    @staticmethod
    def eval_params(params, target):
        return target


class SignalClassifier(_SignalBase):
    """Supervised: no EMA target (ema_source is None), evaluators read the trained encoder."""

    transfer_paths = ("params/encoder",)

    def __init__(self, config):
        super().__init__(config)
        width = config.model.width
        self.head = Functional(lambda rngs: nnx.Linear(
            width, len(FREQUENCIES), kernel_init=dense_init("embed", None),
            bias_init=zeros(None), rngs=rngs))

    def _modules(self):
        return {"encoder": self.encoder, "head": self.head}

    @staticmethod
    def ema_source(params):
        return None

    def batch_fn(self):
        return None

    def loss(self, params, target, batch, rng):
        assert target is None
        logits = self.head(params["head"], self.outputs(params["encoder"], batch)["features"])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
        return ce, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"])}

    @staticmethod
    def eval_params(params, target):
        return params["encoder"]


def register() -> None:
    sources.register("test_signals", signal_source)
    variants.register("signal_jepa", SignalJEPA)
    variants.register("signal_classifier", SignalClassifier)


def config(variant: str = "signal_jepa", **train):
    """A tiny config for either signal variant (seconds of training on 8 fake devices)."""
    c = base_config()
    c.name = variant
    c.variant = variant
    c.model = dict(patch=16 if variant == "signal_classifier" else 8, width=32, depth=1, heads=2)
    c.data.update(dataset="test_signals", size=512, length=64)
    c.mask = dict(num_targets=2)
    c.train.update({**dict(steps=8, batch_size=16, log_every=1, checkpoint_every=4), **train})
    # The classifier learns the frequencies in 20 steps at a larger step size.
    lr = 3e-2 if variant == "signal_classifier" else 3e-3
    c.optim.update(lr=lr, start_lr=lr / 10, warmup_steps=2)
    c.eval.batch_size = 64
    c.evals = dict(
        linear_probe=evaluators.block("linear_probe", train_examples=256, test_examples=128,
                                      steps=50),
        knn=evaluators.block("knn", train_examples=256, test_examples=128, k=10),
        rankme=evaluators.block("rankme", examples=256),
    )
    c.logging.update(progress=False, tensorboard=False)
    return finalize(c)

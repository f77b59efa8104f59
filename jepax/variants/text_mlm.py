"""Masked-word pretraining (BERT's objective) of a small text transformer on captions: the frozen
text encoder of TI-JEPA, trained within the pipeline because no pretrained language model can be
downloaded here.

* input: word ids of a caption (data_pipelines.image_text); 15% of its words are chosen, of
  which 80% become [MASK], 10% a random word and 10% stay (BERT);
* encoder: ``jepax.models.text.TextEncoder`` (padding masked out of attention);
* loss: cross-entropy of the chosen words' ids; no EMA target;
* downstream: mean of the encoder's outputs over the caption's words (the text-only features
  TI-JEPA's baselines use); the classical row is a bag of words.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from data_pipelines import sources
from data_pipelines.image_text import MASK, PAD, SPECIAL
from jepax import flops
from jepax.config import ConfigError, require_positive
from jepax.models.functional import Functional
from jepax.models.layers import ATTENTION_IMPLEMENTATIONS
from jepax.models.text import MLMHead, TextEncoder, text_mask


def text_encoder(model_config) -> Functional:
    """The text encoder a text_mlm run trains (also what TI-JEPA rebuilds from its config)."""
    m = model_config
    return Functional(lambda rngs: TextEncoder(
        m.vocab_size, m.max_tokens, dim=m.width, depth=m.depth, heads=m.heads,
        mlp_ratio=m.mlp_ratio, dtype=jnp.float32, attention_impl=m.attention, rngs=rngs))


def mean_over_words(features, tokens):
    valid = text_mask(tokens)[..., None].astype(features.dtype)
    return (features * valid).sum(1) / valid.sum(1)


class TextMLM:
    replicated_keys = frozenset()
    eval_inputs = ("tokens",)
    transfer_paths = ("params/encoder",)

    def __init__(self, config):
        m, d = config.model, config.data
        require_positive(m, "model", ("width", "depth", "heads", "vocab_size", "max_tokens"))
        if m.width % m.heads or m.width % 2:
            raise ConfigError(f"model.width={m.width} must be even and divisible by model.heads")
        if m.attention not in ATTENTION_IMPLEMENTATIONS:
            raise ConfigError(f"model.attention={m.attention!r}: use one of "
                              f"{list(ATTENTION_IMPLEMENTATIONS)}")
        if m.max_tokens != d.max_tokens:
            raise ConfigError(f"model.max_tokens={m.max_tokens} differs from data.max_tokens="
                              f"{d.max_tokens}; set both to the caption length")
        if not 0 < config.mask.ratio < 1:
            raise ConfigError(f"mask.ratio={config.mask.ratio} must be in (0, 1)")
        self.config = config
        self.encoder = text_encoder(m)
        self.head = Functional(lambda rngs: MLMHead(m.width, m.vocab_size, dtype=jnp.float32,
                                                    rngs=rngs))

    def check_vocabulary(self, vocab) -> None:
        if len(vocab) > self.config.model.vocab_size:
            raise ConfigError(f"the vocabulary has {len(vocab)} words but model.vocab_size="
                              f"{self.config.model.vocab_size}; raise model.vocab_size")

    # -- parameters --------------------------------------------------------------------------
    def init_params(self, key):
        k1, k2 = jax.random.split(key)
        return {"encoder": self.encoder.init(k1), "head": self.head.init(k2)}

    def param_specs(self, mesh, rules):
        return {"encoder": self.encoder.specs(mesh, rules), "head": self.head.specs(mesh, rules)}

    ema_source = staticmethod(lambda params: None)
    eval_params = staticmethod(lambda params, target: params["encoder"])

    # -- data --------------------------------------------------------------------------------
    def train_source(self):
        source = sources.get(self.config.data, self.config.data.train_split)
        self.check_vocabulary(source.vocab)
        return source

    def eval_source(self, split):
        return sources.get(self.config.data, split)

    def example_fn(self):
        return functools.partial(_mask_words, ratio=self.config.mask.ratio,
                                 vocab_size=len(self.train_source().vocab))

    def batch_fn(self):
        return None

    def eval_example_fn(self):
        return None

    # -- objective ---------------------------------------------------------------------------
    def loss(self, params, target, batch, rng):
        del target, rng
        logits = self.head(params["head"], self.encoder(params["encoder"], batch["tokens"]))
        weights = batch["mlm_weights"].astype(jnp.float32)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32),
                                                             batch["mlm_targets"])
        loss = (ce * weights).sum() / jnp.maximum(weights.sum(), 1.0)
        correct = (jnp.argmax(logits, -1) == batch["mlm_targets"]) * weights
        return loss, {"mlm_acc": correct.sum() / jnp.maximum(weights.sum(), 1.0)}

    def outputs(self, encoder, inputs):
        tokens = inputs["tokens"]
        return {"features": mean_over_words(self.encoder(encoder, tokens), tokens)}

    def baselines(self):
        vocab_size = self.config.model.vocab_size
        return {"bag of words": lambda arrays: {"features": bag_of_words(arrays["tokens"],
                                                                         vocab_size)}}

    def flops_per_step(self, global_batch: int) -> float:
        m = self.config.model
        fwd = (flops.transformer(global_batch, m.max_tokens, m.width, m.depth, m.mlp_ratio)
               + flops.linear(global_batch * m.max_tokens, m.width, m.vocab_size))
        return 3 * fwd


def bag_of_words(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """Word counts per caption (padding and special tokens left out)."""
    counts = np.zeros((len(tokens), vocab_size), np.float32)
    rows = np.repeat(np.arange(len(tokens)), tokens.shape[1])
    np.add.at(counts, (rows, tokens.reshape(-1)), 1.0)
    counts[:, :len(SPECIAL)] = 0.0
    return counts


def _mask_words(example, rng, *, ratio: float, vocab_size: int):
    """BERT's corruption of one caption: the inputs, the ids to predict and where."""
    tokens = example["tokens"]
    words = np.flatnonzero(tokens != PAD)
    chosen = np.zeros(len(tokens), bool)
    if len(words):
        count = max(1, int(round(ratio * len(words))))
        chosen[rng.choice(words, count, replace=False)] = True
    inputs = tokens.copy()
    roll = rng.uniform(size=len(tokens))
    inputs[chosen & (roll < 0.8)] = MASK
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = rng.integers(len(SPECIAL), vocab_size, swap.sum())
    return {"tokens": inputs, "mlm_targets": tokens, "mlm_weights": chosen}

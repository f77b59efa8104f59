"""A sequence model trained with a token-level cross-entropy on a procedural task: the networks
of the copying and arithmetic studies, trained by the one loop (no EMA target).

The data source yields ``inputs``, ``targets`` and ``loss_mask`` (T,): a decoder's targets are
the next tokens (next-token loss), an encoder's are the answer tokens at answer slots. The loss
is the cross-entropy averaged over the masked targets (the official copying code's
sum(loss * mask) / sum(mask) over the batch). Models (``model.arch``): ``transformer`` (any
positional encoding of ``jepax.models.positions``, causal or not), ``mamba`` (selective SSM) and
``lstm``.

Evaluation outputs per example: ``correct`` (every answer token right) and ``token_accuracy``.
For a decoder this is teacher-forced argmax, which equals greedy decoding's exact match: if every
answer token is the argmax given the true prefix, greedy decoding reproduces the true prefix at
each step and so the whole answer; if some token is wrong, greedy decoding emits that same wrong
token at the first such position (its prefix is still the true one). An encoder predicts every
answer slot in one pass, so there is nothing to decode.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from data_pipelines import sources
from jepax import flops
from jepax.config import ConfigError
from jepax.models import positions
from jepax.models.functional import Functional
from jepax.models.ssm import SCANS

ARCHS = ("transformer", "mamba", "lstm")
SPLITS = ("train", "test", "in_distribution")


def build_model(model_config, vocab: int, max_len: int):
    """A Functional sequence model (tokens -> logits) for config.model."""
    m = model_config
    if m.arch == "transformer":
        from jepax.models.sequence_transformer import SequenceTransformer

        return Functional(lambda rngs: SequenceTransformer(
            vocab, dim=m.width, depth=m.depth, heads=m.heads, head_dim=m.head_dim,
            encoding=m.positions,
            causal=m.causal, max_len=m.max_len or max_len, masked_heads=m.masked_heads,
            rpe_clip=m.rpe_clip, mlp_ratio=m.mlp_ratio, rngs=rngs))
    if m.arch == "mamba":
        from jepax.models.ssm import MambaLM

        return Functional(lambda rngs: MambaLM(
            vocab, dim=m.width, depth=m.depth, state=m.state, expand=m.expand, conv=m.conv,
            dt_rank=m.dt_rank, scan=m.scan, rngs=rngs))
    from jepax.models.lstm import LSTMLM

    return Functional(lambda rngs: LSTMLM(vocab, dim=m.width, depth=m.depth, rngs=rngs))


def validate(config) -> None:
    m = config.model
    if m.arch not in ARCHS:
        raise ConfigError(f"model.arch={m.arch!r}: use one of {', '.join(ARCHS)}")
    if m.arch == "transformer":
        if m.positions not in positions.POSITION_ENCODINGS:
            raise ConfigError(f"model.positions={m.positions!r}: use one of "
                              f"{', '.join(positions.POSITION_ENCODINGS)}")
        if not m.head_dim and m.width % m.heads:
            raise ConfigError(f"model.width={m.width} is not divisible by model.heads={m.heads};"
                              " set model.head_dim")
        if m.positions == "hard_alibi" and not (0 <= m.masked_heads <= m.heads and m.causal):
            raise ConfigError(f"hard-ALiBi needs a causal model and 0 <= model.masked_heads="
                              f"{m.masked_heads} <= model.heads={m.heads}")
    elif not m.causal:
        raise ConfigError(f"model.arch={m.arch} reads left to right: set model.causal=True or "
                          "use model.arch=transformer for an encoder")
    if m.arch == "mamba" and m.scan not in SCANS:
        raise ConfigError(f"model.scan={m.scan!r}: use one of {', '.join(SCANS)}")


class SequenceLM:
    transfer_paths = ("params/model",)
    replicated_keys = frozenset()
    eval_inputs = ("inputs", "targets", "loss_mask")

    def __init__(self, config):
        validate(config)
        self.config = config
        # A sequence-task source has `vocab`, `pad_id` and `length` (tokens per example).
        train = sources.get(config.data, "train")  # validates the data settings now
        self.vocab, self.pad_id, self.train_length = train.vocab, train.pad_id, train.length
        self.max_len = max([train.length] + [sources.get(config.data, s).length
                                             for s in SPLITS[1:]])
        self.model = build_model(config.model, self.vocab, self.max_len)
        self.causal = config.model.causal

    # -- parameters --------------------------------------------------------------------------
    def init_params(self, key):
        return {"model": self.model.init(key)}

    def param_specs(self, mesh, rules):
        return {"model": self.model.specs(mesh, rules)}

    @staticmethod
    def ema_source(params):
        return None  # supervised: no target network

    # -- data --------------------------------------------------------------------------------
    def train_source(self):
        return sources.get(self.config.data, "train")

    def example_fn(self):
        return None

    def batch_fn(self):
        return None

    def eval_source(self, split):
        return sources.get(self.config.data, split)

    def eval_example_fn(self):
        return None

    # -- objective ---------------------------------------------------------------------------
    def logits(self, model_params, inputs):
        # An encoder must not attend to padding; a causal model only pads after what matters.
        key_mask = None if self.causal else inputs != self.pad_id
        return self.model(model_params, inputs, key_mask)

    def loss(self, params, target, batch, rng):
        del target, rng
        logits = self.logits(params["model"], batch["inputs"]).astype(jnp.float32)
        mask = batch["loss_mask"].astype(jnp.float32)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        loss = jnp.sum(ce * mask) / jnp.maximum(jnp.sum(mask), 1.0)
        right = (jnp.argmax(logits, -1) == batch["targets"]).astype(jnp.float32)
        return loss, {"token_accuracy": jnp.sum(right * mask) / jnp.maximum(jnp.sum(mask), 1.0),
                      "exact_match": jnp.mean(_all_right(right, mask))}

    # -- evaluation --------------------------------------------------------------------------
    @staticmethod
    def eval_params(params, target):
        return params["model"]

    def outputs(self, model_params, inputs):
        logits = self.logits(model_params, inputs["inputs"])
        mask = inputs["loss_mask"].astype(jnp.float32)
        right = (jnp.argmax(logits, -1) == inputs["targets"]).astype(jnp.float32)
        return {"correct": _all_right(right, mask),
                "token_accuracy": jnp.sum(right * mask, -1) / jnp.maximum(jnp.sum(mask, -1), 1.0)}

    @staticmethod
    def baselines():
        return {}  # the random-init row is the chance level of these tasks

    # -- cost --------------------------------------------------------------------------------
    def flops_per_step(self, global_batch: int) -> float:
        """Forward + backward (3x forward) matrix-multiply FLOPs at the training length."""
        return 3 * forward_flops(self.config.model, global_batch, self.train_length, self.vocab)

    def num_params(self) -> int:
        shapes = jax.eval_shape(self.init_params, jax.random.key(0))
        return int(sum(x.size for x in jax.tree.leaves(shapes)))


def _all_right(right, mask):
    """1.0 per example whose masked tokens are all right."""
    return jnp.all((right > 0) | (mask == 0), axis=-1).astype(jnp.float32)


def forward_flops(m, batch: int, length: int, vocab: int) -> float:
    tokens = batch * length
    head = flops.linear(tokens, m.width, vocab)
    if m.arch == "transformer":
        inner = m.heads * (m.head_dim or m.width // m.heads)
        per_layer = (flops.linear(tokens, m.width, 3 * inner) + flops.linear(tokens, inner, m.width)
                     + 2 * flops.linear(tokens, m.width, int(m.width * m.mlp_ratio))
                     + 2 * 2.0 * tokens * length * inner)  # q k^T and weights v
        return m.depth * per_layer + head
    if m.arch == "lstm":
        return m.depth * flops.linear(tokens, 2 * m.width, 4 * m.width) + head
    inner = m.expand * m.width
    dt_rank = m.dt_rank or -(-m.width // 16)
    per_layer = (flops.linear(tokens, m.width, 2 * inner) + flops.linear(tokens, inner, m.width)
                 + flops.linear(tokens, inner, dt_rank + 2 * m.state)
                 + flops.linear(tokens, dt_rank, inner)
                 + 2.0 * tokens * inner * m.conv
                 + 2.0 * tokens * inner * m.state * 3)  # scan: decay * h + input, C . h
    return m.depth * per_layer + head

"""T-JEPA (Thimonier et al., "T-JEPA: Augmentation-Free Self-Supervised Learning for Tabular
Data", ICLR 2025): predict the EMA target encoder's embeddings of some features of a row from
the embeddings of other features of the same row.

* tokens: [REG] tokens + one token per feature (``tokenizers.FeatureTokenizer``), a fixed
  base-100 sin-cos embedding of the token index (``models.tabular``);
* context encoder: post-LN transformer over the context tokens only (the [REG] tokens always
  among them unless ``mask.official``; see ``data_pipelines/masks/features.py``);
* target encoder: EMA of the context encoder on the full row, outputs used as they are (no
  normalisation of the targets);
* predictor: post-LN transformer over [context ; mask token + fixed position per target
  feature], the context tiled once per target set;
* loss: mean squared error over the valid target tokens;
* downstream: the frozen target encoder embeds each row, all tokens ([REG] included) flattened.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines.masks.features import FeatureMaskError, FeatureMasks, FeatureMaskSpec
from data_pipelines.tables import prepared_table
from jepax import flops
from jepax.config import ConfigError, require_positive
from jepax.models.functional import Functional
from jepax.models.layers import ATTENTION_IMPLEMENTATIONS
from jepax.models.tabular import TableEncoder, table_predictor
from jepax.models.tokenizers import FeatureTokenizer
from jepax.models.vit import gather_tokens
from jepax.variants.jepa import EncoderPredictorJEPA
from jepax.variants.monitors import collapse_monitors


class TJEPA(EncoderPredictorJEPA):
    """The T-JEPA variant on one table: models, feature masks, loss, row embeddings, FLOPs."""

    replicated_keys = frozenset()
    eval_inputs = ("numerical", "categorical")

    def __init__(self, config):
        validate(config)
        self.config = config
        m, k = config.model, config.mask
        table = prepared_table(config.data)  # read once here; the sources reuse it
        self.table = table
        self.n_numerical, self.cardinalities = len(table.numerical_names), table.cardinalities
        self.n_tokens = m.n_reg + table.n_features
        try:
            self.masks = FeatureMasks(FeatureMaskSpec(
                n_features=table.n_features, n_reg=m.n_reg, context_share=tuple(k.context_share),
                target_share=tuple(k.target_share), num_targets=k.num_targets,
                official=k.official))
        except FeatureMaskError as e:
            raise ConfigError(f"{e} (the table has {table.n_features} features)") from e
        common = dict(heads=m.heads, dtype=jnp.float32, attention_impl=m.attention)
        self.encoder = Functional(lambda rngs: TableEncoder(
            FeatureTokenizer(self.n_numerical, self.cardinalities, m.width, n_reg=m.n_reg,
                             rngs=rngs),
            dim=m.width, depth=m.depth, hidden=m.mlp_dim, rngs=rngs, **common))
        self.predictor = Functional(lambda rngs: table_predictor(
            self.n_tokens, in_dim=m.width, dim=m.pred_width, depth=m.pred_depth,
            hidden=m.pred_mlp_dim, rngs=rngs, **{**common, "heads": m.pred_heads}))

    # -- data --------------------------------------------------------------------------------
    def example_fn(self):
        return None

    def batch_fn(self):
        """Context and target sizes are drawn once per batch, the subsets per row."""
        masks = self.masks

        def with_masks(batch, rng):
            return {**batch, **masks.sample_batch(rng, len(batch["label"]))}
        return with_masks

    # -- objective ---------------------------------------------------------------------------
    def loss(self, params, target, batch, rng):
        del rng  # masks come from the data pipeline
        num, cat = batch["numerical"], batch["categorical"]
        h = jax.lax.stop_gradient(self.encoder(target, num, cat))  # (B, N, D), no normalisation
        b, m, t = batch["target_idx"].shape
        wanted = gather_tokens(h, batch["target_idx"].reshape(b, m * t)).reshape(b, m, t, -1)
        z = self.encoder(params["encoder"], num, cat, batch["context_idx"], batch["context_valid"])
        pred = self.predictor(params["predictor"], z, batch["context_idx"], batch["context_valid"],
                              batch["target_idx"], batch["target_valid"])
        valid = batch["target_valid"][..., None].astype(jnp.float32)
        loss = (((pred - wanted) ** 2) * valid).sum() / (valid.sum() * h.shape[-1])
        return loss, collapse_monitors(h[:, self.config.model.n_reg:], pred, batch["target_valid"])

    # -- evaluation --------------------------------------------------------------------------
    def eval_example_fn(self):
        return None

    def outputs(self, target, inputs):
        """Each row's embedding: every output token ([REG] included), flattened."""
        h = self.encoder(target, inputs["numerical"], inputs["categorical"])
        return {"features": h.reshape(h.shape[0], -1).astype(jnp.float32)}

    def baselines(self):
        """The same downstream models on the raw row: MinMax-scaled numericals and one-hot
        categoricals (the released code's input to its MLP, ResNet and XGBoost baselines)."""
        cardinalities = self.cardinalities

        def raw_features(arrays):
            onehots = [np.eye(c, dtype=np.float32)[arrays["categorical"][:, j]]
                       for j, c in enumerate(cardinalities)]
            return {"features": np.concatenate([arrays["numerical"], *onehots], axis=1)}
        return {"raw features": raw_features}

    def flops_per_step(self, global_batch: int) -> float:
        m = self.config.model
        n, c, t = self.n_tokens, self.masks.context_capacity, self.masks.target_capacity
        k = self.config.mask.num_targets

        def stack(rows, seq, width, depth, hidden, outputs=None):
            """Post-LN blocks plus the per-token head linear."""
            return (flops.transformer(rows, seq, width, depth, hidden / width, outputs)
                    + flops.linear(rows * (outputs or seq), width, width))

        target_fwd = stack(global_batch, n, m.width, m.depth, m.mlp_dim)
        context_fwd = stack(global_batch, c, m.width, m.depth, m.mlp_dim)
        pred_fwd = (flops.linear(global_batch * c, m.width, m.pred_width)
                    + stack(global_batch * k, c + t, m.pred_width, m.pred_depth, m.pred_mlp_dim,
                            outputs=t)
                    + flops.linear(global_batch * k * t, m.pred_width, m.width))
        return target_fwd + 3 * (context_fwd + pred_fwd)  # backward = 2x forward


def validate(config) -> None:
    m = config.model
    require_positive(m, "model", ("width", "depth", "heads", "mlp_dim", "pred_width", "pred_depth",
                                  "pred_heads", "pred_mlp_dim"))
    if m.n_reg < 0:
        raise ConfigError(f"model.n_reg={m.n_reg} must be >= 0")
    if m.width % m.heads or m.pred_width % m.pred_heads:
        raise ConfigError(f"model widths ({m.width}, {m.pred_width}) must be divisible by their "
                          f"heads ({m.heads}, {m.pred_heads})")
    if m.width % 2 or m.pred_width % 2:
        raise ConfigError("sin-cos positions need even model.width and model.pred_width")
    if m.attention not in ATTENTION_IMPLEMENTATIONS:
        raise ConfigError(f"model.attention={m.attention!r}: use one of "
                          f"{list(ATTENTION_IMPLEMENTATIONS)}")

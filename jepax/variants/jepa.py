"""What every encoder + predictor JEPA variant shares: parameters ``{"encoder", "predictor"}``
built from two ``Functional`` modules, the target an EMA of the encoder, data from the sources
registry by ``config.data``, evaluation on the EMA target encoder; for I-JEPA-style variants
(ViT encoder over a token grid, narrow predictor at masked token positions) also ``predict``,
the three networks on one batch of index masks, and their analytic FLOPs."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from data_pipelines import sources
from jepax import flops
from jepax.config import ConfigError, require_positive
from jepax.models.layers import ATTENTION_IMPLEMENTATIONS, DTYPES, normalize_features
from jepax.models.vit import gather_tokens


class EncoderPredictorJEPA:
    """Mixin: the subclass sets ``self.config``, ``self.encoder`` and ``self.predictor``."""

    transfer_paths = ("params/encoder", "target")

    def init_params(self, key):
        k_enc, k_pred = jax.random.split(key)
        return {"encoder": self.encoder.init(k_enc), "predictor": self.predictor.init(k_pred)}

    def param_specs(self, mesh, rules):
        return {"encoder": self.encoder.specs(mesh, rules),
                "predictor": self.predictor.specs(mesh, rules)}

    @staticmethod
    def ema_source(params):
        """The target encoder is an EMA of the context encoder."""
        return params["encoder"]

    def train_source(self):
        return sources.get(self.config.data, "train")

    def eval_source(self, split):
        return sources.get(self.config.data, split)

    @staticmethod
    def eval_params(params, target):
        """Downstream evaluation reads the frozen EMA target encoder, as the papers do."""
        return target

    def predict(self, params, target, inputs, batch, groups: int = 1):
        """(predictions, targets, h): the predictor's outputs and the layer-normed target
        embeddings at batch['target_idx'] (both (B, M, T, D) float32), and the normalized
        target features of every token (B, N, D). The target branch carries no gradient.
        For ViT ``Encoder`` / ``Predictor`` modules (jepax/models/vit.py).

        `groups` > 1 (V-JEPA's multi-mask): the masks hold `groups` (context, targets) pairs per
        example, example-major (B * groups leading rows); the target encoder still runs once per
        example, the context encoder and predictor once per pair."""
        h = jax.lax.stop_gradient(self.encoder(target, inputs))
        h = normalize_features(h.astype(jnp.float32))
        if groups > 1:
            h, inputs = jnp.repeat(h, groups, axis=0), jnp.repeat(inputs, groups, axis=0)
        b, m, t = batch["target_idx"].shape
        targets = gather_tokens(h, batch["target_idx"].reshape(b, m * t)).reshape(b, m, t, -1)
        z = self.encoder(params["encoder"], inputs, batch["context_idx"], batch["context_valid"])
        pred = self.predictor(params["predictor"], z, batch["context_idx"], batch["context_valid"],
                              batch["target_idx"], batch["target_valid"]).astype(jnp.float32)
        return pred, targets, h

    def jepa_flops(self, global_batch: int, tokens: int, patch_dim: int, num_targets: int,
                   groups: int = 1) -> float:
        """Analytic FLOPs of one ``predict`` step: target encoder forward on all `tokens`, context
        encoder and predictor forward + backward (2x forward) at the masks' capacities, once per
        mask group. Reads model.width, depth, mlp_ratio, pred_width, pred_depth and self.masks'
        capacities."""
        m = self.config.model
        target_fwd = (flops.linear(global_batch * tokens, patch_dim, m.width)
                      + flops.transformer(global_batch, tokens, m.width, m.depth, m.mlp_ratio))
        b = global_batch * groups
        c, t = self.masks.context_capacity, self.masks.target_capacity
        context_fwd = (flops.linear(b * c, patch_dim, m.width)  # only the kept tokens
                       + flops.transformer(b, c, m.width, m.depth, m.mlp_ratio))
        pred_fwd = (flops.linear(b * c, m.width, m.pred_width)
                    + flops.transformer(b * num_targets, c + t, m.pred_width, m.pred_depth,
                                        m.mlp_ratio, outputs=t)
                    + flops.linear(b * num_targets * t, m.pred_width, m.width))
        return target_fwd + 3 * (context_fwd + pred_fwd)


# How the layer-normed targets are normalized further: 'layer' is the papers' (nothing more);
# 'layer_batch' standardizes each (token, dimension) over the batch, 'layer_center' only centres.
TARGET_NORMS = ("layer", "layer_batch", "layer_center")


def normalize_over_batch(targets, h, target_idx, norm: str):
    """`model.target_norm` applied to the targets (B, M, T, D): for 'layer_*', minus the batch's
    mean of the layer-normed features h (B, N, D) at their token (what every input shares at a
    token cannot be a target), and for 'layer_batch' divided by the batch's std there too (else
    each dimension keeps its input-dependent spread). A departure from the papers: with their
    LayerNorm alone a small-data target encoder can drift towards one vector every token shares."""
    if norm == "layer":
        return targets
    mean = h.mean(axis=0)
    idx = target_idx.reshape(-1)
    centred = targets - mean[idx].reshape(targets.shape)
    if norm == "layer_center":
        return centred
    inv_std = jax.lax.rsqrt(((h - mean) ** 2).mean(axis=0) + 1e-5)
    return centred * inv_std[idx].reshape(targets.shape)


def validate_target_norm(norm: str) -> None:
    if norm not in TARGET_NORMS:
        raise ConfigError(f"model.target_norm={norm!r}: use one of {TARGET_NORMS}")


def validate_vit_model(m, patch_key: str = "patch_size") -> None:
    """The model section of a ViT encoder + narrow ViT predictor with sin-cos-based positions
    (sizes positive, widths divisible by their heads and by 4, a known attention and dtype)."""
    require_positive(m, "model", ("width", "depth", "heads", "pred_width", "pred_depth",
                                  "pred_heads", patch_key))
    if m.width % m.heads or m.pred_width % m.pred_heads:
        raise ConfigError(f"model widths ({m.width}, {m.pred_width}) must be divisible by their "
                          f"heads ({m.heads}, {m.pred_heads})")
    if m.attention not in ATTENTION_IMPLEMENTATIONS:
        raise ConfigError(f"model.attention={m.attention!r}: use one of "
                          f"{list(ATTENTION_IMPLEMENTATIONS)}")
    if m.width % 4 or m.pred_width % 4:
        raise ConfigError("sin-cos positions need model.width and model.pred_width divisible by 4")
    if m.dtype not in DTYPES:
        raise ConfigError(f"model.dtype={m.dtype!r}: use one of {sorted(DTYPES)}")

"""I-JEPA (Assran et al., 2023): predict the target encoder's patch embeddings of several image
blocks from one context block, in representation space.

* context encoder: ViT (fixed 2-D sin-cos positions, pre-LN, qkv bias, no class token) that sees
  only the context tokens (dropped, not replaced);
* target encoder: EMA of the context encoder on the full image; its output is layer-normed
  (no parameters) before the target blocks are gathered;
* predictor: narrow ViT over [context ; mask token + position per target patch], all target
  blocks in one batched call;
* loss: smooth-L1 over valid target tokens;
* `model.target_norm='layer_batch'` then standardizes each (token, dimension) of the targets
  over the batch (jepax/variants/jepa.py): a departure, experiments/ijepa.py's default
  (its docstring says why); 'layer' is the paper's.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import optax

from data_pipelines.masks.multiblock import MultiBlockMasks, MultiBlockSpec
from data_pipelines.transforms import augment, resize
from jepax.config import ConfigError
from jepax.models.functional import Functional
from jepax.models.tokenizers import PatchEmbed
from jepax.models.vit import Encoder, Predictor
from jepax.variants.jepa import (DTYPES, EncoderPredictorJEPA, normalize_over_batch,
                                 validate_target_norm, validate_vit_model)
from jepax.variants.monitors import collapse_monitors

# Layers whose pooled outputs `last4_features` concatenates.
READOUT_LAYERS = 4


class IJEPA(EncoderPredictorJEPA):
    """The I-JEPA variant: models, masks, loss, evaluation features and FLOPs."""

    replicated_keys = frozenset()
    eval_inputs = ("image",)

    def __init__(self, config):
        validate(config)
        self.config = config
        m, d = config.model, config.data
        if d.image_size % m.patch_size:
            raise ConfigError(f"data.image_size={d.image_size} is not divisible by "
                              f"model.patch_size={m.patch_size}")
        self.grid = (d.image_size // m.patch_size,) * 2
        self.masks = MultiBlockMasks(MultiBlockSpec.from_config(config.mask, self.grid))
        dtype = DTYPES[m.dtype]
        common = dict(mlp_ratio=m.mlp_ratio, dtype=dtype, attention_impl=m.attention, remat=m.remat,
                      scan_layers=m.scan_layers)
        self.encoder = Functional(lambda rngs: Encoder(
            PatchEmbed(m.patch_size, d.channels, m.width, dtype=dtype, rngs=rngs), self.grid,
            dim=m.width, depth=m.depth, heads=m.heads, rngs=rngs, **common))
        self.predictor = Functional(lambda rngs: Predictor(
            self.grid, in_dim=m.width, dim=m.pred_width, depth=m.pred_depth,
            heads=m.pred_heads, rngs=rngs, **common))
        self.dtype = dtype

    # -- data --------------------------------------------------------------------------------
    def example_fn(self):
        """Per-example host transform for the training stream (augment + masks)."""
        d = self.config.data
        return functools.partial(_augment_and_mask, size=d.image_size, crop_scale=tuple(d.crop_scale),
                                 hflip=d.hflip, masks=None if self.masks.spec.official else self.masks)

    def batch_fn(self):
        """Per-batch host transform: the official collator draws masks per batch."""
        if not self.masks.spec.official:
            return None
        return functools.partial(_official_batch_masks, masks=self.masks)

    def normalize(self, images):
        d = self.config.data
        x = images.astype(jnp.float32) / 255.0
        return ((x - jnp.asarray(d.mean)) / jnp.asarray(d.std)).astype(self.dtype)

    # -- objective ---------------------------------------------------------------------------
    def loss(self, params, target, batch, rng):
        del rng  # masks and augmentations come from the data pipeline
        pred, h, grid = self.predict(params, target, self.normalize(batch["image"]), batch)
        h = normalize_over_batch(h, grid, batch["target_idx"], _target_norm(self.config.model))
        valid = batch["target_valid"][..., None].astype(jnp.float32)
        per_elem = optax.huber_loss(pred, h, delta=1.0)  # == smooth-L1 with beta 1
        loss = (per_elem * valid).sum() / (valid.sum() * h.shape[-1])
        return loss, collapse_monitors(grid, pred, batch["target_valid"])

    # -- evaluation --------------------------------------------------------------------------
    def eval_example_fn(self):
        return functools.partial(_resized, size=self.config.data.image_size)

    def outputs(self, target, inputs):
        """Target-encoder features: the last layer average-pooled (`features`) and the average
        pools of the last four layers concatenated (`last4_features`, the readout of the I-JEPA
        paper's low-shot probes; fewer layers when the encoder is shallower)."""
        images = self.normalize(inputs["image"])
        layers = self.encoder.method("last_layers", target, images, READOUT_LAYERS)
        pooled = layers.astype(jnp.float32).mean(axis=2)  # (layers, B, width)
        return {"features": pooled[-1], "last4_features": jnp.concatenate(list(pooled), -1)}

    @staticmethod
    def baselines():
        return {"raw pixels": _pixel_features}

    def flops_per_step(self, global_batch: int) -> float:
        m, d = self.config.model, self.config.data
        return self.jepa_flops(global_batch, self.grid[0] * self.grid[1],
                               m.patch_size ** 2 * d.channels, self.config.mask.num_targets)


def _resized(example, *, size):
    return {**example, "image": resize(example["image"], size)}


def _pixel_features(arrays):
    images = arrays["image"]
    return {"features": images.reshape(len(images), -1).astype(np.float32) / 255.0}


def _augment_and_mask(example, rng, *, size, crop_scale, hflip, masks):
    out = {"image": augment(example["image"], rng, size, crop_scale, hflip)}
    if masks is not None:
        out.update(masks(rng))
    return out


def _official_batch_masks(batch, rng, *, masks: MultiBlockMasks):
    return {**batch, **masks.sample_batch(rng, len(batch["image"]))}


def _target_norm(m) -> str:
    # Runs saved before the switch existed (TI-JEPA reads their configs) used the paper's.
    return m.get("target_norm", "layer")


def validate(config) -> None:
    validate_vit_model(config.model)
    validate_target_norm(_target_norm(config.model))
    if len(config.data.mean) != config.data.channels or len(config.data.std) != config.data.channels:
        raise ConfigError(f"data.mean/std need one value per channel ({config.data.channels})")

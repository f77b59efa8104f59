"""I-JEPA (Assran et al., 2023): predict the target encoder's patch embeddings of several image
blocks from one context block, in representation space.

* context encoder: ViT (fixed 2-D sin-cos positions, pre-LN, qkv bias, no class token) that sees
  only the context tokens (dropped, not replaced);
* target encoder: EMA of the context encoder on the full image; its output is layer-normed
  (no parameters) before the target blocks are gathered;
* predictor: narrow ViT over [context ; mask token + position per target patch], all target
  blocks in one batched call;
* loss: smooth-L1 over valid target tokens.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from data_pipelines.masks.multiblock import MultiBlockMasks, MultiBlockSpec
from data_pipelines.transforms import augment, resize
from jepax import flops
from jepax.config import ConfigError
from jepax.models.functional import Functional
from jepax.models.layers import ATTENTION_IMPLEMENTATIONS
from jepax.models.tokenizers import PatchEmbed
from jepax.models.vit import Encoder, Predictor, gather_tokens
from jepax.variants.jepa import EncoderPredictorJEPA

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


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
        if m.dtype not in DTYPES:
            raise ConfigError(f"model.dtype={m.dtype!r}: use one of {sorted(DTYPES)}")
        self.grid = (d.image_size // m.patch_size,) * 2
        self.masks = MultiBlockMasks(MultiBlockSpec.from_config(config.mask, self.grid))
        dtype = DTYPES[m.dtype]
        common = dict(mlp_ratio=m.mlp_ratio, dtype=dtype, attention_impl=m.attention, remat=m.remat)
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
        images = self.normalize(batch["image"])
        h = jax.lax.stop_gradient(self.encoder(target, images))
        h = _layer_norm(h.astype(jnp.float32))
        b, m, t = batch["target_idx"].shape
        h = gather_tokens(h, batch["target_idx"].reshape(b, m * t)).reshape(b, m, t, -1)
        z = self.encoder(params["encoder"], images, batch["context_idx"], batch["context_valid"])
        pred = self.predictor(params["predictor"], z, batch["context_idx"], batch["context_valid"],
                              batch["target_idx"], batch["target_valid"]).astype(jnp.float32)
        valid = batch["target_valid"][..., None].astype(jnp.float32)
        per_elem = optax.huber_loss(pred, h, delta=1.0)  # == smooth-L1 with beta 1
        loss = (per_elem * valid).sum() / (valid.sum() * h.shape[-1])
        return loss, {"target_std": jnp.sqrt(jnp.mean(jnp.var(pred, axis=(0, 1, 2))))}

    # -- evaluation --------------------------------------------------------------------------
    def eval_example_fn(self):
        return functools.partial(_resized, size=self.config.data.image_size)

    def outputs(self, target, inputs):
        """Average-pooled target-encoder features."""
        images = self.normalize(inputs["image"])
        return {"features": self.encoder(target, images).astype(jnp.float32).mean(axis=1)}

    @staticmethod
    def baselines():
        return {"raw pixels": _pixel_features}

    def flops_per_step(self, global_batch: int) -> float:
        m, d = self.config.model, self.config.data
        n = self.grid[0] * self.grid[1]
        c, t, k = self.masks.context_capacity, self.masks.target_capacity, self.config.mask.num_targets
        patch_dim = m.patch_size ** 2 * d.channels
        target_fwd = (flops.linear(global_batch * n, patch_dim, m.width)
                      + flops.transformer(global_batch, n, m.width, m.depth, m.mlp_ratio))
        context_fwd = (flops.linear(global_batch * c, patch_dim, m.width)  # only kept patches
                       + flops.transformer(global_batch, c, m.width, m.depth, m.mlp_ratio))
        pred_fwd = (flops.linear(global_batch * c, m.width, m.pred_width)
                    + flops.transformer(global_batch * k, c + t, m.pred_width, m.pred_depth,
                                        m.mlp_ratio, outputs=t)
                    + flops.linear(global_batch * k * t, m.pred_width, m.width))
        return target_fwd + 3 * (context_fwd + pred_fwd)  # backward = 2x forward


def _layer_norm(x, eps=1e-5):
    """Parameter-free LayerNorm over the last axis, eps as torch's F.layer_norm (I-JEPA normalizes
    its targets this way)."""
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


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


def validate(config) -> None:
    m = config.model
    for key in ("width", "depth", "heads", "pred_width", "pred_depth", "pred_heads", "patch_size"):
        if m[key] <= 0:
            raise ConfigError(f"model.{key}={m[key]} must be positive")
    if m.width % m.heads or m.pred_width % m.pred_heads:
        raise ConfigError(f"model widths ({m.width}, {m.pred_width}) must be divisible by their "
                          f"heads ({m.heads}, {m.pred_heads})")
    if m.attention not in ATTENTION_IMPLEMENTATIONS:
        raise ConfigError(f"model.attention={m.attention!r}: use one of "
                          f"{list(ATTENTION_IMPLEMENTATIONS)}")
    if m.width % 4 or m.pred_width % 4:
        raise ConfigError("2-D sin-cos positions need model.width and model.pred_width divisible by 4")
    if len(config.data.mean) != config.data.channels or len(config.data.std) != config.data.channels:
        raise ConfigError(f"data.mean/std need one value per channel ({config.data.channels})")

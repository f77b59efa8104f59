"""TI-JEPA (Vo et al., "TI-JEPA: An Innovative Energy-based Joint Embedding Strategy for
Text-Image Multimodal Systems", 2025): text-conditioned I-JEPA on frozen encoders.

* frozen image encoder: an I-JEPA target encoder (a jepax I-JEPA run's workdir, or an official
  ``.pth.tar`` converted by ``jepax.convert``); frozen text encoder: a ``text_mlm`` run's encoder
  (see docs/ti_jepa.md for why, and how to plug in another). Both live in the train state under
  ``params`` and are listed in ``frozen``: they get no gradient (stop_gradient) and the
  optimizer never changes them;
* crosser (trainable): text-to-image cross-attention blocks, image tokens as queries over the
  caption's tokens (padding masked) (``jepax.models.text.Crosser``); the target crosser is its EMA;
* masks: I-JEPA's multi-block masks on the image grid. ``mask.placement='after_encoder'``
  (default, as the official code) encodes the whole image once and keeps the context block's
  *output* tokens; ``'before_encoder'`` encodes only the context patches, as I-JEPA's context
  encoder does;
* predictor: I-JEPA's narrow predictor over [crossed context ; mask token + position];
* loss: smooth-L1 against the layer-normed target crosser's features (whole image, same caption)
  at the target patches;
* downstream: the target crosser's features averaged over image tokens (the official
  ``inference``); baselines: the frozen encoders' features, concatenated (and each alone).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from data_pipelines import sources
from data_pipelines.masks.multiblock import MultiBlockMasks, MultiBlockSpec
from jepax import checkpoint, flops
from jepax.config import ConfigError, load_config, require_positive
from jepax.models.functional import Functional
from jepax.models.layers import normalize_features
from jepax.models.text import Crosser, text_mask
from jepax.models.vit import Predictor, gather_tokens
from jepax.variants.ijepa import IJEPA
from jepax.variants.monitors import collapse_monitors
from jepax.variants.text_mlm import mean_over_words, text_encoder

log = logging.getLogger("jepax")
PLACEMENTS = ("after_encoder", "before_encoder")
RANDOM = "random"


# -- the frozen encoders ---------------------------------------------------------------------------
def _saved_run(path: str, what: str, variant: str):
    """(config, latest saved train state) of a jepax run's workdir that trained `variant`."""
    config = checkpoint.load_run_config(path)
    if config is None:
        raise ConfigError(f"model.{what}={path}: no jepax run there (no config.json); pass the "
                          f"--workdir of a finished {variant} run, or '{RANDOM}'")
    if config.get("variant") != variant:
        raise ConfigError(f"model.{what}={path} is a {config.get('variant')!r} run; it must be a "
                          f"{variant!r} run")
    try:
        ckpt = checkpoint.Checkpointer(Path(path) / "checkpoints", read_only=True)
        state = ckpt.restore_params()
        ckpt.close()
    except checkpoint.CheckpointError as e:
        raise ConfigError(f"model.{what}={path}: {e}; train it first (docs/ti_jepa.md)") from e
    return ml_collections.ConfigDict(config), state


def image_encoder(config):
    """(I-JEPA variant that defines the frozen image encoder, its weights as numpy)."""
    m, d = config.model, config.data
    where = m.image_encoder
    if where and Path(where).is_dir():
        ijepa_config, state = _saved_run(where, "image_encoder", "ijepa")
        ijepa = IJEPA(ijepa_config)
        weights = state["target"] if state.get("target") is not None else state["params"]["encoder"]
        return ijepa, shaped_like(ijepa.encoder, weights)
    ijepa_config = load_config(m.image_encoder_config)
    with ijepa_config.unlocked():
        ijepa_config.model.update(dict(m.image))
        ijepa_config.data.update(image_size=d.image_size, channels=d.channels,
                                 mean=tuple(d.image_mean), std=tuple(d.image_std))
    ijepa = IJEPA(ijepa_config)
    if where == RANDOM:
        log.warning("TI-JEPA: the frozen image encoder is a random init (model.image_encoder=%r)",
                    RANDOM)
        return ijepa, jax.device_get(jax.jit(ijepa.encoder.init)(jax.random.key(m.frozen_seed)))
    from jepax.convert import convert_file, is_checkpoint_file

    if not is_checkpoint_file(where):
        raise ConfigError(f"model.image_encoder={where!r}: pass the workdir of a jepax I-JEPA run, "
                          f"an official I-JEPA .pth.tar, or '{RANDOM}'")
    converted = convert_file(where, ijepa)
    return ijepa, converted["target"] if converted["target"] is not None else \
        converted["params"]["encoder"]


def text_encoder_of(config):
    """(text encoder Functional, its model config, its weights as numpy)."""
    m = config.model
    if m.text_encoder == RANDOM:
        log.warning("TI-JEPA: the frozen text encoder is a random init (model.text_encoder=%r)",
                    RANDOM)
        text_model = ml_collections.ConfigDict(dict(m.text, max_tokens=config.data.max_tokens))
        encoder = text_encoder(text_model)
        return encoder, text_model, jax.device_get(
            jax.jit(encoder.init)(jax.random.key(m.frozen_seed + 1)))
    text_config, state = _saved_run(m.text_encoder, "text_encoder", "text_mlm")
    encoder = text_encoder(text_config.model)
    return encoder, text_config.model, shaped_like(encoder, state["params"]["encoder"])


def shaped_like(module: Functional, saved):
    """Saved weights in the tree of ``module.init`` (a checkpoint stores a list's indices as
    strings: blocks '0', '1', ...; fresh parameters have them as ints)."""
    def match(template, value, path):
        if isinstance(template, dict):
            return {k: match(v, value[k] if k in value else value[str(k)], f"{path}/{k}")
                    for k, v in template.items()}
        if tuple(np.shape(value)) != template.shape:
            raise ConfigError(f"saved encoder weight {path} has shape {np.shape(value)}, its "
                              f"config builds {template.shape}")
        return np.asarray(value)
    return match(jax.eval_shape(module.init, jax.random.key(0)), saved, "")


def _shapes(tree):
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.float32), tree)


class TIJEPA:
    """The TI-JEPA variant: frozen encoders, crosser + EMA target, predictor, masks, loss."""

    replicated_keys = frozenset()
    eval_inputs = ("image", "tokens")
    transfer_paths = ("params/crosser", "target")
    frozen = ("image_encoder", "text_encoder")  # jepax.optim leaves these parameters unchanged

    def __init__(self, config):
        m, d = config.model, config.data
        require_positive(m, "model", ("width", "depth", "heads", "pred_width", "pred_depth",
                                      "pred_heads"))
        if m.width % m.heads or m.pred_width % m.pred_heads or m.pred_width % 4:
            raise ConfigError(f"model.width={m.width} must be divisible by model.heads and "
                              f"model.pred_width={m.pred_width} by model.pred_heads and by 4")
        if config.mask.placement not in PLACEMENTS:
            raise ConfigError(f"mask.placement={config.mask.placement!r}: use one of {PLACEMENTS}")
        self.config = config
        self.ijepa, image_weights = image_encoder(config)
        self.text_encoder, text_model, text_weights = text_encoder_of(config)
        ic = self.ijepa.config
        if (ic.data.image_size, ic.data.channels) != (d.image_size, d.channels):
            raise ConfigError(f"the image encoder was trained on {ic.data.image_size}px images with "
                              f"{ic.data.channels} channels; set data.image_size and data.channels "
                              "to match")
        if text_model.max_tokens != d.max_tokens:
            raise ConfigError(f"the text encoder reads {text_model.max_tokens} words; set "
                              f"data.max_tokens={text_model.max_tokens}")
        self.text_model = text_model
        self.frozen_weights = {"image_encoder": image_weights, "text_encoder": text_weights}
        self.grid = self.ijepa.grid
        self.masks = MultiBlockMasks(MultiBlockSpec.from_config(config.mask, self.grid))
        image_dim, text_dim = ic.model.width, text_model.width
        self.crosser = Functional(lambda rngs: Crosser(
            image_dim, text_dim, dim=m.width, depth=m.depth, heads=m.heads,
            mlp_ratio=m.mlp_ratio, dtype=jnp.float32, rngs=rngs))
        self.predictor = Functional(lambda rngs: Predictor(
            self.grid, in_dim=m.width, dim=m.pred_width, depth=m.pred_depth, heads=m.pred_heads,
            mlp_ratio=m.mlp_ratio, dtype=jnp.float32, attention_impl=m.attention, rngs=rngs))
        self._sources = {}

    # -- parameters --------------------------------------------------------------------------
    def init_params(self, key):
        k1, k2 = jax.random.split(key)
        # The frozen weights enter through a host callback: the initializer's program carries
        # their shapes, not their values (a ViT-H would not fit in a program as constants).
        frozen = jax.pure_callback(lambda: jax.tree.map(np.float32, self.frozen_weights),
                                   _shapes(self.frozen_weights))
        return {**frozen, "crosser": self.crosser.init(k1), "predictor": self.predictor.init(k2)}

    def param_specs(self, mesh, rules):
        return {"image_encoder": self.ijepa.encoder.specs(mesh, rules),
                "text_encoder": self.text_encoder.specs(mesh, rules),
                "crosser": self.crosser.specs(mesh, rules),
                "predictor": self.predictor.specs(mesh, rules)}

    @staticmethod
    def ema_source(params):
        return params["crosser"]

    @staticmethod
    def eval_params(params, target):
        """The target crosser on the frozen encoders."""
        return {"crosser": target, "image_encoder": params["image_encoder"],
                "text_encoder": params["text_encoder"]}

    # -- data --------------------------------------------------------------------------------
    def _source(self, split):
        if split not in self._sources:
            source = sources.get(self.config.data, split)
            if len(source.vocab) > self.text_model.vocab_size:
                raise ConfigError(f"the captions' vocabulary has {len(source.vocab)} words, more "
                                  f"than the text encoder's {self.text_model.vocab_size}")
            self._sources[split] = source
        return self._sources[split]

    def train_source(self):
        return self._source(self.config.data.train_split)

    def eval_source(self, split):
        return self._source(split)

    def example_fn(self):
        official = self.masks.spec.official
        return functools.partial(_example, size=self.config.data.image_size,
                                 masks=None if official else self.masks)

    def batch_fn(self):
        if not self.masks.spec.official:
            return None
        return functools.partial(_official_batch_masks, masks=self.masks)

    def eval_example_fn(self):
        return None

    # -- model pieces ------------------------------------------------------------------------
    def encode_text(self, text_params, tokens):
        return self.text_encoder(text_params, tokens), text_mask(tokens)

    def encode_image(self, image_params, images, keep_idx=None, keep_valid=None):
        return self.ijepa.encoder(image_params, self.ijepa.normalize(images), keep_idx,
                                  keep_valid).astype(jnp.float32)

    def context_tokens(self, image_params, images, full, context_idx, context_valid):
        """The image encoder's tokens at the context patches. 'after_encoder' (the official
        code's apply_masks on the encoder's outputs): picked from `full`, the whole image's
        encoding, so they have seen every patch; 'before_encoder': only the context patches
        are encoded, as I-JEPA's context encoder does."""
        if self.config.mask.placement == "after_encoder":
            return gather_tokens(full, context_idx)
        return self.encode_image(image_params, images, context_idx, context_valid)

    # -- objective ---------------------------------------------------------------------------
    def loss(self, params, target, batch, rng):
        del rng  # masks come from the data pipeline
        image_p = jax.lax.stop_gradient(params["image_encoder"])
        text, valid = self.encode_text(jax.lax.stop_gradient(params["text_encoder"]),
                                       batch["tokens"])
        full = self.encode_image(image_p, batch["image"])
        every = normalize_features(jax.lax.stop_gradient(self.crosser(target, full, text, valid)))
        b, m, t = batch["target_idx"].shape
        h = gather_tokens(every, batch["target_idx"].reshape(b, m * t)).reshape(b, m, t, -1)
        ctx_idx, ctx_valid = batch["context_idx"], batch["context_valid"]
        context = self.context_tokens(image_p, batch["image"], full, ctx_idx, ctx_valid)
        z = self.crosser(params["crosser"], context, text, valid)
        pred = self.predictor(params["predictor"], z, ctx_idx, ctx_valid, batch["target_idx"],
                              batch["target_valid"]).astype(jnp.float32)
        weights = batch["target_valid"][..., None].astype(jnp.float32)
        per_elem = optax.huber_loss(pred, h, delta=1.0)  # == smooth-L1 with beta 1
        loss = (per_elem * weights).sum() / (weights.sum() * h.shape[-1])
        return loss, collapse_monitors(every, pred, batch["target_valid"])

    # -- evaluation --------------------------------------------------------------------------
    def outputs(self, eval_params, inputs):
        """The target crosser's features averaged over the image tokens."""
        text, valid = self.encode_text(eval_params["text_encoder"], inputs["tokens"])
        image = self.encode_image(eval_params["image_encoder"], inputs["image"])
        return {"features": self.crosser(eval_params["crosser"], image, text, valid).mean(1)}

    def unimodal_features(self, arrays, batch_size: int = 256):
        """(image features, text features): the frozen encoders' outputs, averaged."""
        fn = _unimodal_fn(self)
        chunks = [fn(self.frozen_weights, arrays["image"][i:i + batch_size],
                     arrays["tokens"][i:i + batch_size])
                  for i in range(0, len(arrays["image"]), batch_size)]
        return tuple(np.concatenate([np.asarray(c[k]) for c in chunks]) for k in range(2))

    def baselines(self):
        def row(pick):
            return lambda arrays: {"features": pick(*self.unimodal_features(arrays))}
        return {"concatenated unimodal": row(lambda i, t: np.concatenate([i, t], axis=1)),
                "image encoder only": row(lambda i, t: i),
                "text encoder only": row(lambda i, t: t)}

    def flops_per_step(self, global_batch: int) -> float:
        m, im, tm = self.config.model, self.ijepa.config.model, self.text_model
        n, length = self.grid[0] * self.grid[1], self.config.data.max_tokens
        c, t, k = self.masks.context_capacity, self.masks.target_capacity, self.config.mask.num_targets
        patch_dim = im.patch_size ** 2 * self.config.data.channels
        image_fwd = lambda tokens: (flops.linear(global_batch * tokens, patch_dim, im.width)
                                    + flops.transformer(global_batch, tokens, im.width, im.depth,
                                                        im.mlp_ratio))
        frozen = (image_fwd(n) + flops.transformer(global_batch, length, tm.width, tm.depth,
                                                   tm.mlp_ratio))
        if self.config.mask.placement == "before_encoder":
            frozen += image_fwd(c)
        cross = lambda queries: crosser_flops(global_batch, queries, length, im.width, tm.width,
                                              m.width, m.depth, m.mlp_ratio)
        pred = (flops.linear(global_batch * c, m.width, m.pred_width)
                + flops.transformer(global_batch * k, c + t, m.pred_width, m.pred_depth,
                                    m.mlp_ratio, outputs=t)
                + flops.linear(global_batch * k * t, m.pred_width, m.width))
        return frozen + cross(n) + 3 * (cross(c) + pred)  # backward = 2x forward


def crosser_flops(batch, queries, length, image_dim, text_dim, dim, depth, mlp_ratio) -> float:
    """Forward FLOPs of the crosser: projections in, then per block q, kv, attention, out, MLP."""
    rows, keys = batch * queries, batch * length
    block = (flops.linear(rows, dim, dim) + flops.linear(keys, dim, 2 * dim)
             + 2 * 2.0 * rows * length * dim + flops.linear(rows, dim, dim)
             + 2 * flops.linear(rows, dim, int(dim * mlp_ratio)))
    return flops.linear(rows, image_dim, dim) + flops.linear(keys, text_dim, dim) + depth * block


@functools.lru_cache(maxsize=8)
def _unimodal_fn(variant: TIJEPA):
    @jax.jit
    def features(frozen, images, tokens):
        text, _ = variant.encode_text(frozen["text_encoder"], tokens)
        image = variant.encode_image(frozen["image_encoder"], images)
        return image.mean(1), mean_over_words(text, tokens)
    return features


def _example(example, rng, *, size, masks):
    out = {"image": example["image"], "tokens": example["tokens"]}
    if example["image"].shape[0] != size:
        raise ValueError(f"image of {example['image'].shape[0]}px, expected {size}px")
    if masks is not None:
        out.update(masks(rng))
    return out


def _official_batch_masks(batch, rng, *, masks: MultiBlockMasks):
    return {**batch, **masks.sample_batch(rng, len(batch["image"]))}

"""UI-JEPA (Fu et al., 2024): a V-JEPA video encoder pretrained on screen recordings, whose
frozen features feed a small language decoder that states the user's intent.

* tokens: tubelets of ``model.tubelet_frames`` (2) frames x ``model.patch_size`` (16) pixels,
  fixed 3-D sin-cos positions over (time slices, rows, columns), equal channel thirds
  (V-JEPA's ``uniform_power``; the channel order differs: width, height, time here);
* masks (data_pipelines/masks/tubelet_blocks.py): per example three (context, target) groups:
  8 short-range spatial blocks of scale 0.15 and 2 long-range blocks of scale 0.7, both over
  every frame (V-JEPA), and UI-JEPA's temporal masking of 6 of the 8 time slices, chosen
  non-contiguously; the context encoder and predictor run once per group, the EMA target
  encoder once per example (EncoderPredictorJEPA.predict with ``groups``);
* loss: L1 between predictions and layer-normed target features over the valid target tokens
  (V-JEPA's ``loss_exp=1``), averaged over groups;
* evaluation outputs of the EMA target encoder: ``features`` (mean over all tokens) and
  ``video_tokens`` (B, time slices, width): tokens mean-pooled over space per time slice, what
  the intent decoder (jepax/evaluators/intent_decoder.py) reads through one linear projection.
  Baseline row: ``raw pixels + frame difference``: per time slice the slice's mean frame and
  the absolute difference of its frames, each average-pooled to 8 x 8.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from data_pipelines.masks.tubelet_blocks import TubeletMasks, TubeletMaskSpec
from jepax.config import ConfigError
from jepax.models.functional import Functional
from jepax.models.tokenizers import TubeletEmbed
from jepax.models.vit import Encoder, Predictor
from jepax.variants.jepa import DTYPES, EncoderPredictorJEPA, validate_vit_model
from jepax.variants.monitors import collapse_monitors

MASK_KEYS = ("context_idx", "context_valid", "target_idx", "target_valid")
BASELINE_POOL = 8  # the pixel baseline's spatial resolution per frame


class UIJEPA(EncoderPredictorJEPA):
    replicated_keys = frozenset()
    eval_inputs = ("frames",)

    def __init__(self, config):
        validate(config)
        self.config = config
        m, d = config.model, config.data
        self.grid = (d.frames // m.tubelet_frames,) + (d.image_size // m.patch_size,) * 2
        self.masks = TubeletMasks(TubeletMaskSpec.from_config(config.mask, self.grid))
        dtype = DTYPES[m.dtype]
        common = dict(mlp_ratio=m.mlp_ratio, dtype=dtype, attention_impl=m.attention, remat=m.remat,
                      scan_layers=m.scan_layers)
        self.encoder = Functional(lambda rngs: Encoder(
            TubeletEmbed(m.tubelet_frames, m.patch_size, 3, m.width, dtype=dtype, rngs=rngs),
            self.grid, dim=m.width, depth=m.depth, heads=m.heads, rngs=rngs, **common))
        self.predictor = Functional(lambda rngs: Predictor(
            self.grid, in_dim=m.width, dim=m.pred_width, depth=m.pred_depth,
            heads=m.pred_heads, rngs=rngs, **common))
        self.dtype = dtype

    # -- data --------------------------------------------------------------------------------
    def example_fn(self):
        return functools.partial(_frames_and_masks, masks=self.masks)

    def batch_fn(self):
        return None

    def normalize(self, frames):
        d = self.config.data
        x = frames.astype(jnp.float32) / 255.0
        return ((x - jnp.asarray(d.mean)) / jnp.asarray(d.std)).astype(self.dtype)

    # -- objective ---------------------------------------------------------------------------
    def loss(self, params, target, batch, rng):
        del rng  # masks come from the data pipeline
        b, g = batch["frames"].shape[0], self.masks.num_groups
        pairs = {k: batch[k].reshape((b * g,) + batch[k].shape[2:]) for k in MASK_KEYS}
        pred, h, tokens = self.predict(params, target, self.normalize(batch["frames"]), pairs,
                                       groups=g)
        valid = pairs["target_valid"][..., None].astype(jnp.float32)
        per_pair = (jnp.abs(pred - h) * valid).sum(axis=(1, 2, 3)) / (
            valid.sum(axis=(1, 2, 3)) * h.shape[-1])
        per_group = per_pair.reshape(b, g).mean(axis=0)
        metrics = {f"loss_{name}": per_group[i] for i, name in enumerate(self.masks.spec.groups)}
        # `tokens` repeats each example once per group: the same std across examples.
        metrics.update(collapse_monitors(tokens, pred, pairs["target_valid"]))
        return per_group.mean(), metrics

    # -- evaluation --------------------------------------------------------------------------
    def eval_example_fn(self):
        return None

    def outputs(self, target, inputs):
        """Target-encoder tokens, pooled: all of them (features) and per time slice."""
        tokens = self.encoder(target, self.normalize(inputs["frames"])).astype(jnp.float32)
        t = self.grid[0]
        per_slice = tokens.reshape(tokens.shape[0], t, -1, tokens.shape[-1]).mean(axis=2)
        return {"features": tokens.mean(axis=1), "video_tokens": per_slice}

    def baselines(self):
        return {"raw pixels + frame difference": functools.partial(
            pixel_and_difference_tokens, tubelet_frames=self.config.model.tubelet_frames)}

    def flops_per_step(self, global_batch: int) -> float:
        m = self.config.model
        return self.jepa_flops(global_batch, int(np.prod(self.grid)),
                               m.tubelet_frames * m.patch_size ** 2 * 3, 1,
                               groups=self.masks.num_groups)


def _frames_and_masks(example, rng, *, masks: TubeletMasks):
    return {"frames": example["frames"], **masks(rng)}


def pixel_and_difference_tokens(arrays, *, tubelet_frames: int) -> dict[str, np.ndarray]:
    """Per time slice: its mean frame and |last - first frame|, each pooled to 8 x 8 x 3, in
    [0, 1]: (N, slices, 384) tokens, and their mean as features."""
    video = arrays["frames"].astype(np.float32) / 255.0
    n, t, h, w, c = video.shape
    p = BASELINE_POOL
    slices = video.reshape(n, t // tubelet_frames, tubelet_frames, h, w, c)
    mean = slices.mean(axis=2)
    diff = np.abs(slices[:, :, -1] - slices[:, :, 0])

    def pooled(x):
        return x.reshape(n, t // tubelet_frames, p, h // p, p, w // p, c).mean(axis=(3, 5)) \
            .reshape(n, t // tubelet_frames, -1)
    tokens = np.concatenate([pooled(mean), pooled(diff)], axis=-1)
    return {"features": tokens.mean(axis=1), "video_tokens": tokens}


def validate(config) -> None:
    m, d = config.model, config.data
    validate_vit_model(m)
    if m.tubelet_frames <= 0 or d.frames % m.tubelet_frames:
        raise ConfigError(f"data.frames={d.frames} must be a positive multiple of "
                          f"model.tubelet_frames={m.tubelet_frames}")
    if d.image_size % m.patch_size or d.image_size % BASELINE_POOL:
        raise ConfigError(f"data.image_size={d.image_size} must be divisible by "
                          f"model.patch_size={m.patch_size} and by {BASELINE_POOL} (the pixel "
                          "baseline's pooling)")
    if m.width % 6 or m.pred_width % 6:
        raise ConfigError(f"3-D sin-cos positions split the width into thirds of sines and "
                          f"cosines: model.width={m.width} and model.pred_width={m.pred_width} "
                          "must be divisible by 6")
    if len(d.mean) != 3 or len(d.std) != 3:
        raise ConfigError("data.mean and data.std need one value per RGB channel")

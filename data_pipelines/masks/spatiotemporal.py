"""Brain-JEPA spatiotemporal masks on the (ROI, time patch) token grid, token = roi * W + t.

One observation block; targets from three regions around it: Cross-ROI (alpha: other ROIs, same
time), Cross-Time (beta: the context's ROIs, other time) and Double-Cross (gamma: other ROIs,
other time). Both semantics emit fixed-capacity index arrays with validity masks, so one compiled
step serves every batch. Settings (the released yaml's names in brackets):
observation_scale [enc_mask_scale] 0.84-1.0, cross_roi_scale [pred_mask_R_scale] 0.45-0.6,
cross_roi_time_scale [pred_mask_T_roi_scale] 0.2-0.6, cross_time_roi_scale
[pred_mask_R_roi_scale] 0.15-0.3, cross_time_scale [pred_mask_T_scale] 0.0-0.4.

``paper`` (default, per example; Dong et al. 2024, Sec. 3.3)
    * observation: ROI and time fractions drawn independently from observation_scale (rounded,
      at least one); ``roi_blocks='contiguous'`` takes a run of consecutive ROIs of the atlas
      order (Schaefer orders ROIs by network, so a block is network-coherent; the paper draws
      blocks on the grid), ``'random'`` a random ROI subset; its time columns are a contiguous
      window at any position (the last column can be observed);
    * alpha: cross_roi_scale of all ROIs, a contiguous time window of cross_roi_time_scale of the
      columns inside the observation window; its ROIs are removed from the context at all times;
    * beta and gamma: one block each (K = 1 per region, as the paper), ``max(1, round(W * s))``
      columns at the early or the late end (chosen at random), s from cross_time_scale; beta's
      ROIs are a block of the context's ROIs, gamma's a block of the other ROIs, each
      cross_time_roi_scale of its pool; their columns are removed from the context;
    * the context is what remains of the observation; fewer than ``min_context`` tokens
      redraws the example. Three target blocks (alpha, beta, gamma), predicted separately.

``official`` (``mask.official=True``; the released ``MaskCollator_fmri``), its quirks kept:
    * sizes from ``int()`` (truncation) of fraction x count; the alpha and observation sizes are
      drawn once per batch, the beta/gamma sizes per example; the observation's ROI and time
      fractions are separate draws from the same range;
    * ROI sets are random (non-contiguous) subsets; the observation starts in [0, W - w), so
      the last time column is never observed;
    * beta/gamma ROIs: ``int(n * s)`` of the ROIs that are both observed and in alpha, plus
      ``int(n * s)`` of all others (one fraction s), at ``int(W * t)`` columns drawn from the
      hard-coded first three {0, 1, 2} and last three (the code hard-codes {7, 8, 9} for W = 10;
      here {W-3, W-2, W-1}), zero columns allowed; drawn once for each end;
    * all targets (alpha, late, early) are concatenated into one list, duplicates kept (they are
      counted twice by the loss); the code's min_keep check is vacuous (it measures the grid's
      row count);
    * each batch's context and target lists are cut to the batch minimum in index order (the
      code also does; truncated entries are marked invalid here). A batch whose shortest context
      is empty is redrawn (the code would crash).
    numpy's RNG, not torch's: same distributions, different draws.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from data_pipelines.masks.multiblock import MaskConfigError, pack, resolve_capacity, spec_from_config

MAX_RESAMPLES = 200
OFFICIAL_END_COLUMNS = 3  # the released collator's hard-coded early/late column pools


@dataclasses.dataclass(frozen=True)
class SpatiotemporalSpec:
    grid: tuple[int, int]                              # (ROIs, time patches)
    observation_scale: tuple[float, float] = (0.84, 1.0)
    cross_roi_scale: tuple[float, float] = (0.45, 0.6)
    cross_roi_time_scale: tuple[float, float] = (0.2, 0.6)
    cross_time_roi_scale: tuple[float, float] = (0.15, 0.3)
    cross_time_scale: tuple[float, float] = (0.0, 0.4)
    roi_blocks: str = "contiguous"                     # paper mode: contiguous | random
    min_context: int = 4
    official: bool = False
    context_capacity: Any = None                       # None (exact max) | 'auto' | int
    target_capacity: Any = None
    pad_multiple: int = 1

    @classmethod
    def from_config(cls, mask_config, grid) -> "SpatiotemporalSpec":
        return spec_from_config(cls, mask_config, grid)

    def validate(self) -> None:
        rois, cols = self.grid
        for f in dataclasses.fields(self):
            if f.name.endswith("_scale"):
                lo, hi = getattr(self, f.name)
                low_ok = 0 <= lo if f.name == "cross_time_scale" else 0 < lo
                if not (low_ok and lo <= hi <= 1):
                    raise MaskConfigError(f"mask.{f.name}={(lo, hi)} must satisfy 0 < low <= high "
                                          "<= 1 (fractions of the ROIs or time patches)")
        if self.roi_blocks not in ("contiguous", "random"):
            raise MaskConfigError(f"mask.roi_blocks={self.roi_blocks!r}: use 'contiguous' or "
                                  "'random'")
        if rois < 2 or cols < 2:
            raise MaskConfigError(f"spatiotemporal masks need at least 2 ROIs and 2 time patches, "
                                  f"got a {rois}x{cols} grid (data.frames / model.patch)")
        if self.official and cols < 2 * OFFICIAL_END_COLUMNS:
            raise MaskConfigError(
                f"official masks draw cross-time columns from the first and last "
                f"{OFFICIAL_END_COLUMNS} time patches, so they need at least "
                f"{2 * OFFICIAL_END_COLUMNS}; the grid has {cols} (data.frames / model.patch)")
        if not 0 <= self.min_context < rois * cols:
            raise MaskConfigError(f"mask.min_context={self.min_context} must be in "
                                  f"[0, {rois * cols})")


def _fraction(rng, scale, n: int, rounding) -> int:
    return rounding(n * rng.uniform(*scale))


class SpatiotemporalMasks:
    """Call per example (paper semantics) or ``sample_batch`` per batch (official)."""

    num_targets_paper = 3  # alpha, beta, gamma

    def __init__(self, spec: SpatiotemporalSpec):
        spec.validate()
        self.spec = spec
        self.rois, self.cols = spec.grid
        self.num_targets = 1 if spec.official else self.num_targets_paper
        exact_ctx, exact_tgt = self._exact_max()
        self.context_capacity = self._capacity(spec.context_capacity, exact_ctx, "context")
        self.target_capacity = self._capacity(spec.target_capacity, exact_tgt, "target")

    # -- capacities --------------------------------------------------------------------------
    def _exact_max(self) -> tuple[int, int]:
        s, r, w = self.spec, self.rois, self.cols
        if s.official:
            obs = int(r * s.observation_scale[1] - 1e-9) * int(w * s.observation_scale[1] - 1e-9)
            alpha = int(r * s.cross_roi_scale[1]) * int(w * s.cross_roi_time_scale[1])
            ends = 2 * r * min(OFFICIAL_END_COLUMNS, int(w * s.cross_time_scale[1]))
            return max(obs, 1), alpha + ends
        obs = r * w
        alpha = round(r * s.cross_roi_scale[1]) * max(1, round(w * s.cross_roi_time_scale[1]))
        ends = r * max(1, round(w * s.cross_time_scale[1]))
        return obs, max(alpha, ends)

    def _capacity(self, setting, exact: int, which: str) -> int:
        def sampled():
            rng = np.random.default_rng(0)
            if self.spec.official:
                return [n for _ in range(64) for n in self._official_draw(rng, 64)[which]]
            return [self._sample(rng)[which] for _ in range(2048)]
        return resolve_capacity(setting, exact, which, self.spec.pad_multiple, sampled)

    # -- paper semantics ---------------------------------------------------------------------
    def _roi_block(self, rng, pool: np.ndarray, k: int) -> np.ndarray:
        """k ROIs of `pool` (sorted): a run of consecutive entries, or a random subset."""
        k = min(max(k, 1), len(pool))
        if self.spec.roi_blocks == "random":
            return np.sort(rng.choice(pool, k, replace=False))
        start = rng.integers(0, len(pool) - k + 1)
        return pool[start:start + k]

    def _sample(self, rng) -> dict:
        s, r, w = self.spec, self.rois, self.cols
        every_roi = np.arange(r)
        for _ in range(MAX_RESAMPLES):
            obs_rois = self._roi_block(rng, every_roi, _fraction(rng, s.observation_scale, r, round))
            obs_w = min(max(_fraction(rng, s.observation_scale, w, round), 1), w)
            t0 = rng.integers(0, w - obs_w + 1)
            alpha_rois = self._roi_block(rng, every_roi, _fraction(rng, s.cross_roi_scale, r, round))
            alpha_w = min(max(_fraction(rng, s.cross_roi_time_scale, w, round), 1), obs_w)
            ta = t0 + rng.integers(0, obs_w - alpha_w + 1)
            ctx_rois = np.setdiff1d(obs_rois, alpha_rois)
            other_rois = np.setdiff1d(every_roi, ctx_rois)
            blocks = [self._grid(alpha_rois, np.arange(ta, ta + alpha_w))]
            removed = np.zeros(w, bool)
            for pool in (ctx_rois, other_rois):  # beta, gamma
                if len(pool) == 0:
                    break
                n_cols = min(max(_fraction(rng, s.cross_time_scale, w, round), 1), w)
                cols = np.arange(n_cols) if rng.uniform() < 0.5 else np.arange(w - n_cols, w)
                rois = self._roi_block(rng, pool, _fraction(rng, s.cross_time_roi_scale,
                                                            len(pool), round))
                blocks.append(self._grid(rois, cols))
                removed[cols] = True
            else:
                ctx_cols = np.arange(t0, t0 + obs_w)
                context = self._grid(ctx_rois, ctx_cols[~removed[ctx_cols]])
                if len(context) >= max(s.min_context, 1):
                    return {"blocks": blocks, "context_idx": context, "context": len(context),
                            "target": max(len(b) for b in blocks)}
        raise MaskConfigError(
            f"could not keep mask.min_context={s.min_context} context tokens in {MAX_RESAMPLES} "
            f"draws on a {r}x{w} grid: lower min_context or the target scales")

    def _grid(self, rois: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Sorted token indices of rois x cols."""
        return np.sort((rois[:, None] * self.cols + cols[None, :]).reshape(-1)).astype(np.int64)

    def __call__(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One example's masks (paper semantics)."""
        drawn = self._sample(rng)
        ctx_idx, ctx_valid = pack(drawn["context_idx"], self.context_capacity, rng)
        packed = [pack(b, self.target_capacity, rng) for b in drawn["blocks"]]
        return {"context_idx": ctx_idx, "context_valid": ctx_valid,
                "target_idx": np.stack([p[0] for p in packed]),
                "target_valid": np.stack([p[1] for p in packed])}

    # -- official semantics ------------------------------------------------------------------
    def _official_draw(self, rng, batch_size: int) -> dict:
        s, r, w = self.spec, self.rois, self.cols
        # Per batch: the alpha block's size, then the observation's (ROI and time drawn apart).
        alpha_h, alpha_w = _fraction(rng, s.cross_roi_scale, r, int), \
            _fraction(rng, s.cross_roi_time_scale, w, int)
        obs_h, obs_w = _fraction(rng, s.observation_scale, r, int), \
            _fraction(rng, s.observation_scale, w, int)
        if max(alpha_h, obs_h) >= r or max(alpha_w, obs_w) >= w or obs_w <= alpha_w:
            # The code raises here too: a block the size of the grid, or alpha not inside.
            raise MaskConfigError(
                f"official masks drew an observation of {obs_h}x{obs_w} and an alpha block of "
                f"{alpha_h}x{alpha_w} on a {r}x{w} grid; the collator needs both smaller than the "
                "grid and alpha narrower than the observation: adjust the scales")
        contexts, targets = [], []
        for _ in range(batch_size):
            obs_rois = rng.permutation(r)[:obs_h]
            t0 = rng.integers(0, w - obs_w)                      # never reaches the last column
            observed = np.zeros((r, w), bool)
            observed[obs_rois, t0:t0 + obs_w] = True
            alpha_rois = rng.permutation(r)[:alpha_h]
            ta = t0 + rng.integers(0, obs_w - alpha_w)
            alpha = np.zeros((r, w), bool)
            alpha[alpha_rois, ta:ta + alpha_w] = True
            observed[alpha_rois, :] = False
            in_both = np.intersect1d(obs_rois, alpha_rois)       # the code's e_roi_mask
            others = np.setdiff1d(np.arange(r), in_both)         # its e_roi_nonmask
            lists = [np.flatnonzero(alpha)]
            for late in (True, False):
                frac = rng.uniform(*s.cross_time_roi_scale)
                h1, h2 = int(len(in_both) * frac), int(len(others) * frac)
                n_cols = _fraction(rng, s.cross_time_scale, w, int)
                rois = np.concatenate([rng.permutation(others)[:h2], rng.permutation(in_both)[:h1]])
                cols = rng.permutation(OFFICIAL_END_COLUMNS)[:n_cols]
                cols = cols + (w - OFFICIAL_END_COLUMNS if late else 0)
                block = np.zeros((r, w), bool)
                block[np.ix_(rois, cols)] = True
                lists.append(np.flatnonzero(block))
                observed[:, cols] = False
            contexts.append(np.flatnonzero(observed))
            targets.append(np.concatenate(lists))               # duplicates kept, as the code
        return {"contexts": contexts, "targets": targets,
                "context": [len(c) for c in contexts], "target": [len(t) for t in targets]}

    def sample_batch(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        """A batch's masks under the released collator's semantics (module docstring)."""
        for _ in range(MAX_RESAMPLES):
            drawn = self._official_draw(rng, batch_size)
            keep_c, keep_t = min(drawn["context"]), min(drawn["target"])
            if keep_c > 0 and keep_t > 0:
                break
        else:
            raise MaskConfigError("official masks kept an empty context or target list in every "
                                  "draw: raise the observation scale or the target scales")
        ctx = [pack(c[:keep_c], self.context_capacity, rng) for c in drawn["contexts"]]
        tgt = [pack(t[:keep_t], self.target_capacity, rng) for t in drawn["targets"]]
        return {"context_idx": np.stack([c[0] for c in ctx]),
                "context_valid": np.stack([c[1] for c in ctx]),
                "target_idx": np.stack([t[0] for t in tgt])[:, None],
                "target_valid": np.stack([t[1] for t in tgt])[:, None]}

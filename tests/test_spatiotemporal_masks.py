"""Spatiotemporal masks (data_pipelines/masks/spatiotemporal.py): the paper semantics' invariants
per example, and the released collator's rules in official mode."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines.masks.multiblock import MaskConfigError
from data_pipelines.masks.spatiotemporal import SpatiotemporalMasks, SpatiotemporalSpec

ROIS, COLS = 40, 10


def tokens(idx, valid):
    return set(np.asarray(idx)[np.asarray(valid)].tolist())


def rois_cols(ts):
    return {t // COLS for t in ts}, {t % COLS for t in ts}


@pytest.mark.parametrize("roi_blocks", ["contiguous", "random"])
def test_paper_masks_keep_targets_out_of_the_context(roi_blocks):
    masks = SpatiotemporalMasks(SpatiotemporalSpec(grid=(ROIS, COLS), roi_blocks=roi_blocks))
    rng = np.random.default_rng(0)
    for _ in range(300):
        m = masks(rng)
        assert m["target_idx"].shape == (3, masks.target_capacity)
        ctx = tokens(m["context_idx"], m["context_valid"])
        alpha, beta, gamma = (tokens(i, v) for i, v in zip(m["target_idx"], m["target_valid"]))
        assert len(ctx) >= 4 and alpha and beta and gamma
        assert not ctx & (alpha | beta | gamma)                  # disjoint
        ctx_rois, ctx_cols = rois_cols(ctx)
        alpha_rois, alpha_cols = rois_cols(alpha)
        assert not ctx_rois & alpha_rois                          # Cross-ROI ROIs gone at all times
        assert alpha_cols <= set(range(min(ctx_cols | alpha_cols), max(ctx_cols | alpha_cols) + 1))
        beta_rois, beta_cols = rois_cols(beta)
        gamma_rois, gamma_cols = rois_cols(gamma)
        assert not ctx_cols & (beta_cols | gamma_cols)            # Cross-Time columns gone
        assert beta_rois <= ctx_rois and not gamma_rois & ctx_rois  # beta: context ROIs; gamma: others
        for cols in (beta_cols, gamma_cols):                       # contiguous, at an end
            assert cols == set(range(min(cols), max(cols) + 1)) and (0 in cols or COLS - 1 in cols)
            assert len(cols) <= round(0.4 * COLS)
        assert 0.45 * ROIS - 1 <= len(alpha_rois) <= 0.6 * ROIS + 1
        if roi_blocks == "contiguous":
            r = sorted(alpha_rois)
            assert r == list(range(r[0], r[-1] + 1))
        # valid entries first, sorted; padding after
        for idx, valid in [(m["context_idx"], m["context_valid"])] + list(zip(m["target_idx"],
                                                                             m["target_valid"])):
            n = int(valid.sum())
            assert valid[:n].all() and not valid[n:].any()
            assert np.all(np.diff(idx[:n]) > 0)


def test_paper_observation_covers_most_of_the_grid():
    masks = SpatiotemporalMasks(SpatiotemporalSpec(grid=(ROIS, COLS)))
    rng = np.random.default_rng(1)
    last_col_seen = 0
    for _ in range(400):
        m = masks(rng)
        ctx = tokens(m["context_idx"], m["context_valid"])
        alpha = tokens(m["target_idx"][0], m["target_valid"][0])
        rois, cols = rois_cols(ctx)
        assert len(rois | rois_cols(alpha)[0]) >= 0.84 * ROIS - 1  # observation ROIs
        last_col_seen += (COLS - 1) in cols
    assert last_col_seen > 0  # unlike the released collator, the last column can be observed


def official_batches(n=200, batch=8, grid=(ROIS, COLS), seed=0):
    masks = SpatiotemporalMasks(SpatiotemporalSpec(grid=grid, official=True))
    rng = np.random.default_rng(seed)
    return masks, [masks.sample_batch(rng, batch) for _ in range(n)]


def test_official_masks_follow_the_released_collator():
    masks, batches = official_batches()
    duplicates = 0
    for b in batches:
        assert b["target_idx"].shape[1] == 1  # one concatenated target list
        # batch-min truncation: every example keeps the same number of entries
        assert len(set(b["context_valid"].sum(1))) == 1 and len(set(b["target_valid"].sum(-1).ravel())) == 1
        for i in range(len(b["context_idx"])):
            ctx = tokens(b["context_idx"][i], b["context_valid"][i])
            tgt = b["target_idx"][i, 0][b["target_valid"][i, 0]]
            ctx_rois, ctx_cols = rois_cols(ctx)
            assert COLS - 1 not in ctx_cols               # the last column is never observed
            assert not ctx & set(tgt.tolist())
            duplicates += len(tgt) - len(set(tgt.tolist()))
            # cross-time entries only in the hard-coded first / last three columns
            _, tgt_cols = rois_cols(set(tgt.tolist()) - ctx)
            outside = tgt_cols - set(range(0, 3)) - set(range(COLS - 3, COLS))
            assert outside <= set(range(1, COLS - 1))     # alpha lives inside the observation
    assert duplicates > 0  # concatenated targets can repeat a token, as in the code


def test_official_sizes_are_truncated_fractions():
    """Observation ROI count int(R * s), s in [0.84, 1): at most R - 1 ROIs, at least 33."""
    masks, batches = official_batches(n=100)
    counts = []
    for b in batches:
        for i in range(len(b["context_idx"])):
            ctx = tokens(b["context_idx"][i], b["context_valid"][i])
            counts.append(len(rois_cols(ctx)[0]))
    assert max(counts) <= ROIS - 1


def test_official_masks_need_six_time_patches_and_paper_masks_two():
    with pytest.raises(MaskConfigError, match="at least 6"):
        SpatiotemporalMasks(SpatiotemporalSpec(grid=(ROIS, 5), official=True))
    SpatiotemporalMasks(SpatiotemporalSpec(grid=(ROIS, 2)))
    with pytest.raises(MaskConfigError, match="0 < low <= high"):
        SpatiotemporalMasks(SpatiotemporalSpec(grid=(ROIS, COLS), cross_roi_scale=(0.7, 0.5)))


def test_capacities_bound_the_lists_and_auto_is_a_high_percentile():
    exact = SpatiotemporalMasks(SpatiotemporalSpec(grid=(ROIS, COLS)))
    auto = SpatiotemporalMasks(SpatiotemporalSpec(grid=(ROIS, COLS), context_capacity="auto",
                                                  target_capacity="auto"))
    assert auto.context_capacity <= exact.context_capacity
    assert auto.target_capacity <= exact.target_capacity
    rng = np.random.default_rng(3)
    full = [exact(rng) for _ in range(200)]
    kept = np.mean([m["context_valid"].sum() <= auto.context_capacity for m in full])
    assert kept >= 0.97

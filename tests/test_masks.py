"""Multi-block mask sampler: I-JEPA's settings, fixed shapes, determinism, official quirks."""

import math

import numpy as np
import pytest

from data_pipelines.masks.multiblock import MaskConfigError, MultiBlockMasks, MultiBlockSpec

GRID = (14, 14)  # 224 / 16, the paper's grid
N = GRID[0] * GRID[1]


def blocks_of(idx, valid):
    """(rows, cols) bounding box and count of a list of flat indices."""
    flat = idx[valid]
    r, c = np.divmod(flat, GRID[1])
    return r.min(), r.max(), c.min(), c.max(), len(flat)


def sample(n=300, seed=0, **kw):
    masks = MultiBlockMasks(MultiBlockSpec(grid=GRID, **kw))
    rng = np.random.default_rng(seed)
    return masks, [masks(rng) for _ in range(n)]


def test_target_blocks_are_rectangles_with_paper_scale_and_aspect():
    masks, out = sample()
    areas, aspects, heights, widths = [], [], [], []
    for ex in out:
        for idx, valid in zip(ex["target_idx"], ex["target_valid"]):
            r0, r1, c0, c1, count = blocks_of(idx, valid)
            h, w = r1 - r0 + 1, c1 - c0 + 1
            assert count == h * w, "a target block must be a full rectangle"
            areas.append(h * w / N)
            aspects.append(h / w)
            heights.append(h)
            widths.append(w)
    # Side lengths are rounded, so allow one patch of slack around the configured ranges.
    assert all(0.15 * 0.7 < a < 0.2 * 1.3 for a in areas)
    assert all(0.75 * 0.7 < a < 1.5 * 1.3 for a in aspects)
    assert 0.15 < np.mean(areas) < 0.2, np.mean(areas)
    assert np.isclose(np.mean(aspects), np.mean(np.linspace(0.75, 1.5, 1000)), atol=0.1)
    # h = round(sqrt(scale * N * aspect)), w = round(sqrt(scale * N / aspect)) at the extremes
    side = lambda scale, aspect: round(math.sqrt(scale * N * aspect))
    assert (min(heights), max(heights)) == (side(0.15, 0.75), side(0.2, 1.5))  # 5, 8
    assert (min(widths), max(widths)) == (side(0.15, 1 / 1.5), side(0.2, 1 / 0.75))  # 4, 7


def test_context_is_disjoint_from_targets_and_keeps_minimum():
    _, out = sample(min_context=10)
    for ex in out:
        ctx = set(ex["context_idx"][ex["context_valid"]].tolist())
        assert len(ctx) >= 10
        for idx, valid in zip(ex["target_idx"], ex["target_valid"]):
            assert not ctx & set(idx[valid].tolist())


def test_context_block_scale_before_target_removal():
    _, out = sample(num_targets=1, target_scale=(0.01, 0.01), target_aspect=(1.0, 1.0))
    # With one 1-patch target, the context is its 0.85-1.0 square block (side 13 or 14 on the
    # 14x14 grid) minus that patch when it falls inside.
    counts = {int(ex["context_valid"].sum()) for ex in out}
    sides = (round(math.sqrt(0.85 * N)), round(math.sqrt(1.0 * N)))
    assert counts <= {side ** 2 - removed for side in sides for removed in (0, 1)}, counts
    assert {side ** 2 for side in sides} & counts and {s ** 2 - 1 for s in sides} & counts


def test_allow_overlap_keeps_targets_in_context():
    _, out = sample(allow_overlap=True)
    overlaps = 0
    for ex in out:
        ctx = set(ex["context_idx"][ex["context_valid"]].tolist())
        overlaps += sum(bool(ctx & set(i[v].tolist()))
                        for i, v in zip(ex["target_idx"], ex["target_valid"]))
    assert overlaps > 0


def test_fixed_shapes_sorted_unique_valid_entries():
    masks, out = sample(context_capacity=None, target_capacity=None)
    for ex in out:
        assert ex["context_idx"].shape == (masks.context_capacity,)
        assert ex["target_idx"].shape == (4, masks.target_capacity)
        assert ex["context_valid"].dtype == bool and ex["context_idx"].dtype == np.int32
        v = ex["context_idx"][ex["context_valid"]]
        assert np.all(np.diff(v) > 0) and v.max() < N
        # validity is a prefix: padding only at the end
        assert not np.any(np.diff(ex["context_valid"].astype(int)) > 0)
    assert masks.context_capacity == N  # scale 1.0 can keep the whole grid


def test_deterministic_under_seed():
    _, a = sample(n=20, seed=3)
    _, b = sample(n=20, seed=3)
    _, c = sample(n=20, seed=4)
    same = all(np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in x)
    differ = any(not np.array_equal(x[k], y[k]) for x, y in zip(a, c) for k in x)
    assert same and differ


def test_capacity_auto_and_int_subsample_long_lists():
    masks = MultiBlockMasks(MultiBlockSpec(grid=GRID, context_capacity="auto"))
    assert masks.context_capacity < N
    masks = MultiBlockMasks(MultiBlockSpec(grid=GRID, context_capacity=40, pad_multiple=16))
    assert masks.context_capacity == 48
    rng = np.random.default_rng(0)
    full = [masks(rng) for _ in range(50)]
    assert all(ex["context_valid"].sum() <= 48 for ex in full)
    assert any(ex["context_valid"].sum() == 48 for ex in full)  # long contexts were subsampled


def test_official_semantics_quirks():
    masks = MultiBlockMasks(MultiBlockSpec(grid=GRID, official=True))
    rng = np.random.default_rng(0)
    sizes = []
    for _ in range(40):
        batch = masks.sample_batch(rng, 8)
        # truncated to the batch minimum: every example has the same number of valid entries
        ctx_counts = batch["context_valid"].sum(1)
        assert len(set(ctx_counts.tolist())) == 1
        tgt_counts = batch["target_valid"].sum(2)
        assert len(set(tgt_counts.ravel().tolist())) == 1
        # one block size per batch; blocks never touch the last row or column
        shapes = set()
        for ex_idx, ex_valid in zip(batch["target_idx"], batch["target_valid"]):
            for idx, valid in zip(ex_idx, ex_valid):
                r0, r1, c0, c1, count = blocks_of(idx, valid)
                assert r1 < GRID[0] - 1 and c1 < GRID[1] - 1
                assert count > 10  # "more than min_keep" applies to targets too
                shapes.add((r1 - r0 + 1, c1 - c0 + 1))
        assert len(shapes) == 1
        sizes += list(shapes)
    # one uniform draw sets both scale and aspect: area and h/w move together across batches
    areas = [h * w for h, w in sizes]
    ratios = [h / w for h, w in sizes]
    assert np.corrcoef(areas, ratios)[0, 1] > 0.3  # independent draws give ~0


def test_official_truncation_keeps_row_major_prefix():
    masks = MultiBlockMasks(MultiBlockSpec(grid=GRID, official=True))
    batch = masks.sample_batch(np.random.default_rng(1), 16)
    keep = batch["context_valid"][0].sum()
    for idx, valid in zip(batch["context_idx"], batch["context_valid"]):
        v = idx[valid]
        assert len(v) == keep and np.all(np.diff(v) > 0)


def test_official_semantics_fail_clearly_where_reference_loops_forever():
    # 7x7 grid: target blocks hold at most 9 patches, never "more than min_keep=10".
    masks = MultiBlockMasks(MultiBlockSpec(grid=(7, 7), official=True))
    with pytest.raises(MaskConfigError, match="min_context"):
        masks.sample_batch(np.random.default_rng(0), 4)


@pytest.mark.parametrize("kw, match", [
    ({"target_scale": (0.2, 1.5)}, "target_scale"),
    ({"context_scale": (0.0, 1.0)}, "context_scale"),
    ({"target_aspect": (-1, 1)}, "target_aspect"),
    ({"num_targets": 0}, "num_targets"),
    ({"min_context": 500}, "min_context"),
])
def test_bad_mask_settings_are_clear_errors(kw, match):
    with pytest.raises(MaskConfigError, match=match):
        MultiBlockMasks(MultiBlockSpec(grid=GRID, **kw))


def test_unsatisfiable_min_context_is_a_clear_error():
    masks = MultiBlockMasks(MultiBlockSpec(grid=(4, 4), num_targets=4, target_scale=(0.9, 1.0),
                                           min_context=5))
    with pytest.raises(MaskConfigError, match="lower min_context"):
        masks(np.random.default_rng(0))

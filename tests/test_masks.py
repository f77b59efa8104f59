"""Multi-block mask sampler: I-JEPA's settings, fixed shapes, determinism, official quirks."""

import math

import numpy as np
import pytest

from data_pipelines.masks.block_area import largest_jepax_block, largest_official_block
from data_pipelines.masks.multiblock import (MaskConfigError, MultiBlockMasks, MultiBlockSpec,
                                             block_size, _official_block_size)

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


# -- exact capacities -------------------------------------------------------------------------
def _open_overlap(*intervals) -> bool:
    return max(lo for lo, _ in intervals) < min(hi for _, hi in intervals)


def jepax_block_sizes_brute(scale, aspect, grid) -> set[tuple[int, int]]:
    """Every (h, w) jepax's sampler draws with positive probability, pair by pair: in
    x = log scale, y = log aspect, side h needs x + y in an open interval and side w needs
    x - y in one; the pair occurs iff that region meets the open box of the draws."""
    n = grid[0] * grid[1]
    log = lambda v: math.log(v) if v > 0 else -math.inf

    def side_range(k, top):  # open interval of log(side^2 / N) rounding to k after clipping
        lo = -math.inf if k == 1 else log((k - 0.5) ** 2 / n)
        return lo, (math.inf if k == top else log((k + 0.5) ** 2 / n))

    (s0, s1), (a0, a1) = scale, aspect
    x, y = (log(s0), log(s1)), (log(a0), log(a1))
    found = set()
    for h in range(1, grid[0] + 1):
        for w in range(1, grid[1] + 1):
            p, q = side_range(h, grid[0]), side_range(w, grid[1])
            if s0 == s1 and a0 == a1:
                size = lambda r: round(math.sqrt(r))
                ok = (min(max(size(s0 * n * a0), 1), grid[0]),
                      min(max(size(s0 * n / a0), 1), grid[1])) == (h, w)
            elif s0 == s1:
                ok = _open_overlap(y, (p[0] - x[0], p[1] - x[0]), (x[0] - q[1], x[0] - q[0]))
            elif a0 == a1:
                ok = _open_overlap(x, (p[0] - y[0], p[1] - y[0]), (q[0] + y[0], q[1] + y[0]))
            else:  # two convex sets: separating-axis test on x, y, x + y and x - y
                ok = (_open_overlap(x, ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2))
                      and _open_overlap(y, ((p[0] - q[1]) / 2, (p[1] - q[0]) / 2))
                      and _open_overlap(p, (x[0] + y[0], x[1] + y[1]))
                      and _open_overlap(q, (x[0] - y[1], x[1] - y[0])))
            if ok:
                found.add((h, w))
    return found


def official_block_sizes_brute(scale, aspect, grid) -> set[tuple[int, int]]:
    """Every (h, w) the reference collator draws with positive probability: for each area
    m = int(N * scale(u)) with a u-interval of positive length, the aspects of that interval,
    checked pair by pair against the open interval each rounded side needs."""
    n = grid[0] * grid[1]
    (s0, s1), (a0, a1) = scale, aspect
    found = set()
    for m in range(int(n * s0), int(n * s1) + 1):
        if s1 > s0:
            u = (max((m / n - s0) / (s1 - s0), 0.0), min(((m + 1) / n - s0) / (s1 - s0), 1.0))
            if u[0] >= u[1]:
                continue
        else:
            u = (0.0, 1.0)
        aspects = (a0 + u[0] * (a1 - a0), a0 + u[1] * (a1 - a0))
        for h in range(grid[0]):
            for w in range(grid[1]):
                if m == 0 or a0 == a1:
                    a = aspects[0]
                    ok = (min(max(round(math.sqrt(m * a)), 0), grid[0] - 1),
                          min(max(round(math.sqrt(m / a)), 0), grid[1] - 1)) == (h, w)
                else:
                    lo_h = 0.0 if h == 0 else (h - 0.5) ** 2 / m
                    hi_h = math.inf if h == grid[0] - 1 else (h + 0.5) ** 2 / m
                    lo_w = 0.0 if w == grid[1] - 1 else m / (w + 0.5) ** 2
                    hi_w = math.inf if w == 0 else m / (w - 0.5) ** 2
                    ok = _open_overlap(aspects, (lo_h, hi_h), (lo_w, hi_w))
                if ok:
                    found.add((h, w))
    return found


CAPACITY_CASES = [  # (scale, aspect): I-JEPA's targets and context, and other shapes
    ((0.15, 0.2), (0.75, 1.5)), ((0.85, 1.0), (1.0, 1.0)), ((0.1, 0.3), (0.5, 2.0)),
    ((0.4, 0.4), (0.6, 1.7)), ((0.2, 0.25), (1.3, 1.3))]


@pytest.mark.parametrize("scale,aspect", CAPACITY_CASES)
def test_exact_capacity_equals_brute_force_enumeration_on_every_grid(scale, aspect):
    grids = [(g, g) for g in range(4, 33)] + [(6, 9), (12, 7), (20, 32)]
    for grid in grids:
        jepax = max(h * w for h, w in jepax_block_sizes_brute(scale, aspect, grid))
        assert largest_jepax_block(scale, aspect, grid) == jepax, grid
        official = max(h * w for h, w in official_block_sizes_brute(scale, aspect, grid))
        assert largest_official_block(scale, aspect, grid, _official_block_size) == official, grid


def test_exact_capacity_finds_the_narrow_sizes_a_sweep_missed():
    # Grid 28, I-JEPA's target scales: a 13 x 13 block needs scale * aspect and scale / aspect
    # both >= 12.5^2 / 784, i.e. scale > 0.1993 and aspect within 0.35% of 1 (the old 65 x 65
    # sweep of the parameters gave 168).
    assert (13, 13) in jepax_block_sizes_brute((0.15, 0.2), (0.75, 1.5), (28, 28))
    spec = MultiBlockSpec(grid=(28, 28), target_capacity=None, context_capacity=None)
    assert MultiBlockMasks(spec).target_capacity == 169
    # Sampled blocks never exceed the exact capacity, and reach it.
    rng = np.random.default_rng(0)
    sizes = [math.prod(block_size(rng.uniform(0.1995, 0.2), rng.uniform(0.999, 1.001), 784,
                                   (28, 28))) for _ in range(200)]
    assert max(sizes) == 169

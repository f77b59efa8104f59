"""Point clouds: FPS / kNN / sequencer geometry, the patch tokenizer, the loaders on real files
(the CGAL meshes of Debian's libcgal-demo; .h5 and .npy written here), the two mask samplers'
invariants, augmentations, the D2 descriptor and the SVM / few-shot / retrieval evaluators."""

from __future__ import annotations

import shutil

import h5py
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy.spatial import cKDTree

from data_pipelines import points, shapes
from data_pipelines.errors import DataError
from data_pipelines.masks.sequence_blocks import SequenceBlocks
from data_pipelines.masks.multiblock import MaskConfigError
from data_pipelines.masks.spatial_blocks import SpatialBlocks
from jepax.evaluators.few_shot import few_shot
from jepax.evaluators.linear_svm import linear_svm
from jepax.evaluators.retrieval import retrieval
from jepax.models import point_ops
from jepax.models.functional import Functional
from jepax.models.tokenizers import PointPatchEmbed
from jepax.state import CHEAP_COMPILE

CGAL = shapes.cgal_dir()


@pytest.fixture(scope="module")
def cgal():
    if not (CGAL / "meshes").is_dir():
        pytest.fail(f"the CGAL meshes are missing: {shapes.CGAL_HELP}")
    return CGAL


@pytest.fixture(scope="module")
def clouds(cgal):
    """Two real shapes (cow, pig), 1024 surface points each, unit sphere: (2, 1024, 3)."""
    return np.stack([points.normalize(points.read_points(cgal / "meshes" / f, 1024, seed=0))
                     for f in ("cow.off", "pig.off")]).astype(np.float32)


def data_config(**kw):
    base = dict(path="", shapes="small", points=256, sample_points=512, up_axis=2,
                h5_train="*train*.h5", h5_test="*test*.h5")
    return ml_collections.ConfigDict({**base, **kw})


# -- geometry ----------------------------------------------------------------------------------
def min_pairwise(x):
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    return d[np.triu_indices(len(x), 1)].min()


def test_fps_picks_well_spread_centres_and_is_deterministic(clouds):
    idx = np.asarray(jax.jit(point_ops.farthest_point_sample, static_argnums=1)(clouds, 64))
    assert idx.shape == (2, 64) and idx[:, 0].tolist() == [0, 0]
    rng = np.random.default_rng(0)
    for b in range(2):
        assert len(set(idx[b])) == 64
        spread = min_pairwise(clouds[b, idx[b]])
        random_best = max(min_pairwise(clouds[b, rng.choice(1024, 64, replace=False)])
                          for _ in range(50))
        assert spread > 2 * random_best, (spread, random_best)
    again = np.asarray(point_ops.farthest_point_sample(jnp.asarray(clouds), 64))
    alone = np.asarray(point_ops.farthest_point_sample(jnp.asarray(clouds[1:]), 64))
    np.testing.assert_array_equal(idx, again)
    np.testing.assert_array_equal(idx[1:], alone)  # batching changes nothing


def test_knn_groups_are_the_true_nearest_neighbours(clouds):
    centres = clouds[:, :40]
    idx = np.asarray(jax.jit(point_ops.knn_indices, static_argnums=2)(centres, clouds, 32))
    for b in range(2):
        _, truth = cKDTree(clouds[b]).query(centres[b], k=32)
        np.testing.assert_array_equal(idx[b], truth)  # same points, same (nearest-first) order


def test_point_tokenizer_shapes_and_centred_groups(clouds):
    tok = Functional(lambda rngs: PointPatchEmbed(16, 8, 24, (8, 16, 32), dtype=jnp.float32,
                                                  rngs=rngs))
    groups, centres = point_ops.group_points(jnp.asarray(clouds), 16, 8)
    assert groups.shape == (2, 16, 8, 3) and centres.shape == (2, 16, 3)
    np.testing.assert_allclose(groups[:, :, 0], 0.0, atol=1e-6)  # a centre is its own nearest
    assert float(jnp.abs(groups).max()) < 0.5  # patches are local
    key = jax.random.key(0)
    params = jax.jit(tok.init).lower(key).compile(compiler_options=CHEAP_COMPILE)(key)
    tokens, token_centres = jax.jit(tok)(params, clouds)
    assert tokens.shape == (2, 16, 24) and np.isfinite(tokens).all()
    np.testing.assert_array_equal(token_centres, centres)


def test_sequencer_makes_neighbours_in_sequence_neighbours_in_space(clouds):
    centres = point_ops.gather_points(
        jnp.asarray(clouds), point_ops.farthest_point_sample(jnp.asarray(clouds), 64))
    order = np.asarray(jax.jit(point_ops.nearest_neighbour_order)(centres))
    centres = np.asarray(centres)
    rng = np.random.default_rng(0)
    for b in range(2):
        assert sorted(order[b]) == list(range(64))
        assert order[b, 0] == np.argmin(centres[b].sum(-1))
        step = lambda o: np.linalg.norm(np.diff(centres[b, o], axis=0), axis=1).mean()
        random_steps = np.mean([step(rng.permutation(64)) for _ in range(20)])
        assert step(order[b]) < 0.4 * random_steps, (step(order[b]), random_steps)
        # greedy: each next centre is the nearest one not yet visited
        for i in range(1, 64):
            rest = order[b, i:]
            d = np.linalg.norm(centres[b, rest] - centres[b, order[b, i - 1]], axis=1)
            assert d[0] == d.min()


# -- loaders on real files ---------------------------------------------------------------------
def test_reads_real_cgal_meshes_and_point_scans(cgal):
    for rel in ("meshes/cow.off", "meshes/sphere.ply", "meshes/pig.stl", "points_3/hippo1.ply",
                "points_3/kitten.xyz"):
        x = points.read_points(cgal / rel, 500, seed=1)
        assert x.shape == (500, 3) and x.dtype == np.float32 and np.isfinite(x).all(), rel
    # Surface samples of CGAL's sphere (a 320-face icosphere of radius 0.5), from OFF and PLY.
    for rel in ("meshes/sphere.off", "meshes/sphere.ply"):
        r = np.linalg.norm(points.read_points(cgal / rel, 2000, seed=0), axis=1)
        assert 0.47 < r.min() and r.max() < 0.501, rel
    cow = points.read_points(cgal / "meshes/cow.off", 300, seed=3)
    np.testing.assert_array_equal(cow, points.read_points(cgal / "meshes/cow.off", 300, seed=3))
    assert not np.array_equal(cow, points.read_points(cgal / "meshes/cow.off", 300, seed=4))
    # A point scan is subsampled: every returned point is one of the file's points.
    scan = points.read_points(cgal / "points_3/hippo1.ply", 400, seed=0)
    file_points = np.asarray(points._load_geometry(cgal / "points_3/hippo1.ply").vertices)
    assert cKDTree(file_points).query(scan)[0].max() < 1e-6


def test_reads_modelnet_off_files_with_counts_on_the_header_line(cgal, tmp_path):
    text = (cgal / "meshes/cow.off").read_text()
    assert text.startswith("OFF\n")
    quirky = tmp_path / "cow.off"
    quirky.write_text("OFF" + text[4:])  # ModelNet's "OFF2904 5804 0"
    np.testing.assert_array_equal(points.read_points(quirky, 256, seed=0),
                                  points.read_points(cgal / "meshes/cow.off", 256, seed=0))


def test_bad_files_give_one_clear_error(tmp_path):
    broken = tmp_path / "broken.off"
    broken.write_text("OFF\n3 1 0\n0 0 0\n1 0\n")
    with pytest.raises(DataError, match="broken.off"):
        points.read_points(broken, 10)
    with pytest.raises(DataError, match="does not exist"):
        points.read_points(tmp_path / "missing.off", 10)
    with pytest.raises(DataError, match="ModelNet-style"):
        points.mesh_folder_source(data_config(path=str(tmp_path / "nowhere")), "train")
    with pytest.raises(DataError, match="no shape files"):
        points.mesh_folder_source(data_config(path=str(tmp_path)), "train")
    with pytest.raises(DataError, match="data.path is empty"):
        points.points_h5_source(data_config(), "train")


def modelnet_folder(cgal, root):
    """<root>/<class>/<split>/ with real CGAL files of three formats."""
    layout = {"animal": {"train": ["meshes/cow.off", "meshes/pig.stl"],
                         "test": ["points_3/hippo1.ply"]},
              "sphere": {"train": ["meshes/sphere.off", "meshes/sphere.ply"],
                         "test": ["meshes/sphere966.off"]}}
    for cls, splits in layout.items():
        for split, files in splits.items():
            (root / cls / split).mkdir(parents=True)
            for f in files:
                shutil.copy(cgal / f, root / cls / split)
    return root


def test_mesh_folder_source_reads_a_modelnet_layout(cgal, tmp_path, monkeypatch):
    monkeypatch.setenv("JEPAX_CACHE", str(tmp_path / "cache"))
    root = modelnet_folder(cgal, tmp_path / "ModelNet")
    d = data_config(path=str(root))
    train = points.mesh_folder_source(d, "train")
    assert len(train) == 4 and train.classes == ["animal", "sphere"]
    assert train.labels.tolist() == [0, 0, 1, 1]
    example = train[2]
    assert example["points"].shape == (512, 3) and example["label"] == 1
    assert list(example) == ["points", "label", "instance"]
    assert len(list((tmp_path / "cache" / "points").glob("*.npy"))) == 1  # cached
    np.testing.assert_array_equal(points.mesh_folder_source(d, "train").points, train.points)
    test, rotated = (points.mesh_folder_source(d, s) for s in ("test", "test_rotated"))
    assert rotated.labels.tolist() == test.labels.tolist() == [0, 1]
    assert rotated.instances.tolist() == test.instances.tolist()
    # The rotated view: same shapes, new samples, turned about z: the z spread is unchanged.
    for a, b in zip(test.points, rotated.points):
        assert not np.allclose(a, b)
        assert abs(np.ptp(a[:, 2]) - np.ptp(b[:, 2])) < 0.05 * np.ptp(a[:, 2])


def test_points_h5_source_reads_scanobjectnn_files(tmp_path):
    rng = np.random.default_rng(0)
    clouds = rng.normal(size=(2, 5, 600, 3)).astype(np.float32)
    for split, x in zip(("training", "test"), clouds):
        with h5py.File(tmp_path / f"{split}_objectdataset_augmentedrot_scale75.h5", "w") as h:
            h["data"], h["label"] = x, np.arange(5, dtype=np.int64)[:, None] % 3
    d = data_config(path=str(tmp_path), h5_train="training_*.h5", h5_test="test_*.h5")
    train = points.points_h5_source(d, "train")
    assert train.points.shape == (5, 512, 3) and train.labels.tolist() == [0, 1, 2, 0, 1]
    for stored, original in zip(train.points, clouds[0]):  # a subset of each cloud's points
        assert cKDTree(original).query(stored)[0].max() < 1e-6
    test, rotated = (points.points_h5_source(d, s) for s in ("test", "test_rotated"))
    norms = lambda x: np.sort(np.linalg.norm(x[..., :2], axis=-1))  # about z: xy radii kept
    np.testing.assert_allclose(norms(rotated.points), norms(test.points), atol=1e-5)
    with pytest.raises(DataError, match="fewer than"):
        points.points_h5_source(data_config(path=str(tmp_path), sample_points=1024), "train")


def test_shapenet_npy_source_reads_listed_point_sets(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "shapenet_pc").mkdir()
    names = ["02691156-a.npy", "02691156-b.npy", "03001627-c.npy"]
    for n in names:
        np.save(tmp_path / "shapenet_pc" / n, rng.normal(size=(800, 3)).astype(np.float32))
    (tmp_path / "train.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "test.txt").write_text(names[2] + "\n")
    d = data_config(path=str(tmp_path))
    train = points.shapenet_npy_source(d, "train")
    assert train.classes == ["02691156", "03001627"] and train.labels.tolist() == [0, 0, 1]
    assert len(points.shapenet_npy_source(d, "test")) == 1


def test_default_shapes_folder_holds_out_whole_families(cgal, tmp_path, monkeypatch):
    families = {"animal": [("meshes/cow.off",), ("meshes/pig.off", "meshes/pig.stl"),
                           ("points_3/hippo1.ply",)]}
    root = shapes.build(tmp_path / "shapes", procedural_train=2, procedural_test=1,
                        copies_train=2, copies_test=1, categories=families)
    monkeypatch.setenv("JEPAX_CACHE", str(tmp_path / "cache"))  # sampled points go here
    d = data_config(path=str(root))
    train, test = (points.mesh_folder_source(d, s) for s in ("train", "test"))
    assert train.classes == sorted(["animal", *shapes.PROCEDURAL])
    animal = train.classes.index("animal")
    names = lambda split: sorted(p.name for p in (root / "animal" / split).iterdir())
    # Families 0 and 2 train (2 copies per file), family 1 (both pig files) is held out.
    assert names("train") == ["cow_off_00.ply", "cow_off_01.ply", "hippo1_ply_00.ply",
                              "hippo1_ply_01.ply"]
    assert names("test") == ["pig_off_00.ply", "pig_stl_00.ply"]
    assert (train.labels == animal).sum() == 4 and (test.labels == animal).sum() == 2
    assert (root / "box" / "train" / "box_0000.off").exists()


# -- masks -------------------------------------------------------------------------------------
def test_point_jepa_masks_are_contiguous_disjoint_sequence_ranges():
    blocks = SequenceBlocks(64, num_targets=4, target_ratio=(0.15, 0.2),
                            context_ratio=(0.4, 0.75))
    assert (blocks.target_capacity, blocks.context_capacity) == (12, 41)
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(300):
        m = blocks(rng)
        assert m["target_idx"].shape == (4, 12) and m["context_idx"].shape == (41,)
        targets = set()
        for idx, valid in zip(m["target_idx"], m["target_valid"]):
            run = idx[valid]
            assert len(run) == valid.sum() and 9 <= len(run) <= 12  # int(64 * [0.15, 0.2])
            np.testing.assert_array_equal(run, np.arange(run[0], run[0] + len(run)))
            targets |= set(run.tolist())
            sizes.add(len(run))
        assert len({int(v.sum()) for v in m["target_valid"]}) == 1  # one size per batch
        context = m["context_idx"][m["context_valid"]]
        assert not targets & set(context.tolist())
        remaining = [i for i in range(64) if i not in targets]
        start = remaining.index(context[0])  # a contiguous run of the remaining positions
        assert context.tolist() == remaining[start:start + len(context)]
        assert int(0.4 * len(remaining)) <= len(context) <= max(1, int(0.75 * len(remaining)))
    assert sizes == {9, 10, 11, 12}


def test_3d_jepa_masks_are_compact_blocks_and_a_disjoint_context(clouds):
    centres = point_ops.gather_points(
        jnp.asarray(clouds), point_ops.farthest_point_sample(jnp.asarray(clouds), 64))
    blocks = SpatialBlocks(64, num_targets=4, target_ratio=(0.15, 0.2),
                           context_ratio=(0.85, 1.0))
    sample = jax.jit(blocks)
    c = np.asarray(centres)
    for step in range(20):
        ctx, ctx_valid, tgt, tgt_valid = map(np.asarray, sample(jax.random.key(step), centres))
        assert ctx.shape == (2, 54) and tgt.shape == (2, 4, 13)  # 54 = 64 - round(64 * 0.15)
        for b in range(2):
            n_t = tgt_valid[b].sum(-1)
            assert len(set(n_t.tolist())) == 1 and 10 <= n_t[0] <= 13  # round(64 * r)
            covered = set()
            for idx, valid in zip(tgt[b], tgt_valid[b]):
                block = idx[valid]
                seed = block[0]  # nearest first: the block's own centre
                d = np.linalg.norm(c[b] - c[b, seed], axis=1)
                outside = np.setdiff1d(np.arange(64), block)
                assert d[block].max() <= d[outside].min() + 1e-6  # a ball around the seed
                covered |= set(block.tolist())
            context = ctx[b][ctx_valid[b]]
            assert len(context) >= 1 and len(set(context.tolist())) == len(context)
            assert not covered & set(context.tolist())
    with pytest.raises(MaskConfigError, match="covered entirely"):
        SpatialBlocks(64, num_targets=8, target_ratio=(0.3, 0.3), context_ratio=(0.5, 0.5))


# -- transforms and the classical descriptor ---------------------------------------------------
def test_augmentations_subsample_normalise_and_rotate_about_the_up_axis(clouds):
    rng = np.random.default_rng(0)
    x = points.augment(clouds[0], rng, ops=("rotate",), count=512, scale=(1, 1),
                       translate=0.0, up_axis=2)
    assert x.shape == (512, 3) and x.dtype == np.float32
    assert np.linalg.norm(x, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-6)
    # rotation about z keeps each point's height: the heights are the normalised input's
    ref = points.normalize(clouds[0][np.random.default_rng(0).choice(1024, 512, replace=False)])
    np.testing.assert_allclose(np.sort(x[:, 2]), np.sort(ref[:, 2]), atol=1e-5)
    y = points.augment(clouds[0], rng, ops=("scale_translate",), count=512, scale=(2 / 3, 1.5),
                       translate=0.2, up_axis=2)
    assert np.abs(y.mean(0)).max() <= 0.2 + 1e-5 and np.abs(y).max() <= 1.5 + 0.2


def test_d2_descriptor_is_a_rotation_invariant_distance_density(clouds):
    r = points.rotation_about(1, 0.7) @ points.rotation_about(2, 1.9)
    h = points.d2_histogram(clouds)
    assert h.shape == (2, 64)
    np.testing.assert_allclose(h.sum(-1) * 2 / 64, 1.0, rtol=1e-6)  # densities over [0, 2]
    np.testing.assert_allclose(points.d2_histogram(clouds @ r.T.astype(np.float32)), h,
                               atol=2 * 32 / 8192)  # at most a pair moves across a bin edge
    assert np.abs(h[0] - h[1]).sum() > 0.1  # cow and pig differ


# -- evaluators --------------------------------------------------------------------------------
def blobs(n, d=16, classes=5, sep=3.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, sep, (classes, d))
    y = np.arange(n) % classes
    return centers[y] + rng.normal(0, 1, (n, d)), y


def test_linear_svm_separates_blobs_and_reports_seed_mean_and_std():
    x, y = blobs(400)
    assert linear_svm(x[:300], y[:300], x[300:], y[300:], C=0.012)["svm_acc"] > 0.9
    noise = np.random.default_rng(2).normal(size=(400, 16))
    chance = linear_svm(noise[:300], y[:300], noise[300:], y[300:])["svm_acc"]
    assert chance < 0.4
    # Two "seeds" of the same examples: one informative, one noise -> their mean and std.
    both = linear_svm(np.stack([x, noise], 1)[:300], y[:300], np.stack([x, noise], 1)[300:],
                      y[300:])
    assert both["svm_seeds"] == 2
    assert both["svm_acc"] == pytest.approx((1.0 + chance) / 2)
    assert both["svm_acc_std"] == pytest.approx((1.0 - chance) / 2)


def test_few_shot_episodes_on_blobs_and_noise():
    x, y = blobs(600)
    kw = dict(ways=5, shots=5, queries=10, episodes=6, C=0.012)
    assert few_shot(x[:300], y[:300], x[300:], y[300:], **kw)["few_shot_acc"] > 0.9
    noise = np.random.default_rng(3).normal(size=(600, 16))
    assert few_shot(noise[:300], y[:300], noise[300:], y[300:], **kw)["few_shot_acc"] < 0.4
    with pytest.raises(ValueError, match="only 5 classes"):
        few_shot(x[:300], y[:300], x[300:], y[300:], **{**kw, "ways": 6})


def test_retrieval_finds_the_same_instance_under_a_new_view():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 32))
    keys = rng.permutation(100)
    order = rng.permutation(100)
    near = retrieval(x, keys, x[order] + rng.normal(0, 0.1, x.shape), keys[order])
    assert near["retrieval_top1"] == 1.0 and near["retrieval_mrr"] == 1.0
    far = retrieval(x, keys, rng.normal(size=(100, 32)), keys)
    assert far["retrieval_top1"] < 0.1 and far["retrieval_mrr"] < 0.2
    with pytest.raises(ValueError, match="no gallery item"):
        retrieval(x, keys, x, keys + 1000)

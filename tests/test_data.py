"""Data sources on real files, clear errors on bad ones, and the grain pipeline."""

import gzip
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from data_pipelines import images as img
from data_pipelines.masks.multiblock import MultiBlockMasks, MultiBlockSpec
from data_pipelines.pipeline import eval_arrays, train_dataset
from data_pipelines.transforms import augment, random_resized_crop


@pytest.fixture(scope="module")
def fmnist():
    return img.fashion_mnist(None, "train")


def test_fashion_mnist_real_files(fmnist):
    test = img.fashion_mnist(None, "test")
    assert len(fmnist) == 60000 and len(test) == 10000
    ex = fmnist[0]
    assert ex["image"].shape == (28, 28, 1) and ex["image"].dtype == np.uint8
    assert set(np.unique(fmnist.labels)) == set(range(10))
    assert np.bincount(test.labels).tolist() == [1000] * 10  # the published balanced test set
    assert 0.25 < fmnist.images.mean() / 255 < 0.32  # Fashion-MNIST's mean intensity ~0.286


def copy_fmnist(tmp_path, *stems):
    for stem in stems:
        shutil.copy(f"{img.FASHION_MNIST_DIR}/{stem}.gz", tmp_path / f"{stem}.gz")


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(img.DataError, match="apt-get install dataset-fashion-mnist"):
        img.fashion_mnist(str(tmp_path / "nowhere"), "train")
    copy_fmnist(tmp_path, "train-images-idx3-ubyte")
    with pytest.raises(img.DataError, match="train-labels-idx1-ubyte.*apt-get"):
        img.fashion_mnist(str(tmp_path), "train")


def test_truncated_and_corrupt_idx_are_clear_errors(tmp_path):
    raw = gzip.decompress(open(f"{img.FASHION_MNIST_DIR}/t10k-labels-idx1-ubyte.gz", "rb").read())
    (tmp_path / "short").write_bytes(raw[:-10])
    with pytest.raises(img.DataError, match="truncated or corrupt"):
        img.read_idx(tmp_path / "short")
    (tmp_path / "magic").write_bytes(b"\x12\x34" + raw[2:])
    with pytest.raises(img.DataError, match="not an IDX file"):
        img.read_idx(tmp_path / "magic")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(raw)[:100])
    with pytest.raises(img.DataError, match="corrupt"):
        img.read_idx(tmp_path / "bad.gz")
    np.testing.assert_array_equal(img.read_idx(f"{img.FASHION_MNIST_DIR}/t10k-labels-idx1-ubyte.gz"),
                                  np.frombuffer(raw[8:], np.uint8))


def test_image_folder_reads_png_and_jpeg(tmp_path, fmnist):
    for i in range(6):
        cls = tmp_path / f"class_{fmnist.labels[i]}"
        cls.mkdir(exist_ok=True)
        ext = "png" if i % 2 else "jpg"
        Image.fromarray(fmnist.images[i, ..., 0]).save(cls / f"{i}.{ext}")
    (tmp_path / "class_x").mkdir()
    (tmp_path / "class_x" / "notes.txt").write_text("ignored")
    folder = img.ImageFolder(str(tmp_path), channels=1)
    assert len(folder) == 6
    ex = [folder[i] for i in range(6)]
    assert all(e["image"].shape == (28, 28, 1) for e in ex)
    pngs = [(e, f) for e, f in zip(ex, folder.files) if f[0].suffix == ".png"]
    idx = int(pngs[0][1][0].stem)
    np.testing.assert_array_equal(pngs[0][0]["image"][..., 0], fmnist.images[idx, ..., 0])
    assert folder.classes[pngs[0][0]["label"]] == f"class_{fmnist.labels[idx]}"


def test_image_folder_errors(tmp_path):
    with pytest.raises(img.DataError, match="does not exist"):
        img.ImageFolder(str(tmp_path / "missing"))
    (tmp_path / "a").mkdir()
    with pytest.raises(img.DataError, match="no PNG/JPEG"):
        img.ImageFolder(str(tmp_path))
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(img.DataError, match="broken.png is corrupt"):
        img.ImageFolder(str(tmp_path), channels=1)[0]


def test_tfds_source_with_mock_data():
    # Building a real TFDS dataset needs TensorFlow, which jepax does not depend on; reading
    # one goes through tfds.data_source exactly as here.
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        src = img.TFDSSource("fashion_mnist", "train", None)
        assert len(src) == 12
        ex = src[3]
        assert ex["image"].shape == (28, 28, 1) and ex["image"].dtype == np.uint8


def test_tfds_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(img.DataError, match=r"(?s)not prepared.*tfds build fashion_mnist --file_format=array_record"):
        img.TFDSSource("fashion_mnist", "train", str(tmp_path))


def test_procedural_shapes_deterministic_and_labelled():
    src = img.ProceduralShapes(100, 28)
    a, b = src[7], img.ProceduralShapes(100, 28)[7]
    np.testing.assert_array_equal(a["image"], b["image"])
    assert a["label"] == 7 and a["image"].shape == (28, 28, 1)
    assert not np.array_equal(src[7]["image"], src[17]["image"])


def test_random_resized_crop_shapes_and_flip():
    rng = np.random.default_rng(0)
    image = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28, 1)  # no two columns alike
    out = random_resized_crop(image, rng, 16)
    assert out.shape == (16, 16, 1) and out.dtype == np.uint8
    flipped = 0
    for seed in range(40):  # full-image crops: the only change left is the flip
        plain = augment(image, np.random.default_rng(seed), 28, (1.0, 1.0), hflip=False)
        maybe = augment(image, np.random.default_rng(seed), 28, (1.0, 1.0), hflip=True)
        np.testing.assert_array_equal(plain, image)
        if np.array_equal(maybe, image[:, ::-1]):
            flipped += 1
        else:
            np.testing.assert_array_equal(maybe, image)
    assert 10 <= flipped <= 30  # a fair coin: 20 of 40 expected


def _pipeline(source, shard, batch=8, seed=0, num_workers=0, start=0):
    masks = MultiBlockMasks(MultiBlockSpec(grid=(7, 7)))

    def example_fn(ex, rng):
        return {"image": ex["image"], "label": ex["label"], **masks(rng)}

    return iter(train_dataset(source, seed=seed, global_batch=batch, example_fn=example_fn,
                              num_threads=1, prefetch=1, shard=shard, num_workers=num_workers,
                              start=start))


def test_pipeline_deterministic_and_shards_partition_the_global_batch(fmnist):
    single = _pipeline(fmnist, (0, 1))
    again = _pipeline(fmnist, (0, 1))
    a, b = next(single), next(again)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["image"].shape == (8, 28, 28, 1) and a["context_idx"].shape[0] == 8
    s0, s1 = next(_pipeline(fmnist, (0, 2))), next(_pipeline(fmnist, (1, 2)))
    assert s0["image"].shape[0] == 4
    # Two processes' local batches interleave into exactly the one-process global batch,
    # masks included (they are drawn per global example index, before sharding).
    for k in a:
        merged = np.empty_like(a[k])
        merged[0::2], merged[1::2] = s0[k], s1[k]
        np.testing.assert_array_equal(merged, a[k])
    other_seed = next(_pipeline(fmnist, (0, 1), seed=1))
    assert not np.array_equal(other_seed["label"], a["label"])


def test_worker_processes_give_the_same_batches():
    src = img.ProceduralShapes(64, 28)
    threads, workers = _pipeline(src, (0, 1)), _pipeline(src, (0, 1), num_workers=2)
    for _ in range(3):
        a, b = next(threads), next(workers)
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_stream_reopened_at_a_position_continues_it_exactly():
    """What resuming relies on: the stream from batch k (with threads or a worker process) is
    the full stream's batches k, k+1, ... (masks included), across an epoch boundary."""
    src = img.ProceduralShapes(24, 28)  # 3 batches per epoch
    full = _pipeline(src, (0, 1))
    expected = [next(full) for _ in range(6)][4:]
    for num_workers in (0, 1):
        resumed = _pipeline(src, (0, 1), start=4, num_workers=num_workers)
        for want in expected:
            got = next(resumed)
            assert all(np.array_equal(got[k], want[k]) for k in want)


def test_pipeline_reshuffles_each_epoch():
    src = img.ProceduralShapes(16, 8)
    it = _pipeline(src, (0, 1), batch=16)
    e1, e2 = next(it)["label"], next(it)["label"]
    # every epoch holds each example once, in a new order
    assert sorted(e1.tolist()) == sorted(e2.tolist()) and not np.array_equal(e1, e2)


def test_pipeline_errors(fmnist):
    with pytest.raises(ValueError, match="divisible by the 3 processes"):
        _pipeline(fmnist, (0, 3), batch=8)
    with pytest.raises(img.DataError, match="empty"):
        train_dataset([], seed=0, global_batch=4)


def test_eval_arrays_are_a_fixed_subset_stacked_by_key(fmnist):
    a1, a2 = eval_arrays(fmnist, 100), eval_arrays(fmnist, 100)
    assert a1["image"].shape == (100, 28, 28, 1) and a1["label"].dtype == np.int32
    np.testing.assert_array_equal(a1["label"], a2["label"])
    np.testing.assert_array_equal(a1["image"], a2["image"])
    assert not np.array_equal(eval_arrays(fmnist, 100, seed=1)["label"], a1["label"])
    crop = lambda e: {**e, "image": e["image"][:8, :8]}
    shapes = eval_arrays(img.ProceduralShapes(30, 12), None, crop)
    assert shapes["image"].shape == (30, 8, 8, 1)
    assert sorted(shapes["label"].tolist()) == sorted(i % 10 for i in range(30))

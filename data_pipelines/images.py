"""Image sources: random-access datasets yielding {'image': uint8 (H, W, C), 'label': int}.

* Fashion-MNIST (or MNIST) in the published IDX format, gzipped or not;
* any TFDS dataset already prepared on disk, read through ``tfds.data_source``;
* image folders: one subfolder per class, PNG/JPEG files;
* procedural shapes: ten classes of drawn shapes, deterministic per index, for fast tests.

A missing or malformed dataset raises :class:`DataError` naming the file and how to fix it.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_HELP = (
    "install the Debian package with `sudo apt-get install dataset-fashion-mnist` (puts the IDX "
    f"files in {FASHION_MNIST_DIR}) or download the four *-ubyte.gz files from "
    "https://github.com/zalandoresearch/fashion-mnist and set --config.data.path to their folder")

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST/Fashion-MNIST format), gzipped or raw."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError as e:
        raise DataError(f"IDX file {path} does not exist") from e
    except (OSError, EOFError) as e:
        raise DataError(f"IDX file {path} is corrupt ({e}); re-download or reinstall it") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4]!r}); "
                        "re-download or reinstall it")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated inside its header; re-download it")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"IDX file {path} holds {len(raw)} bytes but its header {shape} needs "
                        f"{expected}: the file is truncated or corrupt; re-download it")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (directory / name).exists():
            return directory / name
    raise DataError(f"Fashion-MNIST file {stem}[.gz] not found in {directory}: {FASHION_MNIST_HELP}")


class ArraySource:
    """In-memory images (N, H, W, C) uint8 + labels (N,)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, name: str):
        if images.ndim != 4 or images.dtype != np.uint8:
            raise DataError(f"{name}: images must be uint8 (N, H, W, C), got {images.dtype} "
                            f"{images.shape}")
        if len(images) != len(labels):
            raise DataError(f"{name}: {len(images)} images but {len(labels)} labels")
        if len(images) == 0:
            raise DataError(f"{name} is empty")
        self.images, self.labels, self.name = images, labels.astype(np.int32), name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i]}


def fashion_mnist(path: str | None, split: str) -> ArraySource:
    """Fashion-MNIST from the IDX files in `path` (default: the Debian package's folder)."""
    directory = Path(path or FASHION_MNIST_DIR)
    if not directory.is_dir():
        raise DataError(f"Fashion-MNIST folder {directory} does not exist: {FASHION_MNIST_HELP}")
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise DataError(f"Fashion-MNIST split {split!r} does not exist; use 'train' or 'test'")
    images = read_idx(_find(directory, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(directory, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(f"Fashion-MNIST files in {directory} have shapes {images.shape} and "
                        f"{labels.shape}; expected (N, 28, 28) images and (N,) labels")
    return ArraySource(images[..., None], labels, f"fashion_mnist/{split}")


class ImageFolder:
    """`root/<class>/<file>.png|jpg|jpeg`; classes sorted by name; decoded lazily to RGB or L."""

    EXTENSIONS = {".png", ".jpg", ".jpeg"}

    def __init__(self, root: str, channels: int = 3):
        root_path = Path(root)
        if not root_path.is_dir():
            raise DataError(f"image folder {root} does not exist; point --config.data.path at a "
                            "folder with one subfolder of PNG/JPEG images per class")
        self.classes = sorted(p.name for p in root_path.iterdir() if p.is_dir())
        self.files = [(f, label) for label, c in enumerate(self.classes)
                      for f in sorted((root_path / c).iterdir())
                      if f.suffix.lower() in self.EXTENSIONS]
        if not self.files:
            raise DataError(f"image folder {root} holds no PNG/JPEG files in class subfolders "
                            "(expected root/<class>/<image>.png)")
        self.mode = {1: "L", 3: "RGB"}[channels]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        from PIL import Image, UnidentifiedImageError

        path, label = self.files[i]
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert(self.mode), np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise DataError(f"image {path} is corrupt or unreadable ({e}); remove or replace it")
        return {"image": arr.reshape(arr.shape[0], arr.shape[1], -1), "label": np.int32(label)}


class TFDSSource:
    """A prepared TFDS dataset read with `tfds.data_source` (no TensorFlow needed)."""

    def __init__(self, name: str, split: str, data_dir: str | None, image_key="image",
                 label_key="label"):
        import tensorflow_datasets as tfds

        try:
            self.source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
        except Exception as e:  # TFDS raises several types for a dataset that isn't prepared
            raise DataError(
                f"TFDS dataset {name!r} (split {split!r}) is not prepared in "
                f"{data_dir or '~/tensorflow_datasets'} in a random-access format; prepare it with "
                f"`tfds build {name} --file_format=array_record` on a machine with internet, then "
                f"copy the folder and set --config.data.data_dir ({type(e).__name__}: {e})") from e
        if len(self.source) == 0:
            raise DataError(f"TFDS dataset {name}/{split} is empty")
        self.image_key, self.label_key = image_key, label_key

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict:
        record = self.source[i]
        image = np.asarray(record[self.image_key], np.uint8)
        if image.ndim == 2:
            image = image[..., None]
        return {"image": image, "label": np.int32(record.get(self.label_key, -1))}


class ProceduralShapes:
    """Ten classes of drawn shapes at random position, size, intensity and noise.

    Deterministic per (seed, index): the same index always gives the same image."""

    NUM_CLASSES = 10

    def __init__(self, size: int, image_size: int, channels: int = 1, seed: int = 0):
        if size <= 0:
            raise DataError(f"procedural dataset size must be positive, got {size}")
        self.size, self.image_size, self.channels, self.seed = size, image_size, channels, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng((self.seed, i))
        label = int(i % self.NUM_CLASSES)
        n = self.image_size
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
        cy, cx = rng.uniform(0.3, 0.7, 2)
        r = rng.uniform(0.15, 0.3)
        dy, dx = yy - cy, xx - cx
        shape = [
            dy ** 2 + dx ** 2 < r ** 2,                                   # disc
            (abs(dy) < r) & (abs(dx) < r),                                # square
            (dy > -r) & (abs(dx) < (dy + r) / 2),                         # triangle
            (abs(dy) < r / 4) | (abs(dx) < r / 4),                        # cross
            np.sin(yy * n * 0.8) > 0.3,                                   # horizontal stripes
            np.sin(xx * n * 0.8) > 0.3,                                   # vertical stripes
            abs(dy - dx) < r / 3,                                         # diagonal line
            abs(np.sqrt(dy ** 2 + dx ** 2) - r) < r / 4,                  # ring
            (np.sin(yy * n) > 0.5) & (np.sin(xx * n) > 0.5),              # dot grid
            (abs(dy) < r / 3) & (abs(dx) < r),                            # horizontal bar
        ][label]
        img = shape * rng.uniform(0.6, 1.0) + rng.normal(0, 0.08, (n, n))
        img = np.clip(img * 255, 0, 255).astype(np.uint8)
        return {"image": np.repeat(img[..., None], self.channels, -1), "label": np.int32(label)}


# Factories for the sources registry (data_pipelines.sources): (data config, split) -> source.

def fashion_mnist_source(data_config, split: str) -> ArraySource:
    return fashion_mnist(data_config.get("path"), split)


def image_folder_source(data_config, split: str) -> ImageFolder:
    return ImageFolder(os.path.join(data_config.path, split), data_config.channels)


def tfds_source(data_config, split: str) -> TFDSSource:
    return TFDSSource(data_config.tfds_name, split, data_config.get("data_dir"))


def procedural_source(data_config, split: str) -> ProceduralShapes:
    size = data_config.procedural_size if split == "train" else data_config.procedural_size // 5
    return ProceduralShapes(size, data_config.image_size, data_config.channels,
                            seed=0 if split == "train" else 1)

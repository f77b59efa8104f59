"""Point-cloud sources: {'points': float32 (S, 3), 'label': int32, 'instance': int32}.

Readers for the formats point-cloud users have, all through the field's libraries:

* ``mesh_folder``: ModelNet-style folders ``<root>/<class>/<split>/<name>.<ext>`` of meshes
  (.off, .ply, .obj, .stl; read by trimesh, surface-sampled) or point files (.ply / .xyz point
  clouds, .npy arrays). ModelNet's .off files whose first line runs the counts into the
  header (``OFF490 518 0``) are read too. With no ``data.path`` it reads the default shapes
  folder (data_pipelines/shapes.py: the real meshes of Debian's libcgal-demo plus procedural
  primitives; ``data.shapes``: 'full' or 'small'), writing it once if it is missing.
* ``points_h5``: ScanObjectNN / ModelNet40-ply_hdf5_2048 style ``.h5`` files with ``data``
  (N, P, 3+) and ``label`` (N[, 1]) datasets (h5py).
* ``shapenet_npy``: ShapeNet-55 style ``.npy`` point sets listed in ``train.txt`` /
  ``test.txt`` (labels from the synset prefix of each file name, ``02691156-<id>.npy``).

Each example holds ``data.sample_points`` points of one shape (mesh surfaces are sampled once,
with a fixed seed, and cached under ``$JEPAX_CACHE``, default ``~/.cache/jepax``); the variants
subsample ``data.points`` of them per use. Splits: ``train``, ``test`` and ``test_rotated`` (the
test shapes sampled anew and rotated about the up axis: the instance-retrieval gallery).

Also here: unit-sphere normalisation, the papers' augmentations, the per-seed point subsets of
the evaluation, and the D2 shape distribution (Osada et al., 2002), a classical descriptor.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError

log = logging.getLogger("jepax")

MESH_SUFFIXES = (".off", ".ply", ".obj", ".stl")
POINT_SUFFIXES = (".xyz", ".npy")
SUFFIXES = MESH_SUFFIXES + POINT_SUFFIXES
SPLITS = ("train", "test", "test_rotated")
POINTS_HELP = "install the point-cloud extra: pip install -e .[points]"


def cache_dir() -> Path:
    return Path(os.environ.get("JEPAX_CACHE", Path.home() / ".cache" / "jepax"))


# -- reading one file --------------------------------------------------------------------------
def _trimesh():
    try:
        import trimesh
    except ImportError as e:
        raise DataError(f"reading meshes needs trimesh: {POINTS_HELP}") from e
    return trimesh


_OFF_RUN_ON = re.compile(rb"^OFF(?=\s*\d)")


def _load_geometry(path: Path):
    trimesh = _trimesh()
    try:
        if path.suffix.lower() == ".off":
            raw = path.read_bytes()
            if _OFF_RUN_ON.match(raw) and not raw[3:4].isspace():  # ModelNet: "OFF490 518 0"
                raw = b"OFF\n" + raw[3:]
            return trimesh.load(io.BytesIO(raw), file_type="off", process=False)
        return trimesh.load(path, process=False)
    except FileNotFoundError as e:
        raise DataError(f"shape file {path} does not exist") from e
    except Exception as e:  # trimesh raises many types for malformed files
        raise DataError(f"cannot read {path} ({type(e).__name__}: {e}); check that it is a "
                        f"valid {path.suffix} file or remove it from the folder") from e


def read_points(path: str | os.PathLike, count: int, seed: int = 0) -> np.ndarray:
    """`count` points (float32 (count, 3)) of the shape in `path`: uniform samples of a mesh's
    surface (area-weighted), or a random choice of a point file's points (with replacement
    only when it has fewer)."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    if path.suffix.lower() == ".npy":
        try:
            points = np.load(path)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read {path} as a numpy array ({e})") from e
        return _choose(_xyz(points, path), count, rng)
    geometry = _load_geometry(path)
    if hasattr(geometry, "to_mesh"):  # a Scene (multi-part OBJ/PLY): one mesh in world frame
        geometry = geometry.to_mesh()
    faces = getattr(geometry, "faces", None)
    if faces is not None and len(faces) and geometry.area > 0:
        points, _ = _trimesh().sample.sample_surface(geometry, count, seed=rng)
        return np.asarray(points, np.float32)
    return _choose(_xyz(np.asarray(geometry.vertices), path), count, rng)


def _xyz(points: np.ndarray, path) -> np.ndarray:
    if points.ndim != 2 or points.shape[1] < 3 or len(points) == 0:
        raise DataError(f"{path}: expected an (N, 3+) array of points, got shape {points.shape}")
    points = np.asarray(points[:, :3], np.float32)
    if not np.isfinite(points).all():
        raise DataError(f"{path} contains NaN or infinite coordinates")
    return points


def _choose(points: np.ndarray, count: int, rng) -> np.ndarray:
    return points[rng.choice(len(points), count, replace=len(points) < count)]


# -- geometry helpers shared by the pipeline, the variants and the baselines ---------------------
def normalize(points):
    """Centre a cloud (..., N, 3) on its mean and scale it into the unit sphere (numpy or jax)."""
    centred = points - points.mean(axis=-2, keepdims=True)
    radius = (centred ** 2).sum(axis=-1).max(axis=-1)[..., None, None] ** 0.5
    return centred / (radius + 1e-8)


def rotation_about(axis: int, angle: float) -> np.ndarray:
    """3 x 3 rotation by `angle` radians about coordinate axis 0 (x), 1 (y) or 2 (z)."""
    c, s = np.cos(angle), np.sin(angle)
    i, j = [a for a in range(3) if a != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


AUGMENTATIONS = ("scale", "rotate", "scale_translate")


def augment(points: np.ndarray, rng: np.random.Generator, *, ops, count: int, scale,
            translate: float, up_axis: int) -> np.ndarray:
    """The papers' training transform of one cloud (S, 3) -> (count, 3), float32:

    random subset of `count` points -> "scale" (Point-JEPA / point2vec: the two horizontal axes
    share one factor in `scale`, the up axis gets its own) -> centre + unit sphere -> "rotate"
    (a uniform angle about the up axis) -> "scale_translate" (Point-MAE: an independent factor
    in `scale` per axis, then a shift in [-translate, translate] per axis)."""
    x = points[rng.choice(len(points), count, replace=len(points) < count)].astype(np.float64)
    lo, hi = scale
    if "scale" in ops:
        horizontal, vertical = rng.uniform(lo, hi, 2)
        factors = np.full(3, horizontal)
        factors[up_axis] = vertical
        x = x * factors
    x = normalize(x)
    if "rotate" in ops:
        x = x @ rotation_about(up_axis, rng.uniform(0, 2 * np.pi)).T
    if "scale_translate" in ops:
        x = x * rng.uniform(lo, hi, 3) + rng.uniform(-translate, translate, 3)
    return x.astype(np.float32)


def seed_subsets(total: int, count: int, seeds: int) -> np.ndarray:
    """(seeds, count) point indices: evaluation seed s reads points subsets[s] of each cloud
    (a fixed random subset per seed; the clouds' points are i.i.d. surface samples, so this
    equals an independent random subsample per cloud). Seed 0 is the first `count` points."""
    rows = [np.arange(count)] + [np.random.default_rng(s).permutation(total)[:count]
                                 for s in range(1, seeds)]
    return np.stack(rows).astype(np.int32)


def d2_histogram(points: np.ndarray, bins: int = 64, pairs: int = 8192,
                 seed: int = 0, chunk: int = 256) -> np.ndarray:
    """D2 shape distribution (Osada et al., 2002): the histogram of distances between random
    point pairs of each unit-sphere cloud (..., N, 3) over [0, 2], as densities (float32
    (..., bins)). Invariant to rotation."""
    lead, n = points.shape[:-2], points.shape[-2]
    flat = np.asarray(points, np.float32).reshape(-1, n, 3)
    i, j = np.random.default_rng(seed).integers(0, n, (2, pairs))
    hist = np.empty((len(flat), bins), np.float32)
    for start in range(0, len(flat), chunk):
        part = flat[start:start + chunk]
        dist = np.sqrt(((part[:, i] - part[:, j]) ** 2).sum(-1))  # (chunk, pairs)
        cell = np.minimum((dist * (bins / 2.0)).astype(np.int64), bins - 1)
        cell += np.arange(len(part))[:, None] * bins
        hist[start:start + len(part)] = np.bincount(cell.ravel(), minlength=len(part) * bins
                                                    ).reshape(len(part), bins)
    return (hist * (bins / 2.0 / pairs)).reshape(*lead, bins)


# -- sources ---------------------------------------------------------------------------------
class PointSet:
    """In-memory clouds (N, S, 3) float32 with labels and instance ids (N,)."""

    def __init__(self, points: np.ndarray, labels: np.ndarray, name: str,
                 classes: list[str] | None = None, instances: np.ndarray | None = None):
        if points.ndim != 3 or points.shape[-1] != 3:
            raise DataError(f"{name}: points must be (N, S, 3), got {points.shape}")
        if len(points) != len(labels):
            raise DataError(f"{name}: {len(points)} clouds but {len(labels)} labels")
        if len(points) == 0:
            raise DataError(f"{name} is empty")
        self.points = np.ascontiguousarray(points, np.float32)
        self.labels = np.asarray(labels).reshape(-1).astype(np.int32)
        self.instances = (np.arange(len(points), dtype=np.int32) if instances is None
                          else np.asarray(instances, np.int32))
        self.name, self.classes = name, classes

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i: int) -> dict:
        return {"points": self.points[i], "label": self.labels[i], "instance": self.instances[i]}

    def rotated(self, seed: int, up_axis: int) -> "PointSet":
        """Each cloud rotated about the up axis by its own random angle and its points
        re-ordered (a new sampling order, so evaluation subsets differ)."""
        rng = np.random.default_rng(seed)
        points = np.empty_like(self.points)
        for k, cloud in enumerate(self.points):
            r = rotation_about(up_axis, rng.uniform(0, 2 * np.pi))
            points[k] = cloud[rng.permutation(len(cloud))] @ r.T.astype(np.float32)
        return PointSet(points, self.labels, self.name + " (rotated)", self.classes,
                        self.instances)


def _split_and_view(split: str) -> tuple[str, bool]:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} for point clouds; use one of {SPLITS}")
    return ("test", True) if split == "test_rotated" else (split, False)


def _check_count(data) -> int:
    if data.sample_points < data.points:
        raise DataError(f"data.sample_points={data.sample_points} must be >= data.points="
                        f"{data.points} (each use subsamples the stored points)")
    return int(data.sample_points)


def folder_files(root: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    """Files and labels of a ModelNet-style folder's split, classes sorted by name."""
    if not root.is_dir():
        raise DataError(f"data.path={root} is not a folder; point it to a ModelNet-style folder "
                        "<root>/<class>/<split>/<shape>.off")
    classes = sorted(d.name for d in root.iterdir() if (d / split).is_dir())
    files, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name / split).iterdir()
                       if p.suffix.lower() in SUFFIXES)
        files += found
        labels += [label] * len(found)
    if not files:
        raise DataError(f"no shape files ({', '.join(SUFFIXES)}) in {root}/<class>/{split}/: "
                        "lay the data out as <root>/<class>/train|test/<shape>.off")
    return files, labels, classes


def sampled_clouds(files: list[Path], count: int, seed: int) -> np.ndarray:
    """(len(files), count, 3) surface samples, cached on disk by file list, sizes and times."""
    h = hashlib.sha256(f"v1 {count} {seed}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()} {st.st_size} {st.st_mtime_ns}".encode())
    path = cache_dir() / "points" / f"{h.hexdigest()[:24]}.npy"
    if path.exists():
        return np.load(path)
    log.info("sampling %d points from each of %d shape files (cached afterwards in %s)",
             count, len(files), path.parent)
    out = np.empty((len(files), count, 3), np.float32)
    for k, f in enumerate(files):
        seed_k = int.from_bytes(hashlib.sha256(f"{seed} {f.name}".encode()).digest()[:4], "little")
        out[k] = read_points(f, count, seed_k)
        if (k + 1) % 200 == 0:
            log.info("  %d / %d files", k + 1, len(files))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)
    return out


def mesh_folder_source(data, split: str) -> PointSet:
    """A ModelNet-style folder (data.path; empty: the default shapes folder)."""
    part, rotated = _split_and_view(split)
    count = _check_count(data)
    if data.path:
        root = Path(data.path).expanduser()
    else:
        from data_pipelines import shapes

        root = shapes.default_folder(data.shapes)
    files, labels, classes = folder_files(root, part)
    # The rotated view is also a new surface sampling (another seed) of the same files.
    points = sampled_clouds(files, count, seed=1 if rotated else 0)
    source = PointSet(points, np.asarray(labels), f"{root} [{part}]", classes)
    return source.rotated(seed=2, up_axis=data.up_axis) if rotated else source


def _required_root(data, what: str) -> Path:
    if not data.path:
        raise DataError(f"data.path is empty: set --config.data.path (for evaluation data "
                        f"--config.data.eval_path) to the folder of {what}")
    root = Path(data.path).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path={root} is not a folder of {what}")
    return root


def points_h5_source(data, split: str) -> PointSet:
    """ScanObjectNN / ModelNet40-h5 files: data.path folder, data.h5_train / data.h5_test
    glob patterns (ScanObjectNN PB_T50_RS: training_objectdataset_augmentedrot_scale75.h5)."""
    try:
        import h5py
    except ImportError as e:
        raise DataError(f"reading .h5 point clouds needs h5py: {POINTS_HELP}") from e
    part, rotated = _split_and_view(split)
    root = _required_root(data, ".h5 files (ScanObjectNN, ModelNet40 ply_hdf5_2048)")
    pattern = data.h5_train if part == "train" else data.h5_test
    files = sorted(root.glob(pattern))
    if not files:
        raise DataError(f"no files matching {pattern!r} in data.path={root}; set "
                        f"--config.data.path and --config.data.h5_{part}")
    points, labels = [], []
    for f in files:
        try:
            with h5py.File(f, "r") as h:
                points.append(np.asarray(h["data"][..., :3], np.float32))
                labels.append(np.asarray(h["label"]).reshape(-1))
        except (OSError, KeyError) as e:
            raise DataError(f"{f}: expected an HDF5 file with 'data' (N, P, 3) and 'label' "
                            f"(N,) datasets ({e})") from e
    points = np.concatenate(points)
    count = _check_count(data)
    if points.shape[1] < count:
        raise DataError(f"{files[0]} holds {points.shape[1]} points per cloud, fewer than "
                        f"data.sample_points={count}; lower it")
    rng = np.random.default_rng(0)  # a fixed random subset of each cloud's points
    points = np.stack([p[rng.permutation(len(p))[:count]] for p in points])
    source = PointSet(points, np.concatenate(labels), f"{root}/{pattern}")
    return source.rotated(seed=2, up_axis=data.up_axis) if rotated else source


def shapenet_npy_source(data, split: str) -> PointSet:
    """ShapeNet-55 layout: data.path holds train.txt / test.txt listing .npy files (relative to
    data.path or its shapenet_pc/ folder); the class is the file name's synset prefix."""
    part, rotated = _split_and_view(split)
    root = _required_root(data, "ShapeNet-55 .npy point sets with train.txt / test.txt")
    listing = root / f"{part}.txt"
    if not listing.exists():
        raise DataError(f"{listing} not found: data.path must hold train.txt and test.txt "
                        "listing .npy point files (the ShapeNet-55 layout)")
    names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    base = root / "shapenet_pc" if (root / "shapenet_pc").is_dir() else root
    files = [base / n for n in names]
    synsets = [n.split("-")[0] for n in names]
    classes = sorted(set(synsets))
    points = sampled_clouds(files, _check_count(data), seed=1 if rotated else 0)
    source = PointSet(points, np.asarray([classes.index(s) for s in synsets]),
                      str(listing), classes)
    return source.rotated(seed=2, up_axis=data.up_axis) if rotated else source

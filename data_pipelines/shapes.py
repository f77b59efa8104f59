"""The default point-cloud data: a ModelNet-style folder written from real meshes and procedural
primitives, so the real-format loader (data_pipelines/points.py) is what training reads.

* Real shapes: the meshes and point scans that Debian's ``libcgal-demo`` package ships in its
  data tarball (scripts/setup.sh unpacks it into ``$JEPAX_CACHE/cgal``), grouped by hand into
  three categories: ``animal`` (armadillo, bunny, camel, cow, dragon, elephant, hippo scans,
  ...), ``body`` (human figures and anatomy: man, mannequin, Homer, head, hand, femur, ...) and
  ``machine_part`` (anchor, fandisk, pinion, rotor, turbine, B9 scan, ...). Files that are the
  same object (remeshed or rescaled copies) form one family; whole families go to train or test,
  so test shapes are objects never seen in training.
* Procedural shapes (trimesh.creation, random proportions): box, sphere, cylinder, cone,
  capsule, torus and the compositions table, chair, dumbbell and snowman.

Every written shape is normalised to the unit sphere, scaled per axis by a random factor in
[0.8, 1.25], rotated about the up axis (z) by a random angle, with probability 0.25 cut to a
partial view (the part on one side of a random plane, as a single scan sees it), and with
probability 0.5 its vertices jittered (std 0.01). Procedural meshes are written as .off (as
ModelNet), the real meshes as binary .ply (parsing the large ASCII .off files of the CGAL
package took 0.8 s per copy, binary PLY 2 ms), point scans as .ply point clouds.

Two sizes: ``full`` (80 train / 24 test procedural shapes per class, 8 / 4 varied copies per
real file; 1088 train and 312 test shapes) for the default configs, and ``small`` (12 / 6, 2 / 1)
for the ``:tiny`` presets and CI. ``python -m data_pipelines.shapes --out DIR [--size small]``
writes a folder anywhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from data_pipelines import points as points_lib
from data_pipelines.errors import DataError

log = logging.getLogger("jepax")

VERSION = "shapes-v1"
SIZES = {
    "full": dict(procedural_train=80, procedural_test=24, copies_train=8, copies_test=4),
    "small": dict(procedural_train=12, procedural_test=6, copies_train=2, copies_test=1),
}
CGAL_HELP = ("run scripts/setup.sh (it unpacks the data tarball of Debian's libcgal-demo into "
             "$JEPAX_CACHE/cgal), or by hand: apt-get download libcgal-demo && dpkg-deb -x "
             "libcgal-demo_*.deb pkg && mkdir -p ~/.cache/jepax/cgal && tar xzf "
             "pkg/usr/share/doc/libcgal-dev/data.tar.gz -C ~/.cache/jepax/cgal data/meshes "
             "data/points_3")

# category -> families; a family's files are the same object (they share a split).
CGAL_CATEGORIES = {
    "animal": [
        ("meshes/armadillo.off",), ("meshes/bear.off", "meshes/bear_bis.off"),
        ("meshes/bull.off",), ("meshes/bunny00.off",), ("meshes/camel.off",), ("meshes/cow.off",),
        ("meshes/dino.off",), ("meshes/diplodocus.off",),
        ("meshes/elephant.off", "meshes/elephant-with-holes.off", "meshes/refined_elephant.off"),
        ("meshes/elk.off",), ("meshes/lion.off", "meshes/lion-head.off"),
        ("meshes/pig.off", "meshes/pig.stl"), ("meshes/triceratops.off",),
        ("meshes/ChineseDragon-10kv.off",), ("points_3/hippo1.ply", "points_3/hippo2.ply"),
        ("points_3/kitten.xyz",),
    ],
    "body": [
        ("meshes/man.off",), ("meshes/mannequin-devil.off",), ("meshes/homer.off",),
        ("meshes/head.off",), ("meshes/hand.off",), ("meshes/nefertiti.off",),
        ("meshes/femur.off",), ("meshes/bones.off",), ("points_3/oni.ply",),
    ],
    "machine_part": [
        ("meshes/anchor.off", "meshes/anchor_dense.off"), ("meshes/blade.off",),
        ("meshes/b9_mesh.off", "meshes/b9.ply", "points_3/b9_training.ply"),
        ("meshes/couplingdown.off",), ("meshes/fandisk.off", "meshes/fandisk_large.off"),
        ("meshes/pinion.off", "meshes/pinion_small.off"),
        ("meshes/rotor.off", "meshes/rotor_small.off"), ("meshes/spool.off",),
        ("meshes/turbine.off",), ("meshes/joint.off",), ("meshes/part.off",),
        ("meshes/handle.off",), ("meshes/dragknob.off",), ("meshes/mech-holes-shark.off",),
        ("meshes/holes.off",), ("meshes/ALSTOM_TEST4.off",),
        ("meshes/oblong.off", "meshes/oblong-shuffled.off"),
    ],
}
TEST_EVERY = 3  # every third family of a category (from the second) is held out for testing


def cgal_dir() -> Path:
    return points_lib.cache_dir() / "cgal" / "data"


def default_folder(size: str = "full") -> Path:
    """The default shapes folder of `size` ('full' or 'small'), written on first use from the
    CGAL data."""
    if size not in SIZES:
        raise DataError(f"data.shapes={size!r}: use one of {sorted(SIZES)}")
    folder = points_lib.cache_dir() / f"{VERSION}-{size}"
    if not (folder / "manifest.json").exists():
        log.info("writing the default shapes folder %s (once; under a minute)", folder)
        build(folder, **SIZES[size])
    return folder


# -- procedural shapes --------------------------------------------------------------------------
def _trimesh():
    return points_lib._trimesh()


def _box(rng):
    return _trimesh().creation.box(extents=rng.uniform(0.3, 1.0, 3))


def _sphere(rng):
    return _trimesh().creation.icosphere(subdivisions=3, radius=0.5)


def _cylinder(rng):
    return _trimesh().creation.cylinder(radius=rng.uniform(0.15, 0.5),
                                        height=rng.uniform(0.5, 1.5), sections=32)


def _cone(rng):
    return _trimesh().creation.cone(radius=rng.uniform(0.2, 0.6), height=rng.uniform(0.5, 1.5),
                                    sections=32)


def _capsule(rng):
    return _trimesh().creation.capsule(radius=rng.uniform(0.15, 0.4), height=rng.uniform(0.3, 1.2))


def _torus(rng):
    return _trimesh().creation.torus(major_radius=rng.uniform(0.35, 0.6),
                                     minor_radius=rng.uniform(0.08, 0.25))


def _placed(mesh, offset):
    mesh.apply_translation(offset)
    return mesh


def _legs(rng, width, depth, height, radius):
    c = _trimesh().creation
    return [_placed(c.cylinder(radius=radius, height=height, sections=12),
                    (sx * width / 2, sy * depth / 2, height / 2))
            for sx in (-1, 1) for sy in (-1, 1)]


def _table(rng):
    w, d, h = rng.uniform(0.8, 1.4), rng.uniform(0.5, 1.0), rng.uniform(0.5, 0.9)
    top = _placed(_trimesh().creation.box(extents=(w, d, 0.06)), (0, 0, h))
    return _trimesh().util.concatenate([top] + _legs(rng, w * 0.85, d * 0.85, h,
                                                     rng.uniform(0.02, 0.05)))


def _chair(rng):
    c = _trimesh().creation
    w, h, back = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.5), rng.uniform(0.4, 0.7)
    seat = _placed(c.box(extents=(w, w, 0.05)), (0, 0, h))
    rest = _placed(c.box(extents=(w, 0.05, back)), (0, w / 2, h + back / 2))
    return _trimesh().util.concatenate([seat, rest] + _legs(rng, w * 0.9, w * 0.9, h, 0.025))


def _dumbbell(rng):
    c = _trimesh().creation
    r, length = rng.uniform(0.15, 0.3), rng.uniform(0.6, 1.2)
    bar = c.cylinder(radius=r * rng.uniform(0.2, 0.4), height=length, sections=16)
    ends = [_placed(c.icosphere(subdivisions=2, radius=r), (0, 0, s * length / 2)) for s in (-1, 1)]
    return _trimesh().util.concatenate([bar] + ends)


def _snowman(rng):
    c = _trimesh().creation
    radii = np.sort(rng.uniform(0.15, 0.4, 3))[::-1]
    z, parts = 0.0, []
    for r in radii:
        parts.append(_placed(c.icosphere(subdivisions=2, radius=r), (0, 0, z + r)))
        z += 1.7 * r
    return _trimesh().util.concatenate(parts)


PROCEDURAL = {"box": _box, "sphere": _sphere, "cylinder": _cylinder, "cone": _cone,
              "capsule": _capsule, "torus": _torus, "table": _table, "chair": _chair,
              "dumbbell": _dumbbell, "snowman": _snowman}


# -- variation and writing ------------------------------------------------------------------------
def _vary(vertices: np.ndarray, rng) -> np.ndarray:
    """Unit sphere, random per-axis scale, rotation about z, optional jitter."""
    v = points_lib.normalize(np.asarray(vertices, np.float64))
    v = v * rng.uniform(0.8, 1.25, 3)
    v = v @ points_lib.rotation_about(2, rng.uniform(0, 2 * np.pi)).T
    if rng.uniform() < 0.5:
        v = v + rng.normal(0, 0.01, v.shape)
    return v


def _partial_side(points: np.ndarray, rng) -> np.ndarray | None:
    """With probability 0.25, a mask of the points on one side of a random plane."""
    if rng.uniform() >= 0.25:
        return None
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    return points @ direction > -0.3


def write_variant(geometry, path: Path, rng, mesh_suffix: str = ".off") -> Path:
    """Write one varied copy of a mesh (`mesh_suffix`) or point cloud (.ply) at `path`."""
    trimesh = _trimesh()
    faces = getattr(geometry, "faces", None)
    if faces is not None and len(faces):
        mesh = trimesh.Trimesh(_vary(geometry.vertices, rng), faces, process=False)
        keep = _partial_side(mesh.triangles_center, rng)
        if keep is not None and keep.sum() > len(keep) // 4:
            mesh.update_faces(keep)
            mesh.remove_unreferenced_vertices()
        out = path.with_suffix(mesh_suffix)
        mesh.export(out)
    else:
        cloud = _vary(geometry.vertices, rng)
        keep = _partial_side(cloud, rng)
        if keep is not None and keep.sum() > len(keep) // 4:
            cloud = cloud[keep]
        out = path.with_suffix(".ply")
        trimesh.PointCloud(cloud).export(out)
    return out


def build(out: Path, *, procedural_train: int, procedural_test: int, copies_train: int,
          copies_test: int, categories=None, seed: int = 0) -> Path:
    """Write the folder `out` (atomically: into a temporary sibling, then renamed) with the
    real shapes of `categories` (default CGAL_CATEGORIES)."""
    categories = CGAL_CATEGORIES if categories is None else categories
    source = cgal_dir()
    if not (source / "meshes").is_dir():
        raise DataError(f"the CGAL meshes are not in {source}: {CGAL_HELP}")
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    counts = {}
    for name, make in PROCEDURAL.items():
        for split, n in (("train", procedural_train), ("test", procedural_test)):
            folder = tmp / name / split
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                write_variant(make(rng), folder / f"{name}_{i:04d}", rng)
            counts[f"{name}/{split}"] = n
    for category, families in categories.items():
        for k, family in enumerate(families):
            split = "test" if k % TEST_EVERY == 1 else "train"
            copies = copies_test if split == "test" else copies_train
            folder = tmp / category / split
            folder.mkdir(parents=True, exist_ok=True)
            for rel in family:
                geometry = points_lib._load_geometry(source / rel)
                stem = Path(rel).name.replace(".", "_")  # pig_off and pig_stl differ
                for c in range(copies):
                    write_variant(geometry, folder / f"{stem}_{c:02d}", rng, ".ply")
                counts[f"{category}/{split}"] = counts.get(f"{category}/{split}", 0) + copies
    (tmp / "manifest.json").write_text(json.dumps(
        {"version": VERSION, "seed": seed, "source": str(source), "files": counts,
         "cgal_families": {c: [list(f) for f in fam] for c, fam in categories.items()}},
        indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder to write (default $JEPAX_CACHE/{VERSION}-<size>)")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if args.out is None:
        print(default_folder(args.size))
    else:
        print(build(args.out, **SIZES[args.size]))


if __name__ == "__main__":
    main()

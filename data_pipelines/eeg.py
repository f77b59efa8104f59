"""EEG recordings in (EDF / BDF / FIF / BrainVision via MNE), windows and labelled epochs out.

Every recording is read the same way: EEG channels only, the electrode positions from the file's
montage or from a named MNE standard montage (``data.montage``, e.g. 'standard_1005'), band-pass
0.5-40 Hz, resampled to 128 Hz, volts -> microvolts (S-JEPA's preprocessing). Channels without a
position are an error naming them and the montage option, since the model embeds electrodes by
their position.

A dataset is a folder (``data.path``) with one subfolder or file per subject; subjects are
sorted by name and the last ``data.heldout_subjects`` are the downstream subjects, the
``data.validation_subjects`` before them the validation subjects, the rest pretrain. With no
``data.path`` the physically grounded simulation (data_pipelines/eeg_simulation.py) is written
as EDF and FIF files to ``data.cache`` and read back through the same readers.

Sources (registered in data_pipelines/sources.py):
* split 'train': windows of ``data.window`` samples every ``data.stride`` samples over the
  pretraining subjects' recordings: {'eeg': (C, window) float32 uV};
* 'validation' / 'test': the same windows over the validation / held-out subjects;
* a task name from ``data.tasks`` (e.g. 'mi', 'erp'): event-locked epochs of the held-out
  subjects: {'eeg': (C, samples), 'label', 'subject'}.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError

log = logging.getLogger("jepax")

SFREQ = 128.0
BAND = (0.5, 40.0)
READERS = {".edf": "read_raw_edf", ".bdf": "read_raw_bdf", ".fif": "read_raw_fif",
           ".vhdr": "read_raw_brainvision"}
MONTAGE_HELP = ("set --config.data.montage=standard_1005 (or another of MNE's standard montages, "
                "e.g. standard_1020, biosemi64) to take positions from it by channel name")


@dataclasses.dataclass
class Recording:
    path: Path
    data: np.ndarray                 # (C, N) float32, microvolts, at SFREQ
    channels: list[str]
    positions: np.ndarray            # (C, 3) metres, MNE head coordinates
    events: list[tuple[int, str]]    # (sample at SFREQ, annotation description)


def is_recording(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in READERS and not path.name.startswith(".")


def read_recording(path, montage: str = "", sfreq: float = SFREQ, band=BAND) -> Recording:
    """One file -> a preprocessed :class:`Recording` (see the module docstring)."""
    import mne

    path = Path(path)
    if path.suffix.lower() not in READERS:
        raise DataError(f"{path}: not an EEG file MNE reads here (use {', '.join(READERS)})")
    try:
        raw = getattr(mne.io, READERS[path.suffix.lower()])(path, preload=True, verbose="error")
    except (OSError, ValueError, RuntimeError) as e:
        raise DataError(f"{path} could not be read as {path.suffix} ({e}); is the file "
                        "complete?") from e
    raw.pick("eeg", exclude=())
    if not raw.ch_names:
        raise DataError(f"{path} has no EEG channels")
    if montage:
        try:
            layout = mne.channels.make_standard_montage(montage)
        except ValueError as e:
            raise DataError(f"data.montage={montage!r} is not an MNE standard montage ({e})") from e
        raw.set_montage(layout, match_case=False, on_missing="ignore", verbose="error")
    positions = np.array([ch["loc"][:3] for ch in raw.info["chs"]], np.float64)
    missing = [name for name, p in zip(raw.ch_names, positions)
               if not np.all(np.isfinite(p)) or not np.any(p)]
    if missing:
        where = f"montage {montage!r}" if montage else "the file"
        raise DataError(f"{path}: channels {missing} have no electrode position in {where}; "
                        f"{MONTAGE_HELP}, rename them to standard names, or remove them from "
                        "the files")
    raw.filter(*band, verbose="error")
    raw.resample(sfreq, verbose="error")
    events = [(int(round((a["onset"] - raw.first_time) * sfreq)), a["description"])
              for a in raw.annotations]
    return Recording(path, (raw.get_data() * 1e6).astype(np.float32), list(raw.ch_names),
                     positions, events)


# -- datasets ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Dataset:
    channels: list[str]
    positions: np.ndarray
    subjects: dict[str, list[Recording]]   # subject -> recordings (channels in dataset order)
    splits: dict[str, list[str]]           # 'train' / 'validation' / 'heldout' -> subjects


def dataset_root(data_config) -> Path:
    if data_config.path:
        return Path(data_config.path).expanduser()
    from data_pipelines import eeg_simulation

    return eeg_simulation.ensure_written(data_config)


def load_dataset(data_config) -> Dataset:
    return _load(str(dataset_root(data_config)), data_config.montage,
                 int(data_config.heldout_subjects), int(data_config.validation_subjects))


@functools.lru_cache(maxsize=4)
def _load(root: str, montage: str, heldout: int, validation: int) -> Dataset:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.path={root} is not a folder of EEG files (EDF/BDF/FIF/"
                        "BrainVision, one subfolder or file per subject)")
    subjects: dict[str, list[Path]] = {}
    for entry in sorted(root.iterdir()):
        files = sorted(p for p in entry.rglob("*") if is_recording(p)) if entry.is_dir() else (
            [entry] if is_recording(entry) else [])
        if files:
            subjects[entry.name if entry.is_dir() else entry.name.split(".")[0]] = files
    if not subjects:
        raise DataError(f"no EEG files ({', '.join(READERS)}) under {root}")
    names = list(subjects)
    if len(names) <= heldout + validation:
        raise DataError(f"{root} has {len(names)} subjects, but data.heldout_subjects={heldout} "
                        f"and data.validation_subjects={validation} leave none to pretrain on; "
                        "lower them or add subjects")
    log.info("reading %d EEG recordings of %d subjects from %s",
             sum(map(len, subjects.values())), len(names), root)
    recordings = {s: [read_recording(p, montage) for p in files] for s, files in subjects.items()}
    first = next(iter(recordings.values()))[0]
    channels, positions = first.channels, first.positions
    for rec in (r for rs in recordings.values() for r in rs):
        absent = [c for c in channels if c not in rec.channels]
        if absent:
            raise DataError(f"{rec.path} lacks channels {absent} that {first.path} has; one run "
                            "trains one montage: give every file the same electrodes")
        order = [rec.channels.index(c) for c in channels]
        rec.data, rec.positions, rec.channels = rec.data[order], rec.positions[order], channels
    cut = len(names) - heldout
    splits = {"train": names[:cut - validation], "validation": names[cut - validation:cut],
              "heldout": names[cut:]}
    return Dataset(channels, positions, recordings, splits)


class Windows:
    """Fixed-length windows with a stride over some subjects' recordings."""

    def __init__(self, recordings: list[Recording], window: int, stride: int, name: str):
        self.recordings = recordings
        self.index = np.array([(r, start) for r, rec in enumerate(recordings)
                               for start in range(0, rec.data.shape[1] - window + 1, stride)],
                              np.int64).reshape(-1, 2)
        self.window = window
        if len(self.index) == 0:
            raise DataError(f"{name}: no recording is as long as data.window={window} samples")

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        r, start = self.index[i]
        return {"eeg": self.recordings[r].data[:, start:start + self.window]}


class Epochs:
    """Event-locked epochs: {'eeg', 'label', 'subject'} (a random-access source)."""

    def __init__(self, eeg: np.ndarray, labels: np.ndarray, subjects: np.ndarray):
        self.eeg, self.labels, self.subjects = eeg, labels, subjects

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"eeg": self.eeg[i], "label": self.labels[i], "subject": self.subjects[i]}


def epochs(recordings_by_subject: dict[str, list[Recording]], events: tuple[str, ...],
           tmin: float, samples: int) -> Epochs:
    """Epochs of `samples` samples starting `tmin` s after each event whose description is in
    `events` (label = its position there); epochs that leave a recording are dropped."""
    eeg, labels, subjects = [], [], []
    offset = int(round(tmin * SFREQ))
    for s, (name, recordings) in enumerate(recordings_by_subject.items()):
        for rec in recordings:
            for sample, description in rec.events:
                start = sample + offset
                if description in events and 0 <= start and start + samples <= rec.data.shape[1]:
                    eeg.append(rec.data[:, start:start + samples])
                    labels.append(events.index(description))
                    subjects.append(s)
    if not eeg:
        raise DataError(f"no events {list(events)} in the held-out subjects' recordings "
                        f"({', '.join(recordings_by_subject)}); annotate them in the files or "
                        "leave this task out of data.tasks")
    return Epochs(np.stack(eeg), np.asarray(labels, np.int32), np.asarray(subjects, np.int32))


def eeg_source(data_config, split: str):
    """The registered source (see the module docstring for the splits)."""
    ds = load_dataset(data_config)
    windows = {"train": "train", "validation": "validation", "test": "heldout"}
    if split in windows:
        subjects = ds.splits[windows[split]]
        recordings = [r for s in subjects for r in ds.subjects[s]]
        return Windows(recordings, int(data_config.window), int(data_config.stride),
                       f"{split} subjects {subjects}")
    if split not in data_config.tasks:
        raise DataError(f"unknown EEG split {split!r}: use train, validation, test or a task of "
                        f"data.tasks ({', '.join(data_config.tasks)})")
    task = data_config.tasks[split]
    return epochs({s: ds.subjects[s] for s in ds.splits["heldout"]}, tuple(task.events),
                  float(task.tmin), int(task.samples))

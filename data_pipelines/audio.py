"""Audio files in (WAV / FLAC / MP3 / OGG via libsndfile), log-Mel filterbanks out.

Every clip is read the same way: soundfile (libsndfile) decodes it, channels are averaged to
mono, soxr resamples it to ``data.sample_rate`` (16 kHz), the mean is removed and a
Kaldi-compatible log-Mel filterbank is computed: 25 ms Hann windows every 10 ms, pre-emphasis
0.97, per-frame DC removal, 512-point power spectrum, ``data.mel_bins`` (128) triangular filters
from 20 Hz to Nyquist, natural log (the features of AST and Audio-MAE, which call
``torchaudio.compliance.kaldi.fbank`` with these options; tests compare this implementation
with the C++ Kaldi port kaldi-native-fbank). The filterbank is cut or zero-padded at the end to
``data.frames`` frames (1024 = 10 s, as AST / Audio-MAE); ``frames`` in the example says how many
are real. Normalisation ((x - mean) / (2 std), as AST) happens on the device, in the variant.

A dataset is a folder of audio files (``data.path``, searched recursively):
* with a ``labels.csv`` (columns ``file,label`` and optionally ``split``: train / test), its rows;
* without one, every audio file, labelled by its first-level subfolder (Speech Commands' layout);
  files directly in the folder get the label of the folder itself (pretraining only).
Without a split column, a stable hash of the file name puts ``data.test_fraction`` of the files
in 'test'. docs/a_jepa.md shows how to lay out AudioSet, ESC-50 and Speech Commands this way.

The source 'audio' (registered in data_pipelines/sources.py; data_pipelines/speech_tasks.py)
serves such folders as labelled tasks, examples {'fbank': (frames, mel_bins) float32,
'frames': int32, 'label': int32}.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import logging
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError

log = logging.getLogger("jepax")

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
LOG_FLOOR = float(np.finfo(np.float32).eps)  # Kaldi's floor before the log


# -- reading -----------------------------------------------------------------------------------
def load_audio(path, sample_rate: int) -> np.ndarray:
    """One file -> mono float32 waveform at `sample_rate` (values in [-1, 1])."""
    import soundfile
    import soxr

    path = Path(path)
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError, TypeError) as e:
        raise DataError(f"{path} could not be read as audio ({e}); use WAV, FLAC, MP3 or OGG "
                        "(e.g. convert with `ffmpeg -i in.m4a out.wav`) or remove the file") from e
    if data.size == 0:
        raise DataError(f"{path} holds no audio samples; remove the file")
    wave = data.mean(axis=1)
    if rate != sample_rate:
        wave = soxr.resample(wave, rate, sample_rate).astype(np.float32)
    return wave


# -- features ----------------------------------------------------------------------------------
def _mel(f):
    return 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)


@functools.lru_cache(maxsize=8)
def mel_filters(mel_bins: int, fft_size: int, sample_rate: int, low_hz: float = 20.0) -> np.ndarray:
    """(fft_size // 2 + 1, mel_bins) Kaldi filters: triangles linear in mel, the Nyquist bin 0."""
    edges = np.linspace(_mel(low_hz), _mel(sample_rate / 2), mel_bins + 2)
    mel = _mel(np.arange(fft_size // 2) * sample_rate / fft_size)[:, None]
    left, center, right = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0.0, np.minimum((mel - left) / (center - left),
                                         (right - mel) / (right - center)))
    return np.concatenate([weights, np.zeros((1, mel_bins))])


def fbank(wave: np.ndarray, sample_rate: int, mel_bins: int = 128, window_ms: float = 25.0,
          hop_ms: float = 10.0) -> np.ndarray:
    """Kaldi-compatible log-Mel filterbank (frames, mel_bins) float32; see the module docstring.
    A clip shorter than one window gives zero frames."""
    window = int(sample_rate * window_ms / 1000)
    hop = int(sample_rate * hop_ms / 1000)
    fft_size = 1 << (window - 1).bit_length()
    wave = np.asarray(wave, np.float64)
    wave = wave - wave.mean()
    count = 0 if len(wave) < window else 1 + (len(wave) - window) // hop
    if count == 0:
        return np.zeros((0, mel_bins), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(wave, window)[::hop][:count]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames - 0.97 * np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = frames * np.hanning(window)
    power = np.abs(np.fft.rfft(frames, n=fft_size)) ** 2
    energies = power @ mel_filters(mel_bins, fft_size, sample_rate)
    return np.log(np.maximum(energies, LOG_FLOOR)).astype(np.float32)


def fit_frames(features: np.ndarray, frames: int) -> tuple[np.ndarray, int]:
    """Cut or zero-pad (at the end, as AST) to `frames` rows; also the number of real rows."""
    real = min(len(features), frames)
    out = np.zeros((frames, features.shape[1]), np.float32)
    out[:real] = features[:real]
    return out, real


# -- datasets ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    split: str


def stable_split(name: str, test_fraction: float) -> str:
    digest = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if digest < test_fraction else "train"


def list_folder(root, test_fraction: float = 0.2) -> list[Clip]:
    """The clips of a dataset folder (labels.csv, or subfolders as labels; module docstring)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path={str(root)!r} is not a folder of audio files; set "
                        "--config.data.path=/path/to/folder (see docs/a_jepa.md)")
    table = root / "labels.csv"
    if table.is_file():
        return _from_table(root, table, test_fraction)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS
                   and p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"{root} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    label = lambda p: p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else root.name
    return [Clip(p, label(p), stable_split(str(p.relative_to(root)), test_fraction)) for p in files]


def _from_table(root: Path, table: Path, test_fraction: float) -> list[Clip]:
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise DataError(f"{table} needs a header with the columns file,label (and optionally "
                        "split: train/test)")
    clips = []
    for i, row in enumerate(rows, start=2):
        split = row.get("split") or stable_split(row["file"], test_fraction)
        if split not in ("train", "test"):
            raise DataError(f"{table} line {i}: split={split!r}; use train or test")
        path = root / row["file"]
        if not path.is_file():
            raise DataError(f"{table} line {i}: {path} does not exist")
        clips.append(Clip(path, row["label"], split))
    return clips


class ClipSource:
    """Random-access source: clip i -> {'fbank', 'frames', 'label'} (features on the fly).

    Features are a pure function of the file, so the first `data.feature_cache_mb` MiB of them
    are kept in memory: later epochs skip reading, resampling and the FFT (on a small data set
    they would otherwise cost as much CPU as the training step)."""

    def __init__(self, clips: list[Clip], labels: dict[str, int], data_config):
        if not clips:
            raise DataError("no audio clips for this split")
        self.clips, self.labels = clips, labels
        d = data_config
        self.sample_rate, self.mel_bins, self.frames = d.sample_rate, d.mel_bins, d.frames
        per_clip = d.frames * d.mel_bins * 4
        self._cache_limit = int(d.get("feature_cache_mb", 0) * 2**20) // per_clip
        self._cache: dict[int, tuple[np.ndarray, int]] = {}

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, index):
        clip = self.clips[index]
        if index in self._cache:
            features, real = self._cache[index]
        else:
            features = fbank(load_audio(clip.path, self.sample_rate), self.sample_rate,
                             self.mel_bins)
            features, real = fit_frames(features, self.frames)
            if len(self._cache) < self._cache_limit:
                self._cache[index] = features, real
        return {"fbank": features, "frames": np.int32(real), "label": np.int32(self.labels[clip.label])}


def clip_source(clips: list[Clip], split: str, data_config) -> ClipSource:
    labels = {name: i for i, name in enumerate(sorted({c.label for c in clips}))}
    return ClipSource([c for c in clips if c.split == split], labels, data_config)

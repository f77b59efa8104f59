"""Published PyTorch checkpoints -> jepax parameters, for ``train.init_from=<file>``.

A converter reads a state dict by the names the official code saves and returns the train-state
parts in jepax's layout (``{"params": ..., "target": ...}``, whatever the file holds); the loop
then loads the variant's ``transfer_paths`` from it exactly as from another jepax run. Every key
the converter expects must be there with the shape this model needs, and every key in the file
must be used: a partial load is an error that names the keys (the classic silent bug).

Converters need PyTorch to read the files: ``pip install -e .[convert]``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import jax
import numpy as np

from jepax.config import ConfigError

CONVERTERS = {
    "brain_jepa": "jepax.convert.brain_jepa:from_torch",
    "ijepa": "jepax.convert.ijepa:from_torch",
    "point_jepa": "jepax.convert.point_jepa:from_torch",
    "s_jepa": "jepax.convert.s_jepa:from_torch",
}
TORCH_SUFFIXES = (".pth", ".pt", ".tar", ".bin", ".ckpt")


class ConvertError(ConfigError):
    """A checkpoint file that does not fit this model; the message lists the keys."""


def is_checkpoint_file(path: str | Path) -> bool:
    return Path(path).is_file() and Path(path).name.endswith(TORCH_SUFFIXES)


def read_torch(path: str | Path) -> dict:
    """The object saved in a PyTorch checkpoint, tensors as numpy arrays (weights only: no
    code from the file runs)."""
    try:
        import torch
    except ImportError as e:
        raise ConvertError(f"reading {path} needs PyTorch: pip install -e .[convert]") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for files it cannot read
        raise ConvertError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: "
                           f"{e}); pass the .pth/.pth.tar file the project released. A file "
                           "that also pickles Python objects (a Lightning .ckpt's "
                           "hyper-parameters) is not read here, since loading it runs code: "
                           "save its weights alone, torch.save(torch.load(path, "
                           "weights_only=False)['state_dict'], 'weights.pth'), where you "
                           "trust the file") from e
    return _to_numpy(obj)


def _to_numpy(obj):
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if hasattr(obj, "detach"):
        return obj.detach().float().numpy()
    return obj


def convert_file(path: str | Path, variant) -> dict:
    """Train-state parts ({'params': ..., 'target': ...}) converted from an official file."""
    name = variant.config.variant
    if name not in CONVERTERS:
        raise ConvertError(f"train.init_from={path}: no converter for variant {name!r} "
                           f"(converters exist for {', '.join(sorted(CONVERTERS))}); pass the "
                           "workdir of a jepax run instead")
    module, _, function = CONVERTERS[name].partition(":")
    return getattr(importlib.import_module(module), function)(read_torch(path), variant)


def check_shapes(converted, expected, where: str) -> None:
    """Every array of `expected` (a tree of shapes) is in `converted` with that shape."""
    flat = lambda tree: {jax.tree_util.keystr(p): v.shape for p, v in
                         jax.tree_util.tree_flatten_with_path(tree)[0]}
    have, want = flat(converted), flat(expected)
    problems = [f"{where}{k}: {have.get(k, 'missing')} in the file, {want.get(k, 'none')} here"
                for k in sorted(have.keys() | want.keys()) if have.get(k) != want.get(k)]
    if problems:
        raise ConvertError(f"the checkpoint does not fit this model ({len(problems)} problems): "
                           f"{'; '.join(problems[:6])}. Set model.* (and the montage) to the "
                           "checkpoint's")


class StateDict:
    """Reads arrays by name from a state dict and remembers what it read, so that `check()`
    can name every missing, unexpected and wrongly shaped key at once."""

    def __init__(self, arrays: dict, where: str, strip: str = "module."):
        if not isinstance(arrays, dict):
            raise ConvertError(f"{where} is not a state dict (a {type(arrays).__name__})")
        self.arrays = {k[len(strip):] if k.startswith(strip) else k: v for k, v in arrays.items()}
        self.where = where
        self.used: set[str] = set()
        self.problems: list[str] = []

    def take(self, key: str, shape: tuple | None = None) -> np.ndarray:
        self.used.add(key)
        if key not in self.arrays:
            self.problems.append(f"missing {self.where}/{key}")
            return np.zeros(shape or (), np.float32)
        value = np.asarray(self.arrays[key], np.float32)
        if shape is not None and value.shape != tuple(shape):
            self.problems.append(f"{self.where}/{key} has shape {value.shape}, this model needs "
                                 f"{tuple(shape)}")
            return np.zeros(shape, np.float32)
        return value

    def check(self, ignore: tuple[str, ...] = ()) -> None:
        unexpected = sorted(set(self.arrays) - self.used - set(ignore))
        problems = self.problems + [f"unexpected {self.where}/{k}" for k in unexpected]
        if problems:
            raise ConvertError(f"the checkpoint does not fit this model ({len(problems)} "
                               f"problems): {'; '.join(problems[:8])}"
                               + ("; ..." if len(problems) > 8 else "")
                               + ". Set model.* to the checkpoint's architecture")

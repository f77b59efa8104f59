"""Import braindecode's SignalJEPA models (the PyTorch reference) on a machine without
torchaudio.

braindecode's package __init__ imports every model and dataset module, some of which import
torchaudio at import time; the only torchaudio wheels on PyPI for this Python need CUDA
libraries next to the CPU torch. The S-JEPA models never call torchaudio, so any
``torchaudio`` module is made an empty placeholder whose members raise if used."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types


class _Absent(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        def unavailable(*args, **kwargs):
            raise RuntimeError(f"{self.__name__}.{name}: torchaudio is not installed here")
        return type(name, (), {"__init__": unavailable})


class _Placeholder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] == "torchaudio":
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Absent(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def signal_jepa_module():
    """braindecode.models.signal_jepa (skips the calling test if braindecode is absent)."""
    import pytest

    pytest.importorskip("torch")
    try:
        import torchaudio  # noqa: F401
    except Exception:
        for name in [m for m in sys.modules if m.split(".")[0] == "torchaudio"]:
            del sys.modules[name]
        sys.meta_path.insert(0, _Placeholder())
    return pytest.importorskip("braindecode.models.signal_jepa")

"""Robot demonstrations: episode files in, per-timestep training examples with action chunks
and future proprioceptive states out.

One episode is T steps of ``image`` (T, H, W, 3) uint8, ``proprio`` (T, P) and ``action``
(T, A) (action t taken after observing step t) plus an integer ``task`` id. Three layouts
are read by :func:`read_episodes` (``data.path``):

* a folder of ``.npz`` files, one episode each, keys ``image``, ``proprio``, ``action``,
  ``task`` (what :func:`write_npz` and the point-pushing recorder write);
* one robomimic-style HDF5 file: ``data/<demo>/actions`` (T, A), ``data/<demo>/obs/<image_key>``,
  ``data/<demo>/obs/<proprio_key>``, the task id in the demo group's ``task`` attribute (0 if
  absent);
* a folder of ACT/ALOHA-style HDF5 files, one episode each: ``/action``,
  ``/observations/qpos`` (``proprio_key``), ``/observations/images/<image_key>``.

Example ``t`` of an episode (:class:`ChunkSource`) holds the observation at t and the targets
the ACT-JEPA objective needs, both padded to ``chunk`` steps past the episode's end:
``actions[j] = action[t + j]`` and ``future[j] = proprio[t + 1 + j]``, with
``action_valid`` / ``future_valid`` false on the padding. Proprio states and actions are
standardized with the training episodes' mean and std (as ACT does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError

VERSION = "v1"


@dataclasses.dataclass
class Episode:
    image: np.ndarray    # (T, H, W, 3) uint8
    proprio: np.ndarray  # (T, P) float32
    action: np.ndarray   # (T, A) float32
    task: int

    def __len__(self):
        return len(self.action)


# -- files -----------------------------------------------------------------------------------
def write_npz(episodes: list[Episode], folder: Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, ep in enumerate(episodes):
        np.savez_compressed(folder / f"episode_{i:06d}.npz", image=ep.image, proprio=ep.proprio,
                            action=ep.action, task=np.int32(ep.task))
    return folder


def write_robomimic_hdf5(episodes: list[Episode], path: Path, image_key="image",
                         proprio_key="proprio") -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for i, ep in enumerate(episodes):
            demo = data.create_group(f"demo_{i}")
            demo.attrs["num_samples"], demo.attrs["task"] = len(ep), ep.task
            demo.create_dataset("actions", data=ep.action)
            demo.create_dataset(f"obs/{image_key}", data=ep.image)
            demo.create_dataset(f"obs/{proprio_key}", data=ep.proprio)
    return Path(path)


def write_act_hdf5(episodes: list[Episode], folder: Path, image_key="top",
                   proprio_key="qpos") -> Path:
    import h5py

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, ep in enumerate(episodes):
        with h5py.File(folder / f"episode_{i}.hdf5", "w") as f:
            f.attrs["task"] = ep.task
            f.create_dataset("action", data=ep.action)
            f.create_dataset(f"observations/{proprio_key}", data=ep.proprio)
            f.create_dataset(f"observations/images/{image_key}", data=ep.image)
    return folder


def read_episodes(path, image_key: str = "image", proprio_key: str = "proprio") -> list[Episode]:
    """Every episode under `path` (a folder of .npz or ACT .hdf5 files, or one robomimic .hdf5
    file), in file / demo-number order, checked for consistent lengths and shapes."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix in (".hdf5", ".h5"):
        episodes = _read_robomimic(path, image_key, proprio_key)
    elif path.is_dir():
        files = sorted(path.glob("*.npz"))
        if files:
            episodes = [_read_npz(f) for f in files]
        else:
            files = sorted(list(path.glob("*.hdf5")) + list(path.glob("*.h5")), key=_natural)
            episodes = [_read_act(f, image_key, proprio_key) for f in files]
    else:
        raise DataError(f"data.path={str(path)!r} is neither a folder of episode files (.npz, "
                        "ACT-style .hdf5) nor a robomimic .hdf5 file")
    if not episodes:
        raise DataError(f"no episodes found in {path} (expected *.npz or *.hdf5 files)")
    for ep, where in zip(episodes, files if path.is_dir() else [path] * len(episodes)):
        _check(ep, where, episodes[0])
    return episodes


def _natural(p: Path):
    digits = "".join(c for c in p.stem if c.isdigit())
    return (int(digits) if digits else -1, p.name)


def _read_npz(file: Path) -> Episode:
    with np.load(file) as z:
        missing = {"image", "proprio", "action"} - set(z.files)
        if missing:
            raise DataError(f"{file} lacks {sorted(missing)}; an episode .npz holds image, "
                            "proprio, action (and task)")
        return Episode(z["image"], z["proprio"].astype(np.float32),
                       z["action"].astype(np.float32), int(z["task"]) if "task" in z else 0)


def _h5(file, group, key, fix):
    if key not in group:
        raise DataError(f"{file}: no dataset {group.name.rstrip('/')}/{key}; {fix}")
    return group[key][()]


def _read_robomimic(file: Path, image_key, proprio_key) -> list[Episode]:
    import h5py

    fix = "set data.image_key / data.proprio_key to the obs keys of your file"
    with h5py.File(file, "r") as f:
        if "data" not in f:
            raise DataError(f"{file} has no 'data' group (robomimic layout: data/demo_N/...)")
        names = sorted(f["data"], key=lambda n: _natural(Path(n)))
        episodes = []
        for name in names:
            demo = f["data"][name]
            episodes.append(Episode(
                _h5(file, demo["obs"], image_key, fix),
                _h5(file, demo["obs"], proprio_key, fix).astype(np.float32),
                _h5(file, demo, "actions", fix).astype(np.float32),
                int(demo.attrs.get("task", 0))))
    return episodes


def _read_act(file: Path, image_key, proprio_key) -> Episode:
    import h5py

    fix = "set data.image_key (camera name) / data.proprio_key (e.g. qpos)"
    with h5py.File(file, "r") as f:
        if "observations" not in f:
            raise DataError(f"{file} has no 'observations' group (ACT layout)")
        obs = f["observations"]
        images = obs["images"] if "images" in obs else obs
        return Episode(_h5(file, images, image_key, fix),
                       _h5(file, obs, proprio_key, fix).astype(np.float32),
                       _h5(file, f, "action", fix).astype(np.float32),
                       int(f.attrs.get("task", 0)))


def _check(ep: Episode, where, first: Episode) -> None:
    t = len(ep.action)
    if ep.image.ndim != 4 or ep.image.shape[-1] != 3 or ep.image.dtype != np.uint8:
        raise DataError(f"{where}: images must be (T, H, W, 3) uint8, got {ep.image.shape} "
                        f"{ep.image.dtype}")
    if len(ep.image) != t or len(ep.proprio) != t or t == 0:
        raise DataError(f"{where}: image, proprio and action must have the same number of steps "
                        f"(> 0), got {len(ep.image)}, {len(ep.proprio)}, {t}")
    for key in ("image", "proprio", "action"):
        a, b = getattr(ep, key), getattr(first, key)
        if a.shape[1:] != b.shape[1:]:
            raise DataError(f"{where}: {key} shape {a.shape[1:]} differs from the first "
                            f"episode's {b.shape[1:]}")


# -- the point-pushing recorder ------------------------------------------------------------
def record_point_push(folder: Path, episodes: int, *, image_size: int = 32, seed: int = 0,
                      chunk: int = 64) -> Path:
    """Record `episodes` successful expert episodes of point pushing (tasks alternate push /
    reach) as .npz files in `folder`; each is cut at the step that solves its task. Seeds
    whose expert fails are skipped (none of the first 200 did)."""
    from data_pipelines import point_push

    kept, start = [], seed * 1_000_000
    while len(kept) < episodes:
        seeds = np.arange(start, start + chunk)
        tasks = seeds % len(point_push.TASKS)
        eps = point_push.expert_episodes(seeds, tasks, image_size=image_size)
        for i in range(chunk):
            t = eps["solved_at"][i]
            if t > 0 and len(kept) < episodes:
                kept.append(Episode(eps["image"][i, :t], eps["proprio"][i, :t],
                                    eps["action"][i, :t], int(tasks[i])))
        start += chunk
    return write_npz(kept, folder)


def default_folder(data_config) -> Path:
    """The recorded point-pushing demonstrations for `data_config` (recorded on first use)."""
    from data_pipelines.points import cache_dir

    spec = dict(version=VERSION, episodes=data_config.episodes,
                image_size=data_config.image_size, seed=data_config.record_seed)
    tag = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    folder = cache_dir() / "point_push" / tag
    if not (folder / "done").exists():
        record_point_push(folder, data_config.episodes, image_size=data_config.image_size,
                          seed=data_config.record_seed)
        (folder / "done").write_text(json.dumps(spec))
    return folder


# -- per-timestep examples -----------------------------------------------------------------
class ChunkSource:
    """Random access to (episode, step) examples of some episodes, standardized by `stats`."""

    def __init__(self, episodes: list[Episode], chunk: int, stats: dict):
        self.episodes, self.chunk, self.stats = episodes, chunk, stats
        self.index = np.array([(e, t) for e, ep in enumerate(episodes) for t in range(len(ep))],
                              np.int64).reshape(-1, 2)

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        e, t = self.index[i]
        ep, k, s = self.episodes[e], self.chunk, self.stats
        proprio = (ep.proprio - s["proprio_mean"]) / s["proprio_std"]
        action = (ep.action - s["action_mean"]) / s["action_std"]
        actions, action_valid = _window(action, t, k)
        future, future_valid = _window(proprio, t + 1, k)
        return {"image": ep.image[t], "proprio": proprio[t], "task": np.int32(ep.task),
                "actions": actions, "action_valid": action_valid,
                "future": future, "future_valid": future_valid,
                "episode": np.int32(e), "step": np.int32(t)}


def _window(x, start, k):
    """x[start : start + k] zero-padded to k rows, and which rows are real."""
    out = np.zeros((k, x.shape[1]), np.float32)
    real = x[start:start + k]
    out[:len(real)] = real
    return out, np.arange(k) < len(real)


def standardization(episodes: list[Episode]) -> dict:
    """Mean and std (clipped below at 1e-2, as ACT) of proprio states and actions."""
    proprio = np.concatenate([e.proprio for e in episodes])
    action = np.concatenate([e.action for e in episodes])
    return {"proprio_mean": proprio.mean(0), "proprio_std": np.maximum(proprio.std(0), 1e-2),
            "action_mean": action.mean(0), "action_std": np.maximum(action.std(0), 1e-2)}


class Demonstrations:
    """The configured demonstrations, split by episode (the last `test_fraction` are held
    out) and standardized with the training episodes' statistics."""

    def __init__(self, data_config):
        d = data_config
        folder = Path(d.path) if d.path else default_folder(d)
        episodes = read_episodes(folder, d.image_key, d.proprio_key)
        n_test = int(round(len(episodes) * d.test_fraction))
        if n_test < 1 or n_test >= len(episodes):
            raise DataError(f"data.test_fraction={d.test_fraction} leaves no training or no "
                            f"test episode of {len(episodes)} in {folder}")
        self.folder = folder
        self.splits = {"train": episodes[:-n_test], "test": episodes[-n_test:]}
        self.stats = standardization(self.splits["train"])
        self.chunk = d.chunk
        first = episodes[0]
        self.image_shape, self.proprio_dim = first.image.shape[1:], first.proprio.shape[1]
        self.action_dim = first.action.shape[1]
        self.num_tasks = max(e.task for e in episodes) + 1

    def source(self, split: str) -> ChunkSource:
        if split not in self.splits:
            raise DataError(f"unknown split {split!r}: use 'train' or 'test'")
        return ChunkSource(self.splits[split], self.chunk, self.stats)


_CACHE: dict[str, Demonstrations] = {}


def demonstrations(data_config) -> Demonstrations:
    """Read once per process per data section (the variant and its sources share it)."""
    key = json.dumps({k: data_config[k] for k in ("path", "episodes", "image_size",
                                                  "record_seed", "image_key", "proprio_key",
                                                  "test_fraction", "chunk")}, sort_keys=True)
    if key not in _CACHE:
        _CACHE[key] = Demonstrations(data_config)
    return _CACHE[key]


def source(data_config, split: str) -> ChunkSource:
    return demonstrations(data_config).source(split)

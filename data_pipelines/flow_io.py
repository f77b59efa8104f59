"""Optical-flow files and pictures: Middlebury ``.flo`` (Sintel, FlyingChairs), KITTI's 16-bit
flow PNGs, and the Middlebury colour-wheel rendering of a flow field.

A flow field is float32 (H, W, 2): (dx, dy) in pixels, from frame 1 to frame 2.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError

FLO_MAGIC = 202021.25  # the float "PIEH" the Middlebury format starts with


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write (H, W, 2) flow as a Middlebury .flo file (little-endian)."""
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    h, w = flow.shape[:2]
    with open(path, "wb") as f:
        f.write(np.float32(FLO_MAGIC).astype("<f4").tobytes())
        f.write(np.array([w, h], "<i4").tobytes())
        f.write(flow.astype("<f4").tobytes())


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury .flo file into float32 (H, W, 2)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as e:
        raise DataError(f"flow file {path} does not exist") from e
    if len(raw) < 12 or np.frombuffer(raw[:4], "<f4")[0] != FLO_MAGIC:
        raise DataError(f"{path} is not a .flo file (its first 4 bytes are not the float "
                        f"{FLO_MAGIC}); re-download it")
    w, h = (int(v) for v in np.frombuffer(raw[4:12], "<i4"))
    if len(raw) != 12 + 8 * w * h:
        raise DataError(f"{path}: header says {w}x{h} but the file holds {len(raw) - 12} bytes "
                        f"of flow instead of {8 * w * h}: truncated or corrupt")
    return np.frombuffer(raw, "<f4", offset=12).reshape(h, w, 2).astype(np.float32)


def write_kitti_flow(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray) -> None:
    """KITTI 2012/2015 flow PNG: 16-bit RGB = (u * 64 + 2^15, v * 64 + 2^15, valid)."""
    import cv2

    encoded = np.clip(np.asarray(flow, np.float64) * 64.0 + 2 ** 15, 0, 2 ** 16 - 1)
    png = np.dstack([encoded.round(), np.asarray(valid, np.float64)]).astype(np.uint16)
    if not cv2.imwrite(str(path), png[..., ::-1]):  # OpenCV stores BGR
        raise DataError(f"could not write {path}")


def read_kitti_flow(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A KITTI flow PNG -> (float32 (H, W, 2) flow, bool (H, W) valid)."""
    import cv2

    png = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if png is None:
        raise DataError(f"KITTI flow file {path} is missing or not an image")
    if png.dtype != np.uint16 or png.ndim != 3:
        raise DataError(f"{path} is not a KITTI flow PNG (16-bit, 3 channels); got "
                        f"{png.dtype} {png.shape}")
    png = png[..., ::-1].astype(np.float32)
    return (png[..., :2] - 2 ** 15) / 64.0, png[..., 2] > 0


def _colour_wheel() -> np.ndarray:
    """(55, 3) hues of the Middlebury wheel: red -> yellow -> green -> cyan -> blue ->
    magenta -> red, with 15, 6, 4, 11, 13, 6 steps per segment (finer where the eye is)."""
    segments = [(15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)),
                (4, (0, 255, 0), (0, 255, 255)), (11, (0, 255, 255), (0, 0, 255)),
                (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0))]
    rows = []
    for steps, start, end in segments:
        t = np.arange(steps)[:, None] / steps
        rows.append((1 - t) * np.array(start) + t * np.array(end))
    return np.concatenate(rows) / 255.0


def flow_to_colour(flow: np.ndarray, max_radius: float | None = None) -> np.ndarray:
    """(H, W, 2) flow -> (H, W, 3) uint8 picture: direction is the hue on the Middlebury
    colour wheel, length the saturation (white = no motion), normalised by `max_radius`
    (default: the largest length in the field)."""
    flow = np.nan_to_num(np.asarray(flow, np.float64))
    u, v = flow[..., 0], flow[..., 1]
    radius = np.hypot(u, v)
    scale = max_radius if max_radius else max(radius.max(), 1e-9)
    radius = radius / scale
    wheel = _colour_wheel()
    n = len(wheel)
    position = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (n - 1)   # angle -> [0, n - 1]
    k0 = np.floor(position).astype(int)
    k1 = (k0 + 1) % n
    frac = (position - k0)[..., None]
    hue = (1 - frac) * wheel[k0] + frac * wheel[k1]
    inside = (radius <= 1)[..., None]
    saturated = 1 - np.minimum(radius, 1)[..., None] * (1 - hue)
    colour = np.where(inside, saturated, hue * 0.75)              # beyond the scale: darker
    return (colour * 255).round().astype(np.uint8)


def save_flow_png(path: str | os.PathLike, flow: np.ndarray, max_radius: float | None = None):
    from PIL import Image

    Image.fromarray(flow_to_colour(flow, max_radius)).save(path)

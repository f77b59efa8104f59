"""Host-side image transforms (numpy + Pillow), run inside grain workers."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) uint8 -> (size, size, C) uint8, bilinear; returns the input if already sized."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    channels = image.shape[2]
    pil = Image.fromarray(image[..., 0] if channels == 1 else image)
    out = np.asarray(pil.resize((size, size), Image.BILINEAR), np.uint8)
    return out.reshape(size, size, channels)


def random_resized_crop(image: np.ndarray, rng: np.random.Generator, size: int,
                        scale=(0.3, 1.0), ratio=(3 / 4, 4 / 3)) -> np.ndarray:
    """torchvision-style RandomResizedCrop: area fraction in `scale`, log-uniform aspect ratio,
    10 tries, then a centre crop at the nearest valid aspect ratio."""
    h, w = image.shape[:2]
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            return resize(image[top:top + ch, left:left + cw], size)
    aspect = w / h
    cw, ch = (w, int(round(w / ratio[0]))) if aspect < ratio[0] else (
        (int(round(h * ratio[1])), h) if aspect > ratio[1] else (w, h))
    top, left = (h - ch) // 2, (w - cw) // 2
    return resize(image[top:top + ch, left:left + cw], size)


def augment(image: np.ndarray, rng: np.random.Generator, size: int, crop_scale, hflip: bool):
    """I-JEPA's augmentation: random resized crop and (optionally) a horizontal flip."""
    out = random_resized_crop(image, rng, size, scale=tuple(crop_scale))
    if hflip and rng.uniform() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)

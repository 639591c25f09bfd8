"""The study's images: a folder of PNGs, shrunk and centre-cropped as the profile says."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codec.errors import ConfigError
from codec.image import load_image
from experiments.profiles import Profile


def center_crop(img: np.ndarray, side: int) -> np.ndarray:
    if side <= 0:
        return img
    h, w = img.shape[:2]
    s = min(side, h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return np.ascontiguousarray(img[top : top + s, left : left + s])


def downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Shrink by an integer factor with a box filter (each output pixel the mean of factor² inputs)."""
    if factor <= 1:
        return img
    from PIL import Image

    h, w = img.shape[:2]
    size = (max(1, w // factor), max(1, h // factor))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BOX))


def load_dataset(folder: str | Path, profile: Profile) -> list[tuple[str, np.ndarray]]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"--dataset {str(folder)!r} is not a folder of PNG images")
    files = sorted(folder.glob("*.png"))
    if not files:
        raise ConfigError(f"--dataset {str(folder)!r} holds no .png files")
    if profile.images:
        files = files[: profile.images]
    return [(f.stem, center_crop(downscale(load_image(f), profile.downscale), profile.crop)) for f in files]


def raw_bytes(image: np.ndarray) -> int:
    """24-bit RGB size of an image, the numerator of the compression factor."""
    return int(image.shape[0] * image.shape[1] * 3)

"""The meta-training corpus: photographs shrunk like the images θ0 will meet, random crops of them,
and a held-out split for the validation curve.

Test sets are refused by name (Kodak, Set5, Set14 measure the codec; nothing may learn from them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codec.errors import ConfigError
from codec.image import load_image

TEST_SETS = ("kodak", "set5", "set14")
EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".webp")
VAL_EVERY = 10
"""Every this-many-th image (sorted by name) is held out for validation."""


def box_downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Each output pixel the mean of factor x factor inputs (the mini-Kodak profile's filter)."""
    if factor <= 1:
        return img
    from PIL import Image

    h, w = img.shape[:2]
    return np.asarray(
        Image.fromarray(img).resize((max(1, w // factor), max(1, h // factor)), Image.Resampling.BOX)
    )


def load_corpus(
    folder: str | Path, downscale: int, limit: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(training images, held-out images) of ``folder``, each shrunk by ``downscale``."""
    folder = Path(folder)
    if any(part.lower() in TEST_SETS for part in folder.resolve().parts):
        raise ConfigError(
            f"--dataset {str(folder)!r} is a test set ({', '.join(TEST_SETS)} measure the codec and are never"
            " trained on); meta-train on a training corpus such as sun80"
        )
    if not folder.is_dir():
        raise ConfigError(f"--dataset {str(folder)!r} is not a folder of images")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in EXTENSIONS)
    if limit:
        files = files[:limit]
    if len(files) < 2:
        raise ConfigError(
            f"--dataset {str(folder)!r} holds {len(files)} images; meta-training needs at least 2"
        )
    images = [box_downscale(load_image(f), downscale) for f in files]
    val = [im for i, im in enumerate(images) if i % VAL_EVERY == VAL_EVERY - 1] or images[-1:]
    train = [im for i, im in enumerate(images) if i % VAL_EVERY != VAL_EVERY - 1] or images[:-1]
    return train, val


def random_crop(images: list[np.ndarray], w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A ``w`` x ``h`` crop of a random image (randomly mirrored; an image too small is used whole,
    resized); the task of one Reptile step."""
    img = images[int(rng.integers(len(images)))]
    if img.shape[0] < h or img.shape[1] < w:
        from PIL import Image

        img = np.asarray(Image.fromarray(img).resize((max(w, img.shape[1]), max(h, img.shape[0]))))
    top = int(rng.integers(img.shape[0] - h + 1))
    left = int(rng.integers(img.shape[1] - w + 1))
    crop = img[top : top + h, left : left + w]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def center(img: np.ndarray, w: int, h: int) -> np.ndarray:
    top, left = max(0, (img.shape[0] - h) // 2), max(0, (img.shape[1] - w) // 2)
    return np.ascontiguousarray(img[top : top + h, left : left + w])

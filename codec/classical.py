"""The classical codecs spinr is measured against, through Pillow with fair settings, and the one search
for the best setting that fits a size.

Fair settings (those of the project's baseline measurements on Kodak):

- ``jpeg``: ``quality`` (baseline JPEG, Pillow's defaults otherwise);
- ``jpeg-progressive``: ``quality``, ``progressive=True``, ``optimize=True`` (optimized Huffman tables);
- ``webp``: ``quality``, ``method=6`` (the slowest, best compression);
- ``jpeg2000``: OpenJPEG with ``quality_mode="rates"`` (the setting is a compression ratio),
  ``irreversible=True`` and ``mct=1``: without the colour transform the same rates give about 2.5 dB
  less, an unfair baseline;
- ``avif``: ``quality``, ``speed=4``, 4:2:0 chroma.

A size target is met by binary search for the highest quality (the lowest JPEG 2000 compression ratio)
whose file stays at or under it: file size grows with quality, monotone enough for a bisection.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from codec.errors import ConfigError
from codec.metrics import psnr

CODECS = ("jpeg", "jpeg-progressive", "webp", "jpeg2000", "avif")
QUALITY_RANGE = (1, 100)
"""The quality setting of every codec but JPEG 2000."""
J2K_RATIOS = (1.0, 2000.0)
"""JPEG 2000 compression ratios searched (in log space)."""
J2K_SEARCH_STEPS = 18


def encode(rgb: np.ndarray, codec: str, quality: float) -> bytes:
    """``rgb`` (uint8 H x W x 3) as ``codec`` at ``quality`` (JPEG 2000: the compression ratio)."""
    if codec not in CODECS:
        raise ConfigError(f"codec {codec!r} is not one of {', '.join(CODECS)}")
    if codec == "jpeg2000":
        if not quality > 0:
            raise ConfigError(f"JPEG 2000 compression ratio {quality} must be > 0")
    elif not QUALITY_RANGE[0] <= quality <= QUALITY_RANGE[1]:
        raise ConfigError(f"{codec} quality {quality} is out of range: allowed 1..100")
    buf = io.BytesIO()
    img = Image.fromarray(rgb)
    if codec == "jpeg":
        img.save(buf, format="JPEG", quality=int(quality))
    elif codec == "jpeg-progressive":
        img.save(buf, format="JPEG", quality=int(quality), progressive=True, optimize=True)
    elif codec == "webp":
        img.save(buf, format="WEBP", quality=int(quality), method=6)
    elif codec == "avif":
        img.save(buf, format="AVIF", quality=int(quality), speed=4, subsampling="4:2:0")
    else:
        img.save(
            buf, format="JPEG2000", quality_mode="rates", quality_layers=[quality], irreversible=True, mct=1
        )
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    """A whole file of any of the codecs back to uint8 RGB."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@dataclass(frozen=True)
class Encoded:
    """The result of a size search."""

    codec: str
    quality: float
    """The setting found: an int quality 1..100, or JPEG 2000's compression ratio."""
    data: bytes
    fits: bool
    """Whether ``data`` meets the target; False: no setting does, and this is the smallest file."""


def search(rgb: np.ndarray, codec: str, fits: Callable[[int], bool]) -> Encoded:
    """The highest-quality encoding whose size in bytes satisfies ``fits`` (or the smallest file)."""
    if codec == "jpeg2000":
        return _search_ratio(rgb, fits)
    lo, hi = QUALITY_RANGE
    best: Encoded | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        data = encode(rgb, codec, mid)
        if fits(len(data)):
            best, lo = Encoded(codec, mid, data, True), mid + 1
        else:
            hi = mid - 1
    if best is None:
        q = QUALITY_RANGE[0]
        best = Encoded(codec, q, encode(rgb, codec, q), False)
    return best


def _search_ratio(rgb: np.ndarray, fits: Callable[[int], bool]) -> Encoded:
    # The file shrinks as the ratio grows: bisect log(ratio) for the smallest ratio that fits.
    lo, hi = math.log(J2K_RATIOS[0]), math.log(J2K_RATIOS[1])
    best: Encoded | None = None
    for _ in range(J2K_SEARCH_STEPS):
        mid = (lo + hi) / 2
        data = encode(rgb, "jpeg2000", math.exp(mid))
        if fits(len(data)):
            best, hi = Encoded("jpeg2000", math.exp(mid), data, True), mid
        else:
            lo = mid
    if best is None:
        best = Encoded("jpeg2000", math.exp(hi), encode(rgb, "jpeg2000", math.exp(hi)), False)
    return best


def at_bytes(rgb: np.ndarray, codec: str, max_bytes: int) -> Encoded:
    """The best ``codec`` file of at most ``max_bytes`` bytes (or the smallest it makes)."""
    return search(rgb, codec, lambda n: n <= max_bytes)


def at_bpp(rgb: np.ndarray, codec: str, target: float) -> dict[str, float]:
    """Encode at the best setting whose bits per pixel are <= ``target`` (or the smallest file if none
    is): the setting (``quality``), the ``bpp`` reached and the ``psnr`` of the decoded file."""
    pixels = rgb.shape[0] * rgb.shape[1]
    found = search(rgb, codec, lambda n: n * 8 / pixels <= target)
    return {
        "quality": float(found.quality),
        "bpp": len(found.data) * 8 / pixels,
        "psnr": psnr(decode(found.data), rgb),
    }

"""Reading and writing images with Pillow, with limits that stop decompression bombs.

Every mode Pillow opens becomes 8-bit RGB by :func:`rgb_from_pil`; the rules for modes whose range
Pillow's own ``convert("RGB")`` gets wrong (it clips 16-bit and float values at 255) are in its docstring.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from codec.errors import ImageError

DEFAULT_MAX_PIXELS = 40_000_000
"""Largest image accepted (width * height); a 12-bit-per-side bomb is refused before decoding."""
SUPPORTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "PPM", "JPEG2000")


def load_image(source: str | os.PathLike[str] | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image to uint8 (height, width, 3) RGB, honouring EXIF orientation.

    Raises ImageError naming the problem: missing file, not an image, unsupported format, too many pixels.
    """
    name = "upload" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"image file {name!r} does not exist or is not a file")
    try:
        fp = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ImageError(f"cannot open image {name!r}: {exc.strerror or exc}") from None
    with fp:
        try:
            img = Image.open(fp)
        except UnidentifiedImageError:
            raise ImageError(
                f"{name!r} is not a readable image; supported formats: {', '.join(SUPPORTED_FORMATS)}"
            ) from None
        except (OSError, ValueError) as exc:
            raise ImageError(f"cannot read image {name!r}: {exc}") from None
        if img.format not in SUPPORTED_FORMATS:
            raise ImageError(
                f"image format {img.format!r} of {name!r} is not supported; use one of {', '.join(SUPPORTED_FORMATS)}"
            )
        w, h = img.size
        if w < 1 or h < 1 or w * h > max_pixels:
            raise ImageError(f"image {name!r} is {w}x{h} = {w * h} pixels; the limit is {max_pixels} pixels")
        if max(w, h) > 65535:
            raise ImageError(f"image {name!r} is {w}x{h}; each side must be at most 65535")
        try:
            rgb = rgb_from_pil(ImageOps.exif_transpose(img))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageError(f"cannot decode image {name!r}: {exc}") from None
    return rgb


ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
WIDE_INT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


def rgb_from_pil(img: Image.Image) -> np.ndarray:
    """Any Pillow image -> contiguous uint8 (height, width, 3) RGB.

    - ``I;16``, ``I;16L``, ``I;16B``, ``I;16N`` (16-bit grayscale PNG, TIFF, JPEG 2000) and ``I``
      (32-bit integers; Pillow opens 16-bit PGM/PPM this way, scaled to 0..65535): 0..65535 maps to
      0..255 (``round(v / 257)``), values outside clipped.
    - ``F`` (32-bit float TIFF, PFM): 0.0..1.0 maps to 0..255, the float convention; outside
      clipped, NaN black.
    - Transparency (``RGBA``, ``RGBa``, ``LA``, ``La``, ``PA``, or a ``transparency`` entry on ``P``,
      ``L``, ``RGB``, ``1``) is composited over white, so what hides behind alpha 0 never shows.
    - Everything else (``1``, ``L``, ``P``, ``RGB``, ``RGBX``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``) goes
      through Pillow's own conversion to RGB.
    """
    mode = img.mode
    if mode in WIDE_INT_MODES:
        wide = np.clip(np.asarray(img).astype(np.int32, copy=False), 0, 65535)
        return _gray_to_rgb(((wide + 128) // 257).astype(np.uint8))
    if mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return _gray_to_rgb(np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8))
    if mode in ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("LA").convert("RGBA") if mode == "La" else img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


FAST_PNG_PIXELS = 1 << 20
"""Above this many pixels PNGs are written at zlib level 1: level 6 took 1.7 s for a 2048 x 2048
decode (level 1: 0.36 s, a 25 % larger file), more than decoding it (fuzz run of issue #11)."""


def _png_options(rgb: np.ndarray) -> dict[str, int]:
    return {"compress_level": 1} if rgb.shape[0] * rgb.shape[1] > FAST_PNG_PIXELS else {}


def save_png(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Write atomically (temp file, then rename) so a reader never sees half a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    Image.fromarray(rgb).save(tmp, format="PNG", **_png_options(rgb))
    os.replace(tmp, path)


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", **_png_options(rgb))
    return buf.getvalue()

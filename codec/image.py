"""Reading and writing images with Pillow, with limits that stop decompression bombs."""

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
            upright: Image.Image = ImageOps.exif_transpose(img)
            if upright.mode in ("RGBA", "LA", "PA") or (
                upright.mode == "P" and "transparency" in upright.info
            ):
                # Composite transparency over white rather than keep whatever hides behind alpha 0.
                rgba = upright.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                upright = Image.alpha_composite(background, rgba)
            rgb = np.asarray(upright.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageError(f"cannot decode image {name!r}: {exc}") from None
    return np.ascontiguousarray(rgb)


def save_png(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Write atomically (temp file, then rename) so a reader never sees half a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    Image.fromarray(rgb).save(tmp, format="PNG")
    os.replace(tmp, path)


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()

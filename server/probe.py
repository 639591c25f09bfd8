"""Check an upload from its header alone, before a pixel is decoded."""

from __future__ import annotations

import io
import warnings

from fastapi import HTTPException
from PIL import Image, UnidentifiedImageError

from codec.image import SUPPORTED_FORMATS


def probe_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the header alone; 415 for what is not an image of a supported format;
    422 for a pixel count over the limit (so a decompression bomb is never decoded)."""
    formats = ", ".join(SUPPORTED_FORMATS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt, (w, h) = img.format, img.size
    except Image.DecompressionBombError as exc:
        raise HTTPException(422, f"image is too large: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise HTTPException(
            415, f"the upload is not an image in a supported format; use one of {formats}"
        ) from None
    if fmt not in SUPPORTED_FORMATS:
        raise HTTPException(415, f"image format {fmt} is not supported; use one of {formats}")
    if w * h > max_pixels:
        raise HTTPException(422, f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels} pixels")
    return w, h

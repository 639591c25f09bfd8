"""Classical codecs through Pillow at a matched bit rate, and the Bjontegaard delta rate.

Fair settings as in /work/shared/BASELINES.md: JPEG (``quality``; progressive too), WebP (``quality``,
``method=6``), JPEG 2000 (OpenJPEG, ``quality_mode="rates"``, ``irreversible=True``, ``mct=1``, RGB) and
AVIF (``quality``, ``speed=4``, 4:2:0). A target bpp is met by binary search for the highest quality (or
the lowest JPEG 2000 compression ratio) whose file stays at or under the target.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
from PIL import Image

from codec.metrics import psnr

CODECS = ("jpeg", "jpeg-progressive", "webp", "jpeg2000", "avif")


def _encode(rgb: np.ndarray, codec: str, q: float) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(rgb)
    if codec == "jpeg":
        img.save(buf, format="JPEG", quality=int(q))
    elif codec == "jpeg-progressive":
        img.save(buf, format="JPEG", quality=int(q), progressive=True, optimize=True)
    elif codec == "webp":
        img.save(buf, format="WEBP", quality=int(q), method=6)
    elif codec == "avif":
        img.save(buf, format="AVIF", quality=int(q), speed=4, subsampling="4:2:0")
    elif codec == "jpeg2000":
        img.save(buf, format="JPEG2000", quality_mode="rates", quality_layers=[q], irreversible=True, mct=1)
    else:
        raise ValueError(f"codec {codec!r} is not one of {', '.join(CODECS)}")
    return buf.getvalue()


def _measure(rgb: np.ndarray, codec: str, q: float) -> tuple[float, float]:
    data = _encode(rgb, codec, q)
    dec = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return len(data) * 8 / (rgb.shape[0] * rgb.shape[1]), psnr(dec, rgb)


def at_bpp(rgb: np.ndarray, codec: str, target: float) -> dict[str, float]:
    """Encode at the best setting whose bpp is <= target (or the smallest file if none is)."""
    measure: Callable[[float], tuple[float, float]] = lambda q: _measure(rgb, codec, q)  # noqa: E731
    if codec == "jpeg2000":
        # Compression ratio r = 24 / bpp nominally; search r in log space for the smallest file <= target.
        lo, hi = math.log(1.0), math.log(2000.0)
        best = None
        for _ in range(18):
            mid = (lo + hi) / 2
            bpp, p = measure(math.exp(mid))
            if bpp <= target:
                best, hi = (math.exp(mid), bpp, p), mid
            else:
                lo = mid
        if best is None:
            bpp, p = measure(math.exp(hi))
            best = (math.exp(hi), bpp, p)
        return {"quality": best[0], "bpp": best[1], "psnr": best[2]}
    lo, hi, best = 1, 100, None
    while lo <= hi:
        mid = (lo + hi) // 2
        bpp, p = measure(mid)
        if bpp <= target:
            best, lo = (mid, bpp, p), mid + 1
        else:
            hi = mid - 1
    if best is None:
        bpp, p = measure(1)
        best = (1, bpp, p)
    return {"quality": float(best[0]), "bpp": best[1], "psnr": best[2]}


def bd_rate(rate_a: list[float], psnr_a: list[float], rate_b: list[float], psnr_b: list[float]) -> float:
    """Bjontegaard delta rate (%) of curve B against reference A: cubic fit of log-rate over PSNR,
    integrated over the overlapping PSNR interval. Negative = B needs fewer bits. NaN without overlap."""
    if min(len(rate_a), len(rate_b)) < 4:
        raise ValueError("BD-rate needs at least 4 points per curve")
    la, lb = np.log(np.asarray(rate_a, float)), np.log(np.asarray(rate_b, float))
    pa, pb = np.asarray(psnr_a, float), np.asarray(psnr_b, float)
    fa, fb = np.polyfit(pa, la, 3), np.polyfit(pb, lb, 3)
    lo, hi = max(pa.min(), pb.min()), min(pa.max(), pb.max())
    if not hi > lo:
        return math.nan
    ia, ib = np.polyint(fa), np.polyint(fb)
    avg_a = (np.polyval(ia, hi) - np.polyval(ia, lo)) / (hi - lo)
    avg_b = (np.polyval(ib, hi) - np.polyval(ib, lo)) / (hi - lo)
    return float((math.exp(avg_b - avg_a) - 1) * 100)

"""What the classical codecs reach at a spinr file's bytes, as ``spinr encode`` and ``spinr demo`` print it."""

from __future__ import annotations

from typing import Any


def classical_at(image: Any, size: int, codecs: tuple[str, ...] = ("jpeg",)) -> dict[str, dict[str, Any]]:
    """PSNR, bytes and setting of each classical codec's best file of at most ``size`` bytes."""
    from codec.classical import at_bytes, decode
    from codec.metrics import psnr

    out = {}
    for codec in codecs:
        found = at_bytes(image, codec, size)
        out[codec] = {
            "psnr": round(psnr(decode(found.data), image), 3),
            "bytes": len(found.data),
            "quality": round(found.quality, 3),
            "fits": found.fits,
        }
    return out


def compare_text(summary: dict[str, Any]) -> str:
    """``JPEG at the same bytes: 25.31 dB (q 40, 1180 bytes)``."""
    parts = []
    for codec, r in summary.get("classical", {}).items():
        note = "" if r["fits"] else ", its smallest file is larger"
        parts.append(
            f"{codec.upper()} {r['psnr']:.2f} dB (quality {r['quality']:g}, {r['bytes']} bytes{note})"
        )
    return "at the same bytes: " + "; ".join(parts) if parts else ""

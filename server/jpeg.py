"""The largest baseline JPEG of an image within a byte budget (for side-by-side comparison).

Kept as it was in server/app.py; codec/classical.py is to become the one home of JPEG-at-a-size
searches (issue 15, item 7), and the server will use it from there.
"""

from __future__ import annotations

import io

from PIL import Image


def jpeg_at_most(rgb_png: bytes, limit: int) -> tuple[tuple[bytes, int] | None, int]:
    """(baseline JPEG, quality) of the highest quality (1..100) whose size is <= ``limit``, or None;
    and the smallest size seen (what quality 1 gives, when nothing fits)."""
    img = Image.open(io.BytesIO(rgb_png)).convert("RGB")

    def encode(q: int) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q, optimize=False, progressive=False)
        return buf.getvalue()

    lo, hi, best, smallest = 1, 100, None, 1 << 62
    while lo <= hi:  # JPEG size grows with quality (monotone enough for a binary search)
        mid = (lo + hi) // 2
        data = encode(mid)
        smallest = min(smallest, len(data))
        if len(data) <= limit:
            best, lo = (data, mid), mid + 1
        else:
            hi = mid - 1
    return best, smallest

"""v1 packet payloads: a msgpack map compressed into one zstd frame that declares its content size.

Decoding never trusts a size it has not bounded: the declared content size is checked against
``MAX_DECOMPRESSED`` before anything is allocated, the decompressor refuses larger windows, and msgpack
runs with per-object limits plus a budget on the total number of container items, so a small packet
cannot expand into gigabytes of Python objects.
"""

from __future__ import annotations

from typing import Any

import zstandard

from codec.errors import BitstreamError
from codec.mpack import pack, unpack_map

MAX_DECOMPRESSED = 64 * 2**20


def encode_payload(obj: dict[str, Any], level: int = 19) -> bytes:
    """A v1 payload (tests build v1 streams with it; encoders write v2)."""
    raw = pack(obj)
    return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(raw)


def _decompress(data: bytes) -> bytes:
    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise BitstreamError(f"payload is not a zstd frame: {exc}") from None
    if size < 0:
        raise BitstreamError("payload zstd frame does not declare its content size")
    if size > MAX_DECOMPRESSED:
        raise BitstreamError(
            f"payload declares {size} decompressed bytes, more than MAX_DECOMPRESSED {MAX_DECOMPRESSED}"
        )
    # The streaming object allocates by what it actually produces, and libzstd stops at the declared size.
    dobj = zstandard.ZstdDecompressor(max_window_size=MAX_DECOMPRESSED).decompressobj()
    try:
        raw = dobj.decompress(data)
    except zstandard.ZstdError as exc:
        raise BitstreamError(f"payload zstd frame is corrupt: {exc}") from None
    if not dobj.eof:
        raise BitstreamError("payload zstd frame is truncated")
    if dobj.unused_data:
        raise BitstreamError(f"payload has {len(dobj.unused_data)} bytes after its zstd frame")
    if len(raw) != size:
        raise BitstreamError(f"payload decompressed to {len(raw)} bytes but declares {size}")
    return raw


def decode_payload(data: bytes) -> dict[str, Any]:
    """zstd frame -> msgpack map with string keys; anything else raises BitstreamError."""
    raw = _decompress(bytes(data))
    return unpack_map(raw)

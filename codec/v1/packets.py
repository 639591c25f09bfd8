"""The v1 packet header: 24 fixed big-endian bytes (docs/FORMAT.md, "Appendix: format version 1").

| magic "SPNR" 4 | version 1 1 | ptype 1 | flags 2 | stream_id 4 | seq 2 | layer 2 | length 4 | crc32 4 |

:class:`codec.packets.Packet` reads and writes both versions; this module holds v1's layout.
"""

from __future__ import annotations

import struct

from codec.errors import BitstreamError

MAGIC = b"SPNR"
VERSION = 1
HEADER_LENGTH = 24
HEADER_FORMAT = ">4sBBHIHHII"
HEADER_LAYER = 0xFFFF
"""The ``layer`` field of a v1 header packet."""
FLAG_ZSTD = 1
"""Flags bit 0: the payload is a zstd frame. Always set in v1; every other bit must be 0."""
CRC_OFFSET = 20
"""The CRC covers bytes 0..19 of the header, then the payload."""

_STRUCT = struct.Struct(HEADER_FORMAT)
assert _STRUCT.size == HEADER_LENGTH


def unpack_head(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, ...]:
    """(ptype, flags, stream_id, seq, layer, length, crc) at ``offset``, unchecked but for the length
    of the buffer and the magic (which is how a reader knows the bytes are v1 at all)."""
    have = len(data) - offset
    if have < HEADER_LENGTH:
        raise BitstreamError(f"packet truncated: header needs {HEADER_LENGTH} bytes, got {max(0, have)}")
    magic, _version, *fields = _STRUCT.unpack_from(data, offset)
    if magic != MAGIC:
        raise BitstreamError(f"bad magic {magic!r}: expected {MAGIC!r}")
    return tuple(fields)


def pack_head(ptype: int, stream_id: int, seq: int, layer: int, length: int) -> bytes:
    """Header bytes 0..19: everything but the CRC."""
    return _STRUCT.pack(MAGIC, VERSION, ptype, FLAG_ZSTD, stream_id, seq, layer, length, 0)[:CRC_OFFSET]


def check_head(version: int, ptype: int, flags: int) -> None:
    """The fields a v1 reader refuses outright (before the length and the CRC)."""
    if version != VERSION:
        raise BitstreamError(f"unsupported packet version {version}: expected {VERSION}")
    if ptype not in (0, 1):
        raise BitstreamError(f"unknown packet type {ptype}: expected 0 (header) or 1 (layer)")
    if flags != FLAG_ZSTD:
        raise BitstreamError(
            f"packet flags {flags:#06x} not supported: v1 requires {FLAG_ZSTD:#06x} (zstd, reserved bits 0)"
        )

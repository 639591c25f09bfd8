"""One spinr packet: a fixed 24-byte big-endian header, then a zstd payload (docs/FORMAT.md, "Packet").

A packet travels alone (datagram, WebSocket message), so it carries its own stream id, position and
CRC; anything that does not check out raises :class:`BitstreamError` naming the field and the value.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

from codec.errors import BitstreamError

MAGIC = b"SPNR"
VERSION = 1
HEADER_LENGTH = 24
HEADER_FORMAT = ">4sBBHIHHII"
HEADER_LAYER = 0xFFFF
"""The ``layer`` field of a header packet."""
FLAG_ZSTD = 1
"""Flags bit 0: the payload is a zstd frame. Always set in v1; every other bit must be 0."""
MAX_PAYLOAD = 16 * 2**20

_STRUCT = struct.Struct(HEADER_FORMAT)
_CRC_OFFSET = 20  # the CRC covers bytes 0..19 of the header, then the payload
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
assert _STRUCT.size == HEADER_LENGTH


class PacketType(enum.IntEnum):
    HEADER = 0
    LAYER = 1


@dataclass(frozen=True)
class PacketHead:
    """A packet's fixed header fields as they stand in the bytes, unchecked (see :meth:`Packet.peek`)."""

    magic: bytes
    version: int
    ptype: int
    """Raw type byte: compare with :class:`PacketType`; an unknown value is not rejected here."""
    flags: int
    stream_id: int
    seq: int
    layer: int
    length: int
    """Payload length the header declares."""
    crc: int

    @property
    def unit(self) -> int | None:
        """Unit index of a layer packet; None for a header packet."""
        return None if self.ptype == PacketType.HEADER else self.layer


def _check_range(name: str, value: object, top: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise BitstreamError(f"packet {name} {value!r} is out of range 0..{top}")


@dataclass(frozen=True)
class Packet:
    ptype: PacketType
    stream_id: int
    seq: int
    layer: int
    """Unit index 0..N-1, or ``HEADER_LAYER`` for the header packet."""
    payload: bytes
    flags: int = FLAG_ZSTD

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "ptype", PacketType(self.ptype))
        except ValueError:
            raise BitstreamError(
                f"unknown packet type {self.ptype!r}: expected 0 (header) or 1 (layer)"
            ) from None
        _check_range("stream_id", self.stream_id, _U32)
        _check_range("seq", self.seq, _U16)
        _check_range("layer", self.layer, _U16)
        _check_range("flags", self.flags, _U16)
        if self.flags != FLAG_ZSTD:
            raise BitstreamError(
                f"packet flags {self.flags:#06x} not supported: v1 requires {FLAG_ZSTD:#06x} (zstd, reserved bits 0)"
            )
        if not isinstance(self.payload, bytes):
            if not isinstance(self.payload, (bytearray, memoryview)):
                raise BitstreamError(f"packet payload must be bytes, got {type(self.payload).__name__}")
            object.__setattr__(self, "payload", bytes(self.payload))
        if len(self.payload) > MAX_PAYLOAD:
            raise BitstreamError(
                f"packet payload of {len(self.payload)} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}"
            )
        if self.ptype == PacketType.HEADER and self.layer != HEADER_LAYER:
            raise BitstreamError(f"header packet must have layer {HEADER_LAYER:#06x}, got {self.layer}")
        if self.ptype == PacketType.LAYER and self.layer == HEADER_LAYER:
            raise BitstreamError(
                f"layer packet cannot use layer {HEADER_LAYER:#06x} (reserved for the header)"
            )

    def _head(self) -> bytes:
        """Header bytes 0..19: everything but the CRC."""
        return _STRUCT.pack(
            MAGIC, VERSION, self.ptype, self.flags, self.stream_id, self.seq, self.layer, len(self.payload), 0
        )[:_CRC_OFFSET]

    @property
    def crc(self) -> int:
        return zlib.crc32(self.payload, zlib.crc32(self._head()))

    def to_bytes(self) -> bytes:
        return self._head() + struct.pack(">I", self.crc) + self.payload

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @staticmethod
    def peek(data: bytes | bytearray | memoryview, offset: int = 0) -> PacketHead:
        """The fixed header at ``offset`` without checking it or the CRC: cheap, for routing and
        framing. Only a short buffer raises; :meth:`parse` is what validates a packet."""
        have = len(data) - offset
        if have < HEADER_LENGTH:
            raise BitstreamError(f"packet truncated: header needs {HEADER_LENGTH} bytes, got {max(0, have)}")
        return PacketHead(*_STRUCT.unpack_from(data, offset))

    @classmethod
    def parse(cls, data: bytes) -> Packet:
        """Parse exactly one packet; ``data`` must be ``HEADER_LENGTH + length`` bytes long."""
        data = bytes(data)
        head = cls.peek(data)
        magic, version, ptype, flags = head.magic, head.version, head.ptype, head.flags
        stream_id, seq, layer, length, crc = head.stream_id, head.seq, head.layer, head.length, head.crc
        if magic != MAGIC:
            raise BitstreamError(f"bad magic {magic!r}: expected {MAGIC!r}")
        if version != VERSION:
            raise BitstreamError(f"unsupported packet version {version}: expected {VERSION}")
        if ptype not in (PacketType.HEADER, PacketType.LAYER):
            raise BitstreamError(f"unknown packet type {ptype}: expected 0 (header) or 1 (layer)")
        if flags != FLAG_ZSTD:
            raise BitstreamError(
                f"packet flags {flags:#06x} not supported: v1 requires {FLAG_ZSTD:#06x} (zstd, reserved bits 0)"
            )
        if length > MAX_PAYLOAD:
            raise BitstreamError(f"packet payload length {length} exceeds MAX_PAYLOAD {MAX_PAYLOAD}")
        have = len(data) - HEADER_LENGTH
        if have < length:
            raise BitstreamError(f"packet truncated: payload needs {length} bytes, got {have}")
        if have > length:
            raise BitstreamError(f"packet has {have - length} trailing bytes after its {length}-byte payload")
        payload = data[HEADER_LENGTH:]
        actual = zlib.crc32(payload, zlib.crc32(data[:_CRC_OFFSET]))
        if actual != crc:
            raise BitstreamError(f"bad CRC in packet seq {seq}: expected {crc:#010x}, got {actual:#010x}")
        return cls(PacketType(ptype), stream_id, seq, layer, payload, flags)

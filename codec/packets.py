"""One spinr packet (docs/FORMAT.md, "Packet"): a compact header, a CRC-32, then the payload.

Version 2 (what encoders write), all integers big-endian, varints LEB128 (:mod:`codec.varint`):

| magic 0x53 1 | version << 4 | type 1 | stream_id 2 | seq varint | unit varint | level varint | length varint | crc32 4 |

``unit`` is present in unit and refinement packets, ``level`` in refinement packets only; the CRC covers
every byte before it and the payload. A typical unit packet spends 12 bytes on all this, a header
packet 10. Version 1 packets (24 fixed bytes starting ``SPNR``, :mod:`codec.v1.packets`) parse too: the
second byte tells them apart (``P`` = 0x50, a version nibble of 5 that v2 never uses).

A packet travels alone (datagram, WebSocket message), so it carries its own stream id, position and
CRC; anything that does not check out raises :class:`BitstreamError` naming the field and the value.
"""

from __future__ import annotations

import enum
import zlib
from dataclasses import dataclass

from codec.errors import BitstreamError
from codec.v1 import packets as v1
from codec.varint import Reader, uvarint

MAGIC = 0x53
"""First byte of every packet: ``S``."""
VERSION = 2
MAX_PAYLOAD = 16 * 2**20
MAX_SEQ = 0xFFFF
MAX_UNIT = 0xFFFF
MAX_LEVEL = 255
MAX_STREAM_ID = 0xFFFF
"""v2 stream ids are nonzero u16 (v1's were u32)."""
CRC_LENGTH = 4
MIN_HEAD_LENGTH = 10
"""magic, version/type, stream id, a 1-byte seq, a 1-byte length and the CRC: a header packet."""
MAX_HEAD_LENGTH = 4 + 3 + 3 + 2 + 4 + CRC_LENGTH
"""The longest v2 header (seq and unit <= 0xFFFF, level <= 255, length <= 16 MiB)."""
_V1_SECOND_BYTE = v1.MAGIC[1]
_PEEK_LENGTH = max(MAX_HEAD_LENGTH, v1.HEADER_LENGTH)


class PacketType(enum.IntEnum):
    HEADER = 0
    UNIT = 1
    """One unit's tensors (v1 called it a layer packet)."""
    REFINEMENT = 2
    """Reserved for precision refinements of a unit (issue #12); parsed, refused by the decoders."""


_TYPE_NAMES = "0 (header), 1 (unit) or 2 (refinement)"


@dataclass(frozen=True)
class PacketHead:
    """A packet's header fields as they stand in the bytes (see :meth:`Packet.peek`): the CRC and the
    payload unchecked, the type and counts not checked against the rules :meth:`Packet.parse` applies."""

    version: int
    ptype: int
    """Raw type: compare with :class:`PacketType`."""
    stream_id: int
    seq: int
    unit: int | None
    """Unit index of a unit or refinement packet; None for a header packet."""
    level: int | None
    """Refinement level of a refinement packet; None otherwise."""
    length: int
    """Payload length the header declares."""
    crc: int
    head_length: int
    """Bytes before the payload (the CRC included)."""

    @property
    def size(self) -> int:
        """Bytes of the whole packet."""
        return self.head_length + self.length


def _check_range(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BitstreamError(f"packet {name} {value!r} is out of range {lo}..{hi}")


@dataclass(frozen=True)
class Packet:
    ptype: PacketType
    stream_id: int
    seq: int
    """Transmission order: 0 for the header packet."""
    unit: int | None
    """Unit index of a unit or refinement packet, None for the header packet."""
    payload: bytes
    level: int | None = None
    """Refinement level (refinement packets only)."""
    version: int = VERSION

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "ptype", PacketType(self.ptype))
        except ValueError:
            raise BitstreamError(f"unknown packet type {self.ptype!r}: expected {_TYPE_NAMES}") from None
        if self.version not in (v1.VERSION, VERSION):
            raise BitstreamError(f"packet version {self.version!r} is not 1 or 2")
        is_v1 = self.version == v1.VERSION
        if is_v1 and self.ptype == PacketType.REFINEMENT:
            raise BitstreamError("version 1 has no refinement packets")
        _check_range("stream_id", self.stream_id, 0 if is_v1 else 1, 0xFFFFFFFF if is_v1 else MAX_STREAM_ID)
        _check_range("seq", self.seq, 0, MAX_SEQ)
        if self.ptype == PacketType.HEADER:
            if self.unit is not None:
                raise BitstreamError(f"a header packet has no unit, got {self.unit!r}")
            if not is_v1 and self.seq != 0:
                raise BitstreamError(f"a header packet has seq 0, got {self.seq}")
        else:
            _check_range("unit", self.unit, 0, v1.HEADER_LAYER - 1 if is_v1 else MAX_UNIT)
            if not is_v1 and self.seq == 0:
                raise BitstreamError("seq 0 is the header packet's; a unit or refinement packet has seq >= 1")
        if self.ptype == PacketType.REFINEMENT:
            _check_range("level", self.level, 1, MAX_LEVEL)
        elif self.level is not None:
            raise BitstreamError(f"only a refinement packet has a level, got {self.level!r}")
        if not isinstance(self.payload, bytes):
            if not isinstance(self.payload, (bytearray, memoryview)):
                raise BitstreamError(f"packet payload must be bytes, got {type(self.payload).__name__}")
            object.__setattr__(self, "payload", bytes(self.payload))
        if len(self.payload) > MAX_PAYLOAD:
            raise BitstreamError(
                f"packet payload of {len(self.payload)} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}"
            )

    def _head(self) -> bytes:
        """Every header byte before the CRC."""
        if self.version == v1.VERSION:
            layer = v1.HEADER_LAYER if self.unit is None else self.unit
            return v1.pack_head(self.ptype, self.stream_id, self.seq, layer, len(self.payload))
        out = bytearray([MAGIC, VERSION << 4 | self.ptype]) + self.stream_id.to_bytes(2, "big")
        out += uvarint(self.seq)
        if self.unit is not None:
            out += uvarint(self.unit)
        if self.level is not None:
            out += uvarint(self.level)
        return bytes(out + uvarint(len(self.payload)))

    @property
    def crc(self) -> int:
        return zlib.crc32(self.payload, zlib.crc32(self._head()))

    @property
    def overhead(self) -> int:
        """Bytes the packet adds to its payload (header and CRC)."""
        return len(self._head()) + CRC_LENGTH

    def to_bytes(self) -> bytes:
        head = self._head()
        return head + zlib.crc32(self.payload, zlib.crc32(head)).to_bytes(4, "big") + self.payload

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @staticmethod
    def peek(data: bytes | bytearray | memoryview, offset: int = 0) -> PacketHead:
        """The header at ``offset`` without checking the CRC or the payload: cheap, for routing and
        framing. It raises only when the header itself cannot be read (too short, not a spinr
        packet, an unknown version or type, a malformed varint); :meth:`parse` validates a packet."""
        data = bytes(memoryview(data)[offset : offset + _PEEK_LENGTH])
        if len(data) < 2:
            raise BitstreamError(f"packet truncated: header needs at least 2 bytes, got {len(data)}")
        if data[0] != MAGIC:
            raise BitstreamError(f"bad magic {data[0]:#04x}: expected {MAGIC:#04x} ('S')")
        if data[1] == _V1_SECOND_BYTE:
            ptype, _flags, sid, seq, layer, length, crc = v1.unpack_head(data)
            unit = None if ptype == PacketType.HEADER else layer
            return PacketHead(v1.VERSION, ptype, sid, seq, unit, None, length, crc, v1.HEADER_LENGTH)
        version, ptype = data[1] >> 4, data[1] & 0x0F
        if version != VERSION:
            raise BitstreamError(f"unsupported packet version {version}: expected {VERSION} (or a v1 packet)")
        if ptype > PacketType.REFINEMENT:
            raise BitstreamError(f"unknown packet type {ptype}: expected {_TYPE_NAMES}")
        r = Reader(data, "packet", 2)
        sid = r.u16("stream id")
        seq = r.uvarint("seq")
        unit = r.uvarint("unit") if ptype != PacketType.HEADER else None
        level = r.uvarint("level") if ptype == PacketType.REFINEMENT else None
        length = r.uvarint("payload length")
        crc = r.u32("crc")
        return PacketHead(VERSION, ptype, sid, seq, unit, level, length, crc, r.pos)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Packet:
        """Parse exactly one packet (either version): ``data`` must end where its payload ends."""
        data = bytes(data)
        head = cls.peek(data)
        if head.version == v1.VERSION:
            v1.check_head(data[4], head.ptype, int.from_bytes(data[6:8], "big"))
        if head.length > MAX_PAYLOAD:
            raise BitstreamError(f"packet payload length {head.length} exceeds MAX_PAYLOAD {MAX_PAYLOAD}")
        have = len(data) - head.head_length
        if have < head.length:
            raise BitstreamError(f"packet truncated: payload needs {head.length} bytes, got {have}")
        if have > head.length:
            raise BitstreamError(
                f"packet has {have - head.length} trailing bytes after its {head.length}-byte payload"
            )
        payload = data[head.head_length :]
        crc_at = head.head_length - CRC_LENGTH
        actual = zlib.crc32(
            payload, zlib.crc32(data[: v1.CRC_OFFSET if head.version == v1.VERSION else crc_at])
        )
        if actual != head.crc:
            raise BitstreamError(
                f"bad CRC in packet seq {head.seq}: expected {head.crc:#010x}, got {actual:#010x}"
            )
        if head.version == v1.VERSION:
            if head.ptype == PacketType.HEADER and data[14:16] != b"\xff\xff":
                layer = int.from_bytes(data[14:16], "big")
                raise BitstreamError(f"header packet must have layer {v1.HEADER_LAYER:#06x}, got {layer}")
            if head.ptype == PacketType.UNIT and head.unit == v1.HEADER_LAYER:
                raise BitstreamError(
                    f"layer packet cannot use layer {v1.HEADER_LAYER:#06x} (reserved for the header)"
                )
        return cls(
            PacketType(head.ptype), head.stream_id, head.seq, head.unit, payload, head.level, head.version
        )

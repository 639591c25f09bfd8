"""The ``.spnr`` file (docs/FORMAT.md, "File"): packets back to back, split and checked here.

A v2 file is its packets back to back, the header packet first; each packet carries its own length.
A v1 file prefixes every packet with a u32 record length. The first byte tells them apart: 0x53 (a
packet's magic) for v2, 0x00 or 0x01 (the top byte of a record length of at most 16 MiB) for v1.

Strict reading raises on the first problem. Lenient reading keeps every packet that arrived whole and
says where the others were: after a damaged v2 packet it first tries the position its length field
points to, then scans for the next position where a packet of the same stream parses with a valid CRC.
The scan is bounded: it looks no further than one largest packet past the damage (no packet can be
longer, so the next one starts within that window) and checks at most ``MAX_RESYNC_CRC_BYTES`` of
candidates in all, so hostile bytes cannot make a reader work without end.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from codec.errors import BitstreamError
from codec.packets import MAGIC, MAX_HEAD_LENGTH, MAX_PAYLOAD, VERSION, Packet, PacketType
from codec.v1 import packets as v1

RECORD_PREFIX = struct.Struct(">I")
"""v1: each packet's length before it."""
MAX_PACKET = MAX_HEAD_LENGTH + MAX_PAYLOAD
MAX_RESYNC_CRC_BYTES = 64 * 2**20
"""Most bytes a lenient reader checks CRCs over while looking for packets after damage."""


@dataclass
class FileReadResult:
    header_packet: Packet
    packets: list[Packet]
    """Every other intact packet, in file order."""
    damaged: list[str] = field(default_factory=list)
    """One human-readable line per damaged or unreadable stretch (lenient mode)."""

    @property
    def version(self) -> int:
        return self.header_packet.version


def frame_packets(packets: Iterable[Packet]) -> bytes:
    """A ``.spnr`` file body: v2 packets back to back, v1 packets each after its u32 length."""
    out = bytearray()
    for p in packets:
        data = p.to_bytes()
        if p.version == v1.VERSION:
            out += RECORD_PREFIX.pack(len(data))
        out += data
    return bytes(out)


def read_stream(data: bytes, strict: bool = True) -> FileReadResult:
    """Split a ``.spnr`` file (either version) into packets; lenient mode skips damage and says where."""
    data = bytes(data)
    if not data:
        raise BitstreamError("file is empty: expected a header packet")
    if data[0] == MAGIC:
        return _read_v2(data, strict)
    if data[0] in (0, 1):
        return _read_v1(data, strict)
    raise BitstreamError(
        f"not a spinr file: first byte {data[0]:#04x} (a v2 file starts with {MAGIC:#04x}, a v1 file with 0x00)"
    )


# -- version 2 ------------------------------------------------------------------------------------


def _packet_at(data: bytes, pos: int) -> tuple[Packet, int]:
    """The packet at ``pos`` and its size."""
    head = Packet.peek(data, pos)
    if head.version != VERSION:
        raise BitstreamError(f"a version {head.version} packet in a version {VERSION} file")
    if head.length > MAX_PAYLOAD:
        raise BitstreamError(f"packet payload length {head.length} exceeds MAX_PAYLOAD {MAX_PAYLOAD}")
    if pos + head.size > len(data):
        raise BitstreamError(
            f"packet truncated: it needs {head.size} bytes, the file has {len(data) - pos} left"
        )
    return Packet.parse(data[pos : pos + head.size]), head.size


class _Resync:
    """Finds the next intact packet of stream ``sid`` after damage, within the bounds above."""

    def __init__(self, data: bytes, sid: int) -> None:
        self.data, self.sid, self.budget = data, sid, MAX_RESYNC_CRC_BYTES
        tail = sid.to_bytes(2, "big")
        self.patterns = [
            bytes([MAGIC, VERSION << 4 | t]) + tail for t in (PacketType.UNIT, PacketType.REFINEMENT)
        ]

    def _try(self, pos: int) -> Packet | None:
        try:
            head = Packet.peek(self.data, pos)
        except BitstreamError:
            return None
        if head.version != VERSION or head.length > min(MAX_PAYLOAD, len(self.data) - pos):
            return None
        self.budget -= head.size
        try:
            return _packet_at(self.data, pos)[0]
        except BitstreamError:
            return None

    def next(self, start: int, hint: int | None) -> int | None:
        """Offset of the next intact packet after damage at ``start``; ``hint`` is where the damaged
        packet's own length says the next one begins."""
        if hint is not None and start < hint < len(self.data) and self._try(hint) is not None:
            return hint
        end = min(len(self.data), start + MAX_PACKET)
        pos = start + 1
        while pos < end and self.budget > 0:
            hits = [h for h in (self.data.find(p, pos, end + 3) for p in self.patterns) if h >= 0]
            if not hits:
                return None
            pos = min(hits)
            if self._try(pos) is not None:
                return pos
            pos += 1
        return None


def _read_v2(data: bytes, strict: bool) -> FileReadResult:
    try:
        header, size = _packet_at(data, 0)
    except BitstreamError as exc:
        raise BitstreamError(f"header packet (at offset 0) is damaged: {exc}") from None
    if header.ptype != PacketType.HEADER:
        raise BitstreamError("file does not start with a header packet")
    result = FileReadResult(header, [])
    resync = _Resync(data, header.stream_id)
    pos, n = size, 1
    while pos < len(data):
        try:
            packet, size = _packet_at(data, pos)
            if packet.stream_id != header.stream_id:
                raise BitstreamError(
                    f"packet of stream {packet.stream_id:#x} in a file of stream {header.stream_id:#x}"
                )
            if packet.ptype == PacketType.HEADER:
                raise BitstreamError("a second header packet")
        except BitstreamError as exc:
            where = f"packet {n} at offset {pos}"
            if strict:
                raise BitstreamError(f"{where}: {exc}") from None
            result.damaged.append(f"{where}: {exc}")
            declared = _declared_end(data, pos)
            found = resync.next(pos, declared)
            if found is None:
                cut_short = declared is None and len(data) - pos <= MAX_HEAD_LENGTH
                if not cut_short and (declared is None or declared < len(data)):  # more than one packet lost
                    result.damaged.append(
                        f"no intact packet of this stream found after offset {pos} within the search bounds:"
                        f" the file's last {len(data) - pos} bytes are skipped"
                    )
                break
            pos, n = found, n + 1
            continue
        result.packets.append(packet)
        pos, n = pos + size, n + 1
    return result


def _declared_end(data: bytes, pos: int) -> int | None:
    try:
        return pos + Packet.peek(data, pos).size
    except BitstreamError:
        return None


# -- version 1 ------------------------------------------------------------------------------------


def _records(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(record number, offset, packet bytes); raises on broken framing in any mode."""
    offset, n = 0, 0
    while offset < len(data):
        if len(data) - offset < RECORD_PREFIX.size:
            raise BitstreamError(
                f"file truncated: record {n} at offset {offset} needs a 4-byte length, got {len(data) - offset}"
            )
        (length,) = RECORD_PREFIX.unpack_from(data, offset)
        start = offset + RECORD_PREFIX.size
        if not v1.HEADER_LENGTH <= length <= v1.HEADER_LENGTH + MAX_PAYLOAD:
            raise BitstreamError(
                f"record {n} at offset {offset} has length {length}, "
                f"outside {v1.HEADER_LENGTH}..{v1.HEADER_LENGTH + MAX_PAYLOAD}"
            )
        # Compare with the packet's own length field before checking for truncation, so that a
        # corrupted prefix is reported as such and not as a short file.
        if len(data) - start >= v1.HEADER_LENGTH:
            declared = struct.unpack_from(">I", data, start + 16)[0]
            if declared + v1.HEADER_LENGTH != length:
                raise BitstreamError(
                    f"record {n} at offset {offset} has length {length} but its packet says "
                    f"{declared + v1.HEADER_LENGTH}"
                )
        if start + length > len(data):
            raise BitstreamError(
                f"file truncated: record {n} at offset {offset} needs {length} bytes, got {len(data) - start}"
            )
        yield n, offset, data[start : start + length]
        offset, n = start + length, n + 1


def _read_v1(data: bytes, strict: bool) -> FileReadResult:
    header: Packet | None = None
    packets: list[Packet] = []
    damaged: list[str] = []
    for n, offset, record in _records(data):
        if header is None:
            try:
                header = Packet.parse(record)
            except BitstreamError as exc:
                raise BitstreamError(f"header packet (record 0) is damaged: {exc}") from None
            if header.ptype != PacketType.HEADER or header.version != v1.VERSION:
                raise BitstreamError("file does not start with a v1 header packet")
            continue
        try:
            packet = Packet.parse(record)
            if packet.version != v1.VERSION:
                raise BitstreamError(f"a version {packet.version} packet in a version 1 file")
        except BitstreamError as exc:
            if strict:
                raise BitstreamError(f"record {n} at offset {offset}: {exc}") from None
            damaged.append(f"record {n} at offset {offset}: {exc}")
            continue
        if packet.ptype == PacketType.HEADER:
            raise BitstreamError(f"record {n} at offset {offset} is a second header packet")
        packets.append(packet)
    assert header is not None  # data is non-empty, so there was a record 0 or _records raised
    return FileReadResult(header, packets, damaged)

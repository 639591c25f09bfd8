"""Layer payloads, the packets that carry a stream, and the ``.spnr`` file (docs/FORMAT.md).

The header (:mod:`codec.header`) carries everything a decoder needs to rebuild the network's shape, so
every layer packet is checked against it tensor by tensor before a single code is unpacked.
"""

from __future__ import annotations

import os
import secrets
import struct
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codec.errors import BitstreamError
from codec.header import StreamHeader, UnitSpec, fields_of, int_in
from codec.packets import HEADER_LAYER, HEADER_LENGTH, MAX_PAYLOAD, Packet, PacketType
from codec.payload import decode_payload, encode_payload
from codec.quant import QuantizedTensor

__all__ = [
    "MAX_FILE_BYTES",
    "Bitstream",
    "FileReadResult",
    "LayerUnit",
    "StreamHeader",
    "UnitSpec",
    "frame_packets",
    "load_bitstream",
    "make_header_packet",
    "make_layer_packet",
    "new_stream_id",
    "parse_header",
    "parse_layer",
    "read_file",
    "read_stream",
    "write_file",
]

MAX_FILE_BYTES = 256 * 2**20
RECORD_PREFIX = struct.Struct(">I")


@dataclass
class LayerUnit:
    index: int
    tensors: list[QuantizedTensor]

    def to_payload(self) -> dict[str, Any]:
        return {"unit": self.index, "tensors": [t.to_dict() for t in self.tensors]}

    @classmethod
    def from_payload(cls, d: Any, header: StreamHeader) -> LayerUnit:
        d = fields_of(d, {"unit", "tensors"}, "layer payload")
        index = int_in(d["unit"], 0, header.num_units - 1, "layer payload unit index")
        spec = header.units[index]
        tensors = d["tensors"]
        if not isinstance(tensors, list) or len(tensors) != len(spec.tensors):
            count = len(tensors) if isinstance(tensors, list) else type(tensors).__name__
            raise BitstreamError(
                f"unit {index} ({spec.name}) must carry {len(spec.tensors)} tensors as the header says, got {count}"
            )
        return cls(
            index,
            [QuantizedTensor.from_dict(t, n, s) for t, (n, s) in zip(tensors, spec.tensors, strict=True)],
        )


def new_stream_id() -> int:
    """A random nonzero u32."""
    return secrets.randbelow(0xFFFFFFFF) + 1


def make_header_packet(header: StreamHeader, stream_id: int) -> Packet:
    data = encode_payload(header.to_payload())
    StreamHeader.from_payload(decode_payload(data))  # never send a header that a receiver would reject
    return Packet(PacketType.HEADER, stream_id, 0, HEADER_LAYER, data)


def make_layer_packet(unit: LayerUnit, stream_id: int) -> Packet:
    if not 0 <= unit.index < HEADER_LAYER - 1:  # seq = index + 1 must fit a u16
        raise BitstreamError(f"unit index {unit.index} is out of range 0..{HEADER_LAYER - 2}")
    payload = encode_payload(unit.to_payload())
    if len(payload) > MAX_PAYLOAD:
        raise BitstreamError(
            f"unit {unit.index} payload of {len(payload)} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}"
        )
    return Packet(PacketType.LAYER, stream_id, unit.index + 1, unit.index, payload)


def parse_header(packet: Packet) -> StreamHeader:
    if packet.ptype != PacketType.HEADER:
        raise BitstreamError(f"expected a header packet, got a {packet.ptype.name.lower()} packet")
    return StreamHeader.from_payload(decode_payload(packet.payload))


def parse_layer(packet: Packet, header: StreamHeader) -> LayerUnit:
    if packet.ptype != PacketType.LAYER:
        raise BitstreamError(f"expected a layer packet, got a {packet.ptype.name.lower()} packet")
    if packet.layer >= header.num_units:
        raise BitstreamError(
            f"layer packet for unit {packet.layer}, but the header has {header.num_units} units"
        )
    unit = LayerUnit.from_payload(decode_payload(packet.payload), header)
    if unit.index != packet.layer:
        raise BitstreamError(f"layer payload is unit {unit.index} but its packet says layer {packet.layer}")
    return unit


@dataclass
class Bitstream:
    header: StreamHeader
    units: dict[int, LayerUnit]
    stream_id: int

    def packets(self) -> list[Packet]:
        """Header packet (seq 0), then one layer packet per unit present, in index order."""
        out = [make_header_packet(self.header, self.stream_id)]
        for index in sorted(self.units):
            unit = self.units[index]
            if unit.index != index:
                raise BitstreamError(f"unit stored under key {index} has index {unit.index}")
            out.append(make_layer_packet(unit, self.stream_id))
        return out

    def to_bytes(self) -> bytes:
        return frame_packets(self.packets())

    def missing(self) -> list[int]:
        return [i for i in range(self.header.num_units) if i not in self.units]

    @classmethod
    def from_packets(cls, packets: Iterable[Packet]) -> Bitstream:
        """Packets in any order; exactly one header; every packet of the header's stream."""
        packets = list(packets)
        headers = [p for p in packets if p.ptype == PacketType.HEADER]
        if not headers:
            raise BitstreamError("no header packet among the packets")
        if any(h.payload != headers[0].payload or h.stream_id != headers[0].stream_id for h in headers):
            raise BitstreamError("packets hold more than one distinct header packet")
        bs, _ = _assemble(headers[0], [p for p in packets if p.ptype == PacketType.LAYER], strict=True)
        return bs


def _assemble(
    header_packet: Packet, layer_packets: list[Packet], strict: bool
) -> tuple[Bitstream, list[str]]:
    """Parse the layer packets against the header; lenient mode records bad ones as damaged."""
    header = parse_header(header_packet)
    sid = header_packet.stream_id
    units: dict[int, LayerUnit] = {}
    payloads: dict[int, bytes] = {}
    damaged: list[str] = []
    for p in layer_packets:
        if p.stream_id != sid:
            raise BitstreamError(f"packet seq {p.seq} is of stream {p.stream_id:#010x}, not {sid:#010x}")
        if p.layer in payloads:
            if p.payload != payloads[p.layer]:
                raise BitstreamError(f"two different packets for unit {p.layer}")
            continue
        try:
            units[p.layer] = parse_layer(p, header)
        except BitstreamError as exc:
            if strict:
                raise
            damaged.append(f"layer {p.layer} (packet seq {p.seq}): {exc}")
            continue
        payloads[p.layer] = p.payload
    return Bitstream(header, units, sid), damaged


def frame_packets(packets: Iterable[Packet]) -> bytes:
    """``.spnr`` file body: each packet prefixed by its length as a u32 big-endian."""
    out = bytearray()
    for p in packets:
        data = p.to_bytes()
        out += RECORD_PREFIX.pack(len(data)) + data
    return bytes(out)


@dataclass
class FileReadResult:
    header_packet: Packet
    layer_packets: list[Packet]
    damaged: list[str] = field(default_factory=list)
    """One human-readable reason per layer record skipped in lenient mode."""


def _records(data: bytes) -> Iterable[tuple[int, int, bytes]]:
    """(record number, offset, packet bytes); raises on broken framing in any mode."""
    offset, n = 0, 0
    while offset < len(data):
        if len(data) - offset < RECORD_PREFIX.size:
            raise BitstreamError(
                f"file truncated: record {n} at offset {offset} needs a 4-byte length, got {len(data) - offset}"
            )
        (length,) = RECORD_PREFIX.unpack_from(data, offset)
        start = offset + RECORD_PREFIX.size
        if not HEADER_LENGTH <= length <= HEADER_LENGTH + MAX_PAYLOAD:
            raise BitstreamError(
                f"record {n} at offset {offset} has length {length}, outside {HEADER_LENGTH}..{HEADER_LENGTH + MAX_PAYLOAD}"
            )
        # Compare with the packet's own length field before checking for truncation, so that a
        # corrupted prefix is reported as such and not as a short file.
        if len(data) - start >= HEADER_LENGTH:
            declared = Packet.peek(data, start).length
            if declared + HEADER_LENGTH != length:
                raise BitstreamError(
                    f"record {n} at offset {offset} has length {length} but its packet says {declared + HEADER_LENGTH}"
                )
        if start + length > len(data):
            raise BitstreamError(
                f"file truncated: record {n} at offset {offset} needs {length} bytes, got {len(data) - start}"
            )
        yield n, offset, data[start : start + length]
        offset, n = start + length, n + 1


def read_stream(data: bytes, strict: bool = True) -> FileReadResult:
    """Split a ``.spnr`` file into packets. Lenient mode skips layer records that fail to parse."""
    data = bytes(data)
    if not data:
        raise BitstreamError("file is empty: expected a header packet record")
    header_packet: Packet | None = None
    layers: list[Packet] = []
    damaged: list[str] = []
    for n, offset, record in _records(data):
        if header_packet is None:
            try:
                header_packet = Packet.parse(record)
            except BitstreamError as exc:
                raise BitstreamError(f"header packet (record 0) is damaged: {exc}") from None
            if header_packet.ptype != PacketType.HEADER:
                raise BitstreamError("file does not start with a header packet")
            continue
        try:
            packet = Packet.parse(record)
        except BitstreamError as exc:
            if strict:
                raise BitstreamError(f"record {n} at offset {offset}: {exc}") from None
            damaged.append(f"record {n} at offset {offset}: {exc}")
            continue
        if packet.ptype == PacketType.HEADER:
            raise BitstreamError(f"record {n} at offset {offset} is a second header packet")
        layers.append(packet)
    assert header_packet is not None  # data is non-empty, so there was a record 0 or _records raised
    return FileReadResult(header_packet, layers, damaged)


def load_bitstream(data: bytes, strict: bool = True) -> tuple[Bitstream, list[str]]:
    """Parse a ``.spnr`` file. Returns the bitstream and the damaged records (always [] when strict)."""
    result = read_stream(data, strict)
    bs, bad = _assemble(result.header_packet, result.layer_packets, strict)
    return bs, result.damaged + bad


def read_file(path: str | os.PathLike[str], strict: bool = True) -> tuple[Bitstream, list[str]]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise BitstreamError(f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise BitstreamError(f"file {os.fspath(path)!r} is larger than {MAX_FILE_BYTES} bytes")
    return load_bitstream(data, strict)


def write_file(path: str | os.PathLike[str], bitstream: Bitstream) -> None:
    """Write atomically: a reader sees the old file or the whole new one, never half of it."""
    target = Path(path)
    data = bitstream.to_bytes()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.chmod(fd, 0o644)  # mkstemp makes 0600; a stored image is not a secret
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

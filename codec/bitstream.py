"""A stream as packets: the header packet, one packet per unit, and the ``.spnr`` file (docs/FORMAT.md).

The header (:mod:`codec.header`) carries everything a decoder needs to rebuild the network, its units
derived from the arch, so every unit packet is checked against them before a single code is decoded.
Streams of either version are read; encoders build version 2, and a v1 stream that was read is sent
again as it came (its packets' payloads are kept).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from codec.budget import DEFAULT_BUDGET, DecodeBudget
from codec.errors import BitstreamError
from codec.files import FileReadResult, frame_packets, read_stream
from codec.header import StreamHeader, parse_header_payload, parse_v1_header_payload
from codec.packets import MAX_SEQ, MAX_STREAM_ID, Packet, PacketType
from codec.payload import Unit
from codec.refine import Refinement, packet_id
from codec.units import UnitSpec
from codec.v1.layer import V1Unit

__all__ = [
    "MAX_FILE_BYTES",
    "Bitstream",
    "FileReadResult",
    "StreamHeader",
    "Unit",
    "UnitSpec",
    "V1Unit",
    "frame_packets",
    "load_bitstream",
    "make_header_packet",
    "make_unit_packet",
    "new_stream_id",
    "parse_header",
    "parse_unit",
    "read_file",
    "read_stream",
    "Refinement",
    "make_refinement_packet",
    "parse_refinement",
    "units_bytes",
    "write_file",
]

MAX_FILE_BYTES = 256 * 2**20
AnyUnit = Unit | V1Unit


def new_stream_id() -> int:
    """A random nonzero u16 (a v2 stream id)."""
    return secrets.randbelow(MAX_STREAM_ID) + 1


def make_header_packet(header: StreamHeader, stream_id: int) -> Packet:
    payload = header.to_payload()
    if header.version != 1:
        parse_header_payload(payload)  # never send a header that a receiver would reject
    return Packet(PacketType.HEADER, stream_id, 0, None, payload, version=header.version)


def make_unit_packet(unit: AnyUnit, stream_id: int, version: int = 2) -> Packet:
    if not 0 <= unit.index < MAX_SEQ:  # seq = index + 1
        raise BitstreamError(f"unit index {unit.index} is out of range 0..{MAX_SEQ - 1}")
    return Packet(PacketType.UNIT, stream_id, unit.index + 1, unit.index, unit.payload, version=version)


def make_refinement_packet(ref: Refinement, stream_id: int, units: int) -> Packet:
    """Level ``ref.level`` of unit ``ref.index``: seq is its packet number plus one (codec/refine.py;
    a direct packet at level R is numbered as if it were level R + 1)."""
    seq = packet_id(ref.index, ref.level + (ref.direct is not None), units) + 1
    if seq > MAX_SEQ:
        raise BitstreamError(
            f"refinement {ref.level} of unit {ref.index} would be seq {seq}, beyond {MAX_SEQ}: too many levels"
        )
    return Packet(PacketType.REFINEMENT, stream_id, seq, ref.index, ref.payload, level=ref.level)


def units_bytes(units: Iterable[AnyUnit], version: int = 2) -> int:
    """Bytes the units' packets take on the wire (payloads, packet headers and CRCs): with the header
    packet, the whole file."""
    return sum(len(make_unit_packet(u, 1, version).to_bytes()) for u in units)


def parse_header(packet: Packet) -> StreamHeader:
    if packet.ptype != PacketType.HEADER:
        raise BitstreamError(f"expected a header packet, got a {packet.ptype.name.lower()} packet")
    if packet.version == 1:
        return parse_v1_header_payload(packet.payload)
    return parse_header_payload(packet.payload)


def parse_refinement(packet: Packet, header: StreamHeader) -> Refinement:
    """A refinement packet checked against the header (format 2, a unit it has)."""
    if packet.ptype != PacketType.REFINEMENT or packet.unit is None or packet.level is None:
        raise BitstreamError(f"expected a refinement packet, got a {packet.ptype.name.lower()} packet")
    if header.version != 2:
        raise BitstreamError(f"refinement packet seq {packet.seq} in a version {header.version} stream")
    if packet.unit >= header.num_units:
        raise BitstreamError(
            f"refinement packet for unit {packet.unit}, but the header has {header.num_units} units"
        )
    return Refinement.parse(packet.payload, header.units[packet.unit], packet.unit, packet.level)


def parse_unit(packet: Packet, header: StreamHeader) -> AnyUnit:
    """A unit packet checked against the header (its version, its unit's derived tensors)."""
    if packet.ptype != PacketType.UNIT or packet.unit is None:
        raise BitstreamError(f"expected a unit packet, got a {packet.ptype.name.lower()} packet")
    if packet.version != header.version:
        raise BitstreamError(
            f"unit packet seq {packet.seq} is version {packet.version}, its header version {header.version}"
        )
    if packet.unit >= header.num_units:
        raise BitstreamError(
            f"unit packet for unit {packet.unit}, but the header has {header.num_units} units"
        )
    spec = header.units[packet.unit]
    if packet.version == 1:
        return V1Unit.parse(packet.payload, spec, packet.unit, header.num_units)
    return Unit.parse(packet.payload, spec, packet.unit)


@dataclass
class Bitstream:
    header: StreamHeader
    units: dict[int, AnyUnit]
    """Level 0 of every unit present (the base of a refined stream)."""
    stream_id: int
    refinements: dict[tuple[int, int], Refinement] = field(default_factory=dict)
    """(unit, level) -> the refinement packet's content (docs/FORMAT.md, "Refinement packets")."""
    direct: dict[int, Refinement] = field(default_factory=dict)
    """unit -> a direct refinement packet that arrived (senders make them; encoders do not write them)."""

    @property
    def version(self) -> int:
        return self.header.version

    def packets(self) -> list[Packet]:
        """Header packet (seq 0), one unit packet per unit present in index order, then the
        refinements level by level (each level in unit order): packet-number order."""
        out = [make_header_packet(self.header, self.stream_id)]
        for index in sorted(self.units):
            unit = self.units[index]
            if unit.index != index:
                raise BitstreamError(f"unit stored under key {index} has index {unit.index}")
            out.append(make_unit_packet(unit, self.stream_id, self.version))
        n = self.header.num_units
        for key in sorted(self.refinements, key=lambda k: (k[1], k[0])):
            out.append(make_refinement_packet(self.refinements[key], self.stream_id, n))
        for index in sorted(self.direct):
            out.append(make_refinement_packet(self.direct[index], self.stream_id, n))
        return out

    @property
    def levels(self) -> int:
        """Refinement levels every unit has (0 for a stream without refinements)."""
        n = self.header.num_units
        level = 0
        while n and all((u, level + 1) in self.refinements for u in range(n)):
            level += 1
        return level

    def to_bytes(self) -> bytes:
        return frame_packets(self.packets())

    def missing(self) -> list[int]:
        return [i for i in range(self.header.num_units) if i not in self.units]

    @classmethod
    def from_packets(cls, packets: Iterable[Packet], budget: DecodeBudget = DEFAULT_BUDGET) -> Bitstream:
        """Packets in any order; exactly one header; every packet of the header's stream."""
        packets = list(packets)
        headers = [p for p in packets if p.ptype == PacketType.HEADER]
        if not headers:
            raise BitstreamError("no header packet among the packets")
        if any(h != headers[0] for h in headers):
            raise BitstreamError("packets hold more than one distinct header packet")
        bs, _ = _assemble(headers[0], [p for p in packets if p.ptype != PacketType.HEADER], True, budget)
        return bs


def _assemble(
    header_packet: Packet, packets: list[Packet], strict: bool, budget: DecodeBudget
) -> tuple[Bitstream, list[str]]:
    """Parse the unit packets against the header; lenient mode records bad ones as damaged."""
    header = parse_header(header_packet)
    budget.check_params(sum(sum(u.sizes) for u in header.units), f"this {header.model} stream")
    sid = header_packet.stream_id
    units: dict[int, AnyUnit] = {}
    refinements: dict[tuple[int, int], Refinement] = {}
    direct: dict[int, Refinement] = {}
    damaged: list[str] = []
    for p in packets:
        if p.stream_id != sid:
            raise BitstreamError(f"packet seq {p.seq} is of stream {p.stream_id:#x}, not {sid:#x}")
        if p.ptype == PacketType.REFINEMENT:
            try:
                ref = parse_refinement(p, header)
                known_ref = direct.get(ref.index) if ref.direct else refinements.get((ref.index, ref.level))
                if known_ref is not None and known_ref != ref:
                    raise BitstreamError(
                        f"two different packets for refinement {ref.level} of unit {ref.index}"
                    )
            except BitstreamError as exc:
                if strict:
                    raise
                damaged.append(f"refinement {p.level} of unit {p.unit} (packet seq {p.seq}): {exc}")
                continue
            if ref.direct is not None:
                direct[ref.index] = ref
            else:
                refinements[(ref.index, ref.level)] = ref
            continue
        known = units.get(p.unit) if p.unit is not None else None
        if known is not None and p.ptype == PacketType.UNIT:
            if p.payload != known.payload:
                raise BitstreamError(f"two different packets for unit {p.unit}")
            continue
        try:
            unit = parse_unit(p, header)
        except BitstreamError as exc:
            if strict:
                raise
            damaged.append(f"unit {p.unit} (packet seq {p.seq}): {exc}")
            continue
        units[unit.index] = unit
    return Bitstream(header, units, sid, refinements, direct), damaged


def load_bitstream(
    data: bytes, strict: bool = True, budget: DecodeBudget = DEFAULT_BUDGET
) -> tuple[Bitstream, list[str]]:
    """Parse a ``.spnr`` file of either version. Returns the bitstream and what was damaged (always
    [] when strict); ``Bitstream.missing()`` lists the units that did not arrive whole. A header
    whose units hold more weights than ``budget.max_params`` is refused before any unit is read."""
    result = read_stream(data, strict)
    bs, bad = _assemble(result.header_packet, result.packets, strict, budget)
    return bs, result.damaged + bad


def read_file(
    path: str | os.PathLike[str], strict: bool = True, budget: DecodeBudget = DEFAULT_BUDGET
) -> tuple[Bitstream, list[str]]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise BitstreamError(f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise BitstreamError(f"file {os.fspath(path)!r} is larger than {MAX_FILE_BYTES} bytes")
    return load_bitstream(data, strict, budget)


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

"""Packets of both versions: the v2 layout byte for byte, every truncation, every bit flip, crafted
fields, and v1 packets still parsing (docs/FORMAT.md, "Packet")."""

from __future__ import annotations

import struct
import zlib

import pytest
from _bitstreams import raw_packet
from _v1 import raw_v1_packet

from codec.errors import BitstreamError
from codec.packets import (
    MAGIC,
    MAX_HEAD_LENGTH,
    MAX_PAYLOAD,
    MIN_HEAD_LENGTH,
    VERSION,
    Packet,
    PacketType,
)
from codec.v1.packets import HEADER_LAYER as V1_HEADER_LAYER
from codec.v1.packets import HEADER_LENGTH as V1_HEADER_LENGTH

PAYLOAD = bytes(range(40))


def test_layout_constants() -> None:
    assert MAGIC == 0x53 and VERSION == 2 and MAX_PAYLOAD == 16 * 2**20
    assert MIN_HEAD_LENGTH == 10 and MAX_HEAD_LENGTH == 20 and V1_HEADER_LENGTH == 24


def test_known_bytes_unit_packet() -> None:
    """FORMAT.md's table, byte for byte: 12 bytes in front of a 200-byte payload of unit 4."""
    p = Packet(PacketType.UNIT, 0x0102, 5, 4, bytes(200))
    data = p.to_bytes()
    head = bytes([0x53, 0x21, 0x01, 0x02, 0x05, 0x04, 0xC8, 0x01])  # length 200 = varint c8 01
    assert data[:8] == head
    assert data[8:12] == struct.pack(">I", zlib.crc32(head + bytes(200)))
    assert data[12:] == bytes(200) and len(data) == 212 and p.overhead == 12
    assert p.crc == zlib.crc32(head + bytes(200))


def test_known_bytes_header_and_refinement() -> None:
    header = Packet(PacketType.HEADER, 0xABCD, 0, None, b"xyz").to_bytes()
    assert header[:6] == bytes([0x53, 0x20, 0xAB, 0xCD, 0x00, 0x03]) and len(header) == 10 + 3
    ref = Packet(PacketType.REFINEMENT, 7, 300, 2, b"", level=1).to_bytes()
    assert ref[:9] == bytes([0x53, 0x22, 0x00, 0x07, 0xAC, 0x02, 0x02, 0x01, 0x00])


@pytest.mark.parametrize(
    "packet",
    [
        Packet(PacketType.HEADER, 0xFFFF, 0, None, PAYLOAD),
        Packet(PacketType.UNIT, 1, 0xFFFF, 0, PAYLOAD),
        Packet(PacketType.UNIT, 7, 3, 0xFFFF, b""),
        Packet(PacketType.REFINEMENT, 9, 12, 3, PAYLOAD, level=255),
        Packet(PacketType.UNIT, 9, 1, 0, bytes(70_000)),
        Packet(PacketType.HEADER, 0xFFFFFFFF, 0, None, PAYLOAD, version=1),
        Packet(PacketType.UNIT, 1, 0xFFFF, 0xFFFE, PAYLOAD, version=1),
    ],
)
def test_round_trip_is_bit_exact(packet: Packet) -> None:
    data = bytes(packet)
    parsed = Packet.parse(data)
    assert parsed == packet
    assert bytes(parsed) == data == packet.to_bytes()
    assert isinstance(parsed.ptype, PacketType)
    head = Packet.peek(data)
    assert head.size == len(data) and head.length == len(packet.payload) and head.unit == packet.unit


def test_parse_accepts_bytearray_and_memoryview() -> None:
    data = Packet(PacketType.UNIT, 9, 1, 0, PAYLOAD).to_bytes()
    assert Packet.parse(bytearray(data)) == Packet.parse(memoryview(data)) == Packet.parse(data)


@pytest.mark.parametrize("ptype", [PacketType.HEADER, PacketType.UNIT, PacketType.REFINEMENT])
def test_every_truncation_length(ptype: PacketType) -> None:
    unit, level, seq = (None, None, 0) if ptype == PacketType.HEADER else (300, 2 if ptype == 2 else None, 1)
    packet = Packet(ptype, 0x5EED, seq, unit, PAYLOAD, level)
    data = packet.to_bytes()
    # (field, where the error says it is missing) for a cut at each header byte: fixed-size fields are
    # missing at their start, varints at the byte that is not there.
    fields = [("stream id", 2), ("stream id", 2), ("seq", 4)]
    fields += [("unit", 5), ("unit", 6)] if unit is not None else []
    fields += [("level", 7)] if level is not None else []
    end = 2 + len(fields)
    fields += [("payload length", end)] + [("crc", end + 1)] * 4
    head = packet.overhead
    assert len(fields) == head - 2
    for n in range(len(data)):
        if n < 2:
            msg = f"packet truncated: header needs at least 2 bytes, got {n}$"
        elif n < head:
            name, at = fields[n - 2]
            msg = f"packet is truncated: {name} missing at byte {at}$"
        else:
            msg = f"packet truncated: payload needs {len(PAYLOAD)} bytes, got {n - head}$"
        with pytest.raises(BitstreamError, match=msg):
            Packet.parse(data[:n])


def test_trailing_bytes() -> None:
    data = Packet(PacketType.UNIT, 9, 1, 0, b"xy").to_bytes()
    with pytest.raises(BitstreamError, match="1 trailing bytes after its 2-byte payload"):
        Packet.parse(data + b"\0")


@pytest.mark.parametrize("version", [1, 2])
def test_every_single_bit_flip_is_detected(version: int) -> None:
    data = Packet(PacketType.UNIT, 0xABCD, 2, 1, PAYLOAD, version=version).to_bytes()
    for bit in range(len(data) * 8):
        bad = bytearray(data)
        bad[bit // 8] ^= 0x80 >> (bit % 8)
        with pytest.raises(BitstreamError):
            Packet.parse(bytes(bad))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"magic": 0x54}, r"bad magic 0x54: expected 0x53 \('S'\)"),
        ({"version": 3}, r"unsupported packet version 3: expected 2 \(or a v1 packet\)"),
        ({"version": 0}, "unsupported packet version 0"),
        ({"ptype": 3}, r"unknown packet type 3: expected 0 \(header\), 1 \(unit\) or 2 \(refinement\)"),
        ({"ptype": 15}, "unknown packet type 15"),
        ({"length": MAX_PAYLOAD + 1}, f"payload length {MAX_PAYLOAD + 1} exceeds MAX_PAYLOAD"),
        ({"length": 2**34}, "payload length 17179869184 exceeds MAX_PAYLOAD"),
        ({"length": 10**6}, "packet truncated: payload needs 1000000 bytes, got 5$"),
        ({"stream_id": 0}, "packet stream_id 0 is out of range 1..65535"),
        ({"seq": 0}, "seq 0 is the header packet's"),
        ({"seq": 2**16}, "packet seq 65536 is out of range 0..65535"),
        ({"unit": 2**16}, "packet unit 65536 is out of range 0..65535"),
        ({"ptype": 0, "unit": None, "seq": 3}, "a header packet has seq 0, got 3"),
        ({"ptype": 2, "level": 0}, "packet level 0 is out of range 1..255"),
        ({"ptype": 2, "level": 256}, "packet level 256 is out of range 1..255"),
    ],
)
def test_bad_fields(fields: dict, match: str) -> None:
    """Every field a CRC-valid packet can hold wrong is refused by name."""
    with pytest.raises(BitstreamError, match=match):
        Packet.parse(raw_packet(b"hello", **fields))


def test_overlong_varint_is_refused() -> None:
    """Varints are minimal, so a CRC-valid packet has exactly one encoding."""
    good = raw_packet(b"hello", seq=1)
    head = good[:4] + b"\x81\x00" + good[5:-9]  # seq 1 as an overlong 2-byte varint
    bad = head + struct.pack(">I", zlib.crc32(b"hello", zlib.crc32(head))) + b"hello"
    with pytest.raises(BitstreamError, match="seq at byte 5 is an overlong varint"):
        Packet.parse(bad)


def test_bad_crc_names_seq_and_both_values() -> None:
    data = bytearray(Packet(PacketType.UNIT, 9, 3, 2, b"payload").to_bytes())
    stored = struct.unpack_from(">I", data, 7)[0]
    data[-1] ^= 1
    actual = zlib.crc32(bytes(data[:7]) + bytes(data[11:]))
    with pytest.raises(
        BitstreamError, match=f"bad CRC in packet seq 3: expected {stored:#010x}, got {actual:#010x}"
    ):
        Packet.parse(bytes(data))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stream_id": 0}, "stream_id 0 is out of range 1..65535"),
        ({"stream_id": 2**16}, "stream_id 65536 is out of range"),
        ({"seq": 2**16}, "seq 65536 is out of range 0..65535"),
        ({"unit": -1}, "unit -1 is out of range 0..65535"),
        ({"unit": None}, "unit None is out of range"),
        ({"seq": True}, "seq True is out of range"),
        ({"ptype": 5}, "unknown packet type 5"),
        ({"payload": "text"}, "payload must be bytes, got str"),
        ({"level": 1}, "only a refinement packet has a level, got 1"),
        ({"ptype": PacketType.REFINEMENT}, "level None is out of range 1..255"),
        ({"ptype": PacketType.HEADER, "seq": 0}, "a header packet has no unit, got 0"),
        ({"version": 3}, "packet version 3 is not 1 or 2"),
        ({"version": 1, "ptype": PacketType.REFINEMENT, "level": 1}, "version 1 has no refinement packets"),
        ({"version": 1, "unit": 0xFFFF}, "unit 65535 is out of range 0..65534"),
    ],
)
def test_constructor_validates(kwargs: dict, match: str) -> None:
    fields = {"ptype": PacketType.UNIT, "stream_id": 1, "seq": 1, "unit": 0, "payload": b""} | kwargs
    with pytest.raises(BitstreamError, match=match):
        Packet(**fields)


def test_constructor_rejects_oversized_payload() -> None:
    with pytest.raises(BitstreamError, match=f"payload of {MAX_PAYLOAD + 1} bytes exceeds MAX_PAYLOAD"):
        Packet(PacketType.UNIT, 1, 1, 0, bytes(MAX_PAYLOAD + 1))


def test_ptype_int_is_coerced() -> None:
    p = Packet(1, 1, 1, 0, bytearray(b"ab"))  # type: ignore[arg-type]
    assert p.ptype is PacketType.UNIT and p.payload == b"ab" and isinstance(p.payload, bytes)


def test_peek_reads_the_header_without_checking_the_crc() -> None:
    data = bytearray(Packet(PacketType.UNIT, 0x0102, 5, 4, b"abc").to_bytes())
    data[-1] ^= 0xFF  # a bad CRC: parse refuses it, peek does not look
    with pytest.raises(BitstreamError, match="bad CRC"):
        Packet.parse(data)
    head = Packet.peek(data)
    assert (head.version, head.ptype, head.stream_id, head.seq, head.unit, head.length) == (
        2,
        1,
        0x0102,
        5,
        4,
        3,
    )
    assert head.level is None and head.head_length == 11 and head.size == 14
    header = Packet(PacketType.HEADER, 1, 0, None, PAYLOAD).to_bytes()
    assert Packet.peek(b"xx" + header, offset=2).unit is None
    with pytest.raises(BitstreamError, match="header needs at least 2 bytes, got 1"):
        Packet.peek(header[:1])


def test_raw_packet_helper_matches_packet() -> None:
    """The corruption tests craft packets with this helper; it must agree with Packet exactly."""
    assert (
        raw_packet(b"payload", unit=2, seq=3) == Packet(PacketType.UNIT, 0x5EED, 3, 2, b"payload").to_bytes()
    )
    assert (
        raw_packet(b"p", ptype=0, unit=None, seq=0)
        == Packet(PacketType.HEADER, 0x5EED, 0, None, b"p").to_bytes()
    )


# -- version 1 ----------------------------------------------------------------------------------


def test_v1_known_bytes_still_parse() -> None:
    """A v1 packet (24 fixed bytes, "SPNR") parses to a version-1 Packet and is written back the same."""
    head = bytes.fromhex("53504e5201010001010203040005000400000003")
    data = head + struct.pack(">I", zlib.crc32(head + b"abc")) + b"abc"
    p = Packet.parse(data)
    assert (p.version, p.ptype, p.stream_id, p.seq, p.unit, p.payload) == (
        1,
        PacketType.UNIT,
        0x01020304,
        5,
        4,
        b"abc",
    )
    assert p.to_bytes() == data and p.overhead == 24
    assert Packet.peek(data).head_length == V1_HEADER_LENGTH


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"magic": b"SPNX"}, r"bad magic b'SPNX': expected b'SPNR'"),
        ({"version": 2}, "unsupported packet version 2: expected 1"),
        ({"ptype": 2}, r"unknown packet type 2: expected 0 \(header\) or 1 \(layer\)"),
        ({"flags": 3}, "packet flags 0x0003 not supported"),
        ({"flags": 0}, "packet flags 0x0000 not supported"),
        ({"length": MAX_PAYLOAD + 1}, f"payload length {MAX_PAYLOAD + 1} exceeds MAX_PAYLOAD"),
        ({"length": 10**6}, "packet truncated: payload needs 1000000 bytes, got 5$"),
        ({"ptype": 0, "layer": 3}, "header packet must have layer 0xffff, got 3"),
        ({"ptype": 1, "layer": V1_HEADER_LAYER}, "layer packet cannot use layer 0xffff"),
    ],
)
def test_v1_bad_fields(fields: dict, match: str) -> None:
    with pytest.raises(BitstreamError, match=match):
        Packet.parse(raw_v1_packet(b"hello", **fields))


def test_v1_every_truncation_length() -> None:
    data = raw_v1_packet(PAYLOAD, layer=0, seq=1)
    for n in range(2, len(data)):
        msg = (
            f"header needs {V1_HEADER_LENGTH} bytes, got {n}$"
            if n < V1_HEADER_LENGTH
            else f"payload needs {len(PAYLOAD)} bytes, got {n - V1_HEADER_LENGTH}$"
        )
        with pytest.raises(BitstreamError, match=msg):
            Packet.parse(data[:n])

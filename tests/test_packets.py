from __future__ import annotations

import struct
import zlib

import pytest
from _bitstreams import raw_packet

from codec.errors import BitstreamError
from codec.packets import (
    FLAG_ZSTD,
    HEADER_FORMAT,
    HEADER_LAYER,
    HEADER_LENGTH,
    MAGIC,
    MAX_PAYLOAD,
    Packet,
    PacketType,
)
from codec.payload import encode_payload

PAYLOAD = encode_payload({"unit": 4, "tensors": []})


def test_layout_constants() -> None:
    assert struct.calcsize(HEADER_FORMAT) == HEADER_LENGTH == 24
    assert MAGIC == b"SPNR" and HEADER_LAYER == 0xFFFF and FLAG_ZSTD == 1 and MAX_PAYLOAD == 16 * 2**20


def test_known_bytes() -> None:
    """The wire layout, byte for byte, of FORMAT.md's table."""
    p = Packet(PacketType.LAYER, 0x01020304, 5, 4, b"abc")
    data = p.to_bytes()
    head = bytes.fromhex("53504e5201010001010203040005000400000003")
    assert data[:20] == head
    assert data[20:24] == struct.pack(">I", zlib.crc32(head + b"abc"))
    assert data[24:] == b"abc" and len(data) == 27
    assert p.crc == zlib.crc32(head + b"abc")


@pytest.mark.parametrize(
    "packet",
    [
        Packet(PacketType.HEADER, 0xFFFFFFFF, 0, HEADER_LAYER, PAYLOAD),
        Packet(PacketType.LAYER, 1, 0xFFFF, 0, PAYLOAD),
        Packet(PacketType.LAYER, 7, 3, 0xFFFE, b""),
    ],
)
def test_round_trip_is_bit_exact(packet: Packet) -> None:
    data = bytes(packet)
    parsed = Packet.parse(data)
    assert parsed == packet
    assert bytes(parsed) == data == packet.to_bytes()
    assert isinstance(parsed.ptype, PacketType)


def test_parse_accepts_bytearray_and_memoryview() -> None:
    data = Packet(PacketType.LAYER, 9, 1, 0, PAYLOAD).to_bytes()
    assert Packet.parse(bytearray(data)) == Packet.parse(memoryview(data)) == Packet.parse(data)


def test_every_truncation_length() -> None:
    data = Packet(PacketType.LAYER, 9, 1, 0, PAYLOAD).to_bytes()
    for n in range(len(data)):
        if n < HEADER_LENGTH:
            msg = f"packet truncated: header needs 24 bytes, got {n}$"
        else:
            msg = f"packet truncated: payload needs {len(PAYLOAD)} bytes, got {n - HEADER_LENGTH}$"
        with pytest.raises(BitstreamError, match=msg):
            Packet.parse(data[:n])


def test_trailing_bytes() -> None:
    data = Packet(PacketType.LAYER, 9, 1, 0, b"xy").to_bytes()
    with pytest.raises(BitstreamError, match="1 trailing bytes after its 2-byte payload"):
        Packet.parse(data + b"\0")


def test_every_single_bit_flip_is_detected() -> None:
    data = Packet(PacketType.LAYER, 0xABCDEF01, 2, 1, PAYLOAD).to_bytes()
    for bit in range(len(data) * 8):
        bad = bytearray(data)
        bad[bit // 8] ^= 0x80 >> (bit % 8)
        with pytest.raises(BitstreamError):
            Packet.parse(bytes(bad))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"magic": b"SPNX"}, r"bad magic b'SPNX': expected b'SPNR'"),
        ({"version": 2}, "unsupported packet version 2: expected 1"),
        ({"ptype": 2}, r"unknown packet type 2: expected 0 \(header\) or 1 \(layer\)"),
        ({"flags": 3}, "packet flags 0x0003 not supported"),
        ({"flags": 0}, "packet flags 0x0000 not supported"),
        ({"flags": 0x8001}, "packet flags 0x8001 not supported"),
        ({"length": MAX_PAYLOAD + 1}, f"payload length {MAX_PAYLOAD + 1} exceeds MAX_PAYLOAD"),
        ({"length": 0xFFFFFFFF}, "payload length 4294967295 exceeds MAX_PAYLOAD"),
        ({"length": 10**6}, "packet truncated: payload needs 1000000 bytes, got 5$"),
        ({"ptype": 0, "layer": 3}, "header packet must have layer 0xffff, got 3"),
        ({"ptype": 1, "layer": HEADER_LAYER}, "layer packet cannot use layer 0xffff"),
    ],
)
def test_bad_fields(fields: dict, match: str) -> None:
    with pytest.raises(BitstreamError, match=match):
        Packet.parse(raw_packet(b"hello", **fields))


def test_bad_crc_names_seq_and_both_values() -> None:
    data = bytearray(Packet(PacketType.LAYER, 9, 3, 2, b"payload").to_bytes())
    stored = struct.unpack_from(">I", data, 20)[0]
    data[-1] ^= 1
    actual = zlib.crc32(bytes(data[:20]) + bytes(data[24:]))
    with pytest.raises(
        BitstreamError, match=f"bad CRC in packet seq 3: expected {stored:#010x}, got {actual:#010x}"
    ):
        Packet.parse(bytes(data))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stream_id": -1}, "stream_id -1 is out of range 0..4294967295"),
        ({"stream_id": 2**32}, "stream_id 4294967296 is out of range"),
        ({"seq": 2**16}, "seq 65536 is out of range 0..65535"),
        ({"layer": -1}, "layer -1 is out of range 0..65535"),
        ({"seq": True}, "seq True is out of range"),
        ({"flags": 2}, "packet flags 0x0002 not supported"),
        ({"ptype": 5}, "unknown packet type 5"),
        ({"payload": "text"}, "payload must be bytes, got str"),
    ],
)
def test_constructor_validates(kwargs: dict, match: str) -> None:
    fields = {"ptype": PacketType.LAYER, "stream_id": 1, "seq": 1, "layer": 0, "payload": b""} | kwargs
    with pytest.raises(BitstreamError, match=match):
        Packet(**fields)


def test_constructor_rejects_oversized_payload() -> None:
    with pytest.raises(BitstreamError, match=f"payload of {MAX_PAYLOAD + 1} bytes exceeds MAX_PAYLOAD"):
        Packet(PacketType.LAYER, 1, 1, 0, bytes(MAX_PAYLOAD + 1))


def test_ptype_int_is_coerced() -> None:
    p = Packet(1, 1, 1, 0, bytearray(b"ab"))  # type: ignore[arg-type]
    assert p.ptype is PacketType.LAYER and p.payload == b"ab" and isinstance(p.payload, bytes)


def test_peek_reads_the_fixed_header_without_checking_it() -> None:
    data = bytearray(Packet(PacketType.LAYER, 0x01020304, 5, 4, b"abc").to_bytes())
    data[-1] ^= 0xFF  # a bad CRC: parse refuses it, peek does not look
    with pytest.raises(BitstreamError, match="bad CRC"):
        Packet.parse(data)
    head = Packet.peek(data)
    assert (head.ptype, head.stream_id, head.seq, head.layer, head.length) == (1, 0x01020304, 5, 4, 3)
    assert head.unit == 4 and head.magic == MAGIC and head.flags == FLAG_ZSTD
    header = Packet(PacketType.HEADER, 1, 0, HEADER_LAYER, PAYLOAD).to_bytes()
    assert Packet.peek(b"xx" + header, offset=2).unit is None
    for n in range(HEADER_LENGTH):
        with pytest.raises(BitstreamError, match=f"header needs {HEADER_LENGTH} bytes, got {n}$"):
            Packet.peek(header[:n])

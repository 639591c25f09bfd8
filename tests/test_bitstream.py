"""Unit packets against their header, bitstreams and ``.spnr`` files of format v2 (docs/FORMAT.md)."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import pytest
from _bitstreams import codes_of, make_stream

import codec.bitstream as bitstream_mod
from codec.bitstream import (
    Bitstream,
    Unit,
    load_bitstream,
    make_header_packet,
    make_unit_packet,
    new_stream_id,
    parse_header,
    parse_unit,
    read_file,
    read_stream,
    units_bytes,
    write_file,
)
from codec.errors import BitstreamError
from codec.files import frame_packets
from codec.packets import Packet, PacketType
from codec.payload import encode_unit_payload
from codec.quant import quantize


def test_unit_round_trip_and_packet_fields() -> None:
    bs = make_stream()
    for i, unit in bs.units.items():
        packet = make_unit_packet(unit, 77)
        assert (packet.ptype, packet.stream_id, packet.seq, packet.unit) == (PacketType.UNIT, 77, i + 1, i)
        back = parse_unit(Packet.parse(packet.to_bytes()), bs.header)
        assert back == unit and back.payload == unit.payload
        for a, b in zip(unit.tensors, back.tensors, strict=True):
            assert a.name == b.name and a.shape == b.shape and a.step == b.step
            assert np.array_equal(np.ravel(a.codes), b.codes) and np.array_equal(
                a.dequantize(), b.dequantize()
            )


def _unit_packet(payload: bytes, unit: int = 1) -> Packet:
    return Packet(PacketType.UNIT, 1, unit + 1, unit, payload)


def test_unit_payload_is_checked_against_the_derived_unit() -> None:
    """A payload made for another shape fails the entropy decoder's own checks: the counts come from the
    arch, and codes for 56 weights do not end where 64 would."""
    bs = make_stream()
    wrong = [quantize("weight", np.ones((8, 7), np.float32) * np.arange(7), 0.5), bs.units[1].tensors[1]]
    with pytest.raises(BitstreamError, match=r"unit 1 \(hidden.1\): entropy-coded data"):
        parse_unit(_unit_packet(encode_unit_payload(wrong)), bs.header)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"", r"unit 1 \(hidden.1\) payload has 0 bytes; its 2 steps alone need 4"),
        (b"\x3d\x80\x3d", "its 2 steps alone need 4"),
        (
            b"\x00\x00\x3d\x80",
            r"unit 1 \(hidden.1\) tensor 'weight' has step bits 0x0000: a step is a positive normal",
        ),
        (b"\x3d\x80\x80\x01", r"tensor 'bias' has step bits 0x8001"),
        (b"\x3d\x80\x7f\x80", r"tensor 'bias' has step bits 0x7f80"),
        (b"\x3d\x80\x3d\x80", r"unit 1 \(hidden.1\): entropy-coded data is truncated: model tag of array 0"),
        (
            b"\x3d\x80\x3d\x80\x00\x00\x00\x00\xff",
            r"unit 1 \(hidden.1\): 1 bytes follow the last model descriptor",
        ),
    ],
)
def test_unit_payload_rejects(payload: bytes, match: str) -> None:
    with pytest.raises(BitstreamError, match=match):
        parse_unit(_unit_packet(payload), make_stream().header)


def test_unit_index_beyond_header() -> None:
    bs = make_stream()
    with pytest.raises(BitstreamError, match="unit packet for unit 4, but the header has 4 units"):
        parse_unit(_unit_packet(bs.units[0].payload, unit=4), bs.header)


def test_packet_type_and_version_mismatch() -> None:
    bs = make_stream()
    header_packet, unit_packet = bs.packets()[:2]
    with pytest.raises(BitstreamError, match="expected a header packet, got a unit packet"):
        parse_header(unit_packet)
    with pytest.raises(BitstreamError, match="expected a unit packet, got a header packet"):
        parse_unit(header_packet, bs.header)
    v1 = Packet(PacketType.UNIT, 1, 1, 0, unit_packet.payload, version=1)
    with pytest.raises(BitstreamError, match="unit packet seq 1 is version 1, its header version 2"):
        parse_unit(v1, bs.header)


def test_bad_refinement_packets_are_refused_clearly() -> None:
    bs = make_stream()
    ref = Packet(PacketType.REFINEMENT, 0x5EED, 9, 2, b"\x09\0", level=1)
    with pytest.raises(BitstreamError, match="expected a unit packet, got a refinement packet"):
        parse_unit(ref, bs.header)
    name = bs.header.units[2].name
    what = rf"refinement 1 of unit 2 \({name}\) has shift 9: allowed 0 \(direct\) or 1..8 bits"
    back, damaged = load_bitstream(bs.to_bytes() + ref.to_bytes(), strict=False)
    assert back.missing() == [] and len(damaged) == 1 and re.search(what, damaged[0])
    assert back.refinements == {}
    with pytest.raises(BitstreamError, match=what):
        load_bitstream(bs.to_bytes() + ref.to_bytes())


def test_packets_order_and_missing() -> None:
    bs = make_stream(hidden=3)
    del bs.units[2]
    packets = bs.packets()
    assert [(p.ptype, p.seq, p.unit) for p in packets] == [
        (PacketType.HEADER, 0, None),
        (PacketType.UNIT, 1, 0),
        (PacketType.UNIT, 2, 1),
        (PacketType.UNIT, 4, 3),
        (PacketType.UNIT, 5, 4),
    ]
    assert {p.stream_id for p in packets} == {0x5EED} and {p.version for p in packets} == {2}
    assert bs.missing() == [2]


def test_file_round_trip_is_bit_exact() -> None:
    bs = make_stream()
    data = bs.to_bytes()
    assert data == bs.to_bytes()  # deterministic
    assert data == frame_packets(bs.packets()) == b"".join(p.to_bytes() for p in bs.packets())
    assert data[0] == 0x53  # a v2 file starts with a packet, no record prefix
    back, damaged = load_bitstream(data)
    assert damaged == [] and back.missing() == [] and back.stream_id == bs.stream_id
    assert back.header == bs.header and back.units == bs.units
    assert back.to_bytes() == data
    for i, codes in codes_of(bs).items():
        assert all(np.array_equal(a, b) for a, b in zip(codes, codes_of(back)[i], strict=True))


def test_units_bytes_is_what_the_file_spends_on_units() -> None:
    bs = make_stream(hidden=3)
    header = len(make_header_packet(bs.header, bs.stream_id).to_bytes())
    assert header + units_bytes(bs.units.values()) == len(bs.to_bytes())


def test_read_stream_splits_packets() -> None:
    bs = make_stream()
    packets = bs.packets()
    result = read_stream(bs.to_bytes())
    assert result.header_packet == packets[0] and result.packets == packets[1:] and result.damaged == []
    assert result.version == 2


def test_from_packets_any_order_with_duplicates() -> None:
    bs = make_stream(hidden=3)
    packets = bs.packets()
    shuffled = packets[3:] + packets[1:3] + [packets[0], packets[2], packets[0]]
    random.Random(0).shuffle(shuffled)
    back = Bitstream.from_packets(shuffled)
    assert back.to_bytes() == bs.to_bytes()
    assert Bitstream.from_packets(packets[:1]).missing() == [0, 1, 2, 3, 4]


def test_from_packets_rejects() -> None:
    bs = make_stream()
    packets = bs.packets()
    with pytest.raises(BitstreamError, match="no header packet among the packets"):
        Bitstream.from_packets(packets[1:])
    stranger = Packet(PacketType.UNIT, 0xBAD, 2, 1, packets[2].payload)
    with pytest.raises(BitstreamError, match="packet seq 2 is of stream 0xbad, not 0x5eed"):
        Bitstream.from_packets([*packets, stranger])
    other = make_stream(seed=1).packets()[2]
    with pytest.raises(BitstreamError, match="two different packets for unit 1"):
        Bitstream.from_packets([*packets, other])
    other_header = make_header_packet(make_stream(width=4).header, 0x5EED)
    with pytest.raises(BitstreamError, match="more than one distinct header packet"):
        Bitstream.from_packets([*packets, other_header])


def test_write_and_read_file(tmp_path: Path) -> None:
    bs = make_stream()
    path = tmp_path / "img.spnr"
    write_file(path, bs)
    write_file(path, bs)  # replacing works too
    assert os.listdir(tmp_path) == ["img.spnr"]  # no temp file left behind
    assert path.read_bytes() == bs.to_bytes()
    back, damaged = read_file(path)
    assert damaged == [] and back.to_bytes() == bs.to_bytes()


def test_read_file_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BitstreamError, match="cannot read .*nope.spnr.*: No such file"):
        read_file(tmp_path / "nope.spnr")
    with pytest.raises(BitstreamError, match="cannot read"):
        read_file(tmp_path)  # a directory
    path = tmp_path / "img.spnr"
    write_file(path, make_stream())
    monkeypatch.setattr(bitstream_mod, "MAX_FILE_BYTES", 100)
    with pytest.raises(BitstreamError, match="is larger than 100 bytes"):
        read_file(path)


def test_write_file_failure_leaves_nothing(tmp_path: Path) -> None:
    bs = make_stream()
    bs.units[0] = Unit(3, bs.units[0].tensors)  # inconsistent: packets() refuses before anything is written
    with pytest.raises(BitstreamError, match="unit stored under key 0 has index 3"):
        write_file(tmp_path / "x.spnr", bs)
    assert os.listdir(tmp_path) == []


def test_new_stream_id() -> None:
    ids = {new_stream_id() for _ in range(50)}
    assert len(ids) > 45 and all(0 < i <= 0xFFFF for i in ids)

"""Damaged and hostile ``.spnr`` files: every truncation, random bit flips, crafted fields and bombs."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest
from _bitstreams import codes_of, make_stream, raw_packet, zstd_bomb

from codec.bitstream import LayerUnit, frame_packets, load_bitstream, make_layer_packet, read_stream
from codec.errors import BitstreamError
from codec.packets import HEADER_LAYER, Packet, PacketType
from codec.payload import encode_payload
from codec.quant import quantize

SID = 0x5EED


def _offsets(data: bytes) -> list[int]:
    """Start offset of every record, plus the end of the file."""
    out, off = [0], 0
    while off < len(data):
        off += 4 + struct.unpack_from(">I", data, off)[0]
        out.append(off)
    return out


def _record(data: bytes, offsets: list[int], pos: int) -> int:
    return max(k for k, off in enumerate(offsets[:-1]) if off <= pos)


def _same_codes(a: dict[int, list[np.ndarray]], b: dict[int, list[np.ndarray]], skip: set[int]) -> bool:
    keys = set(a) - skip
    return set(b) == keys and all(
        all(np.array_equal(x, y) for x, y in zip(a[k], b[k], strict=True)) for k in keys
    )


@pytest.fixture(scope="module")
def small() -> tuple[bytes, dict[int, list[np.ndarray]]]:
    bs = make_stream(width=4, hidden=1)
    return bs.to_bytes(), codes_of(bs)


@pytest.mark.parametrize("strict", [True, False])
def test_every_truncation_length(small: tuple[bytes, dict], strict: bool) -> None:
    data, codes = small
    offsets = _offsets(data)
    assert len(offsets) == 5 and offsets[-1] == len(data)  # header + 3 layers
    for n in range(len(data)):
        cut = data[:n]
        if n == 0:
            with pytest.raises(BitstreamError, match="file is empty"):
                load_bitstream(cut, strict)
            continue
        k = _record(data, offsets, n)
        off = offsets[k]
        if n == off:  # a clean cut between records is a valid file with fewer layers
            bs, damaged = load_bitstream(cut, strict)
            assert damaged == [] and bs.missing() == list(range(k - 1, 3))
            assert _same_codes(codes, codes_of(bs), set(range(k - 1, 3)))
            continue
        got = n - off
        if got < 4:
            msg = f"file truncated: record {k} at offset {off} needs a 4-byte length, got {got}$"
        else:
            length = offsets[k + 1] - off - 4
            msg = f"file truncated: record {k} at offset {off} needs {length} bytes, got {got - 4}$"
        with pytest.raises(BitstreamError, match=msg):
            load_bitstream(cut, strict)


def test_random_bit_flips(small: tuple[bytes, dict]) -> None:
    data, codes = small
    offsets = _offsets(data)
    rng = np.random.default_rng(2024)
    outcomes = {"framing": 0, "header": 0, "layer": 0}
    for bit in rng.choice(len(data) * 8, size=300, replace=False):
        bad = bytearray(data)
        bad[bit // 8] ^= 0x80 >> (bit % 8)
        bad = bytes(bad)
        k = _record(data, offsets, bit // 8)
        off, r = offsets[k], bit // 8 - offsets[k]
        with pytest.raises(BitstreamError):
            load_bitstream(bad, strict=True)
        if r < 4 or 4 + 16 <= r < 4 + 20:  # record length or the packet's length field: framing breaks
            outcomes["framing"] += 1
            with pytest.raises(BitstreamError, match=f"record {k} at offset {off} has length"):
                load_bitstream(bad, strict=False)
        elif k == 0:
            outcomes["header"] += 1
            with pytest.raises(BitstreamError, match=r"header packet \(record 0\) is damaged"):
                load_bitstream(bad, strict=False)
        else:
            outcomes["layer"] += 1
            bs, damaged = load_bitstream(bad, strict=False)
            assert len(damaged) == 1 and damaged[0].startswith(f"record {k} at offset {off}: ")
            assert bs.missing() == [k - 1]
            assert _same_codes(codes, codes_of(bs), {k - 1})
    assert min(outcomes.values()) > 0, outcomes  # every branch was exercised


def test_strict_names_the_damaged_record(small: tuple[bytes, dict]) -> None:
    data, _ = small
    offsets = _offsets(data)
    bad = bytearray(data)
    bad[offsets[2] + 4 + 30] ^= 0x10  # a payload byte of record 2
    with pytest.raises(BitstreamError, match=rf"record 2 at offset {offsets[2]}: bad CRC in packet seq 2"):
        load_bitstream(bytes(bad))


def test_two_damaged_layers_lenient() -> None:
    bs = make_stream(hidden=3)
    data = bs.to_bytes()
    offsets = _offsets(data)
    bad = bytearray(data)
    for k in (2, 4):
        bad[offsets[k] + 30 : offsets[k] + 38] = b"\xde\xad\xbe\xef" * 2
    back, damaged = load_bitstream(bytes(bad), strict=False)
    assert back.missing() == [1, 3] and len(damaged) == 2
    assert all("bad CRC" in d for d in damaged)
    assert _same_codes(codes_of(bs), codes_of(back), {1, 3})


def _file(*packets: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in packets)


def _split(bs_bytes: bytes) -> list[bytes]:
    offsets = _offsets(bs_bytes)
    return [bs_bytes[a + 4 : b] for a, b in zip(offsets, offsets[1:], strict=False)]


def test_valid_crc_but_wrong_shape_layer() -> None:
    bs = make_stream()
    records = _split(bs.to_bytes())
    wrong = LayerUnit(1, [quantize("weight", np.zeros((8, 7), np.float32)), bs.units[1].tensors[1]])
    records[2] = make_layer_packet(wrong, SID).to_bytes()
    data = _file(*records)
    with pytest.raises(
        BitstreamError, match=r"tensor 'weight' has shape \[8, 7\] but the header says \[8, 8\]"
    ):
        load_bitstream(data)
    back, damaged = load_bitstream(data, strict=False)
    assert back.missing() == [1]
    assert damaged == ["layer 1 (packet seq 2): tensor 'weight' has shape [8, 7] but the header says [8, 8]"]
    assert _same_codes(codes_of(bs), codes_of(back), {1})


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"magic": b"RIFF"}, r"header packet \(record 0\) is damaged: bad magic b'RIFF'"),
        ({"version": 9}, "header packet \\(record 0\\) is damaged: unsupported packet version 9: expected 1"),
        ({"ptype": 4}, "unknown packet type 4"),
        ({"flags": 0x0101}, "packet flags 0x0101 not supported"),
    ],
)
@pytest.mark.parametrize("strict", [True, False])
def test_bad_header_record_is_fatal(fields: dict, match: str, strict: bool) -> None:
    records = _split(make_stream().to_bytes())
    payload = Packet.parse(records[0]).payload
    fields = dict(fields)  # shared between parametrized runs
    records[0] = raw_packet(payload, ptype=fields.pop("ptype", 0), layer=HEADER_LAYER, seq=0, **fields)
    with pytest.raises(BitstreamError, match=match):
        load_bitstream(_file(*records), strict)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"magic": b"RIFF"}, "bad magic"),
        ({"version": 0}, "unsupported packet version 0"),
        ({"ptype": 7}, "unknown packet type 7"),
        ({"flags": 0x0003}, "packet flags 0x0003 not supported"),
        ({"layer": HEADER_LAYER}, "layer packet cannot use layer 0xffff"),
    ],
)
def test_bad_layer_record(fields: dict, match: str) -> None:
    bs = make_stream()
    records = _split(bs.to_bytes())
    offsets = _offsets(bs.to_bytes())
    payload = Packet.parse(records[2]).payload
    records[2] = raw_packet(payload, seq=2, **({"layer": 1} | fields))
    data = _file(*records)
    with pytest.raises(BitstreamError, match=f"record 2 at offset {offsets[2]}: {match}"):
        load_bitstream(data)
    back, damaged = load_bitstream(data, strict=False)
    assert back.missing() == [1] and len(damaged) == 1 and re.search(match, damaged[0])


@pytest.mark.parametrize("strict", [True, False])
def test_huge_length_fields(strict: bool) -> None:
    records = _split(make_stream().to_bytes())
    data = _file(*records)
    with pytest.raises(
        BitstreamError, match="record 0 at offset 0 has length 4294967295, outside 24..16777240"
    ):
        load_bitstream(b"\xff\xff\xff\xff" + data[4:], strict)
    with pytest.raises(BitstreamError, match="record 0 at offset 0 has length 3, outside"):
        load_bitstream(b"\0\0\0\x03SPN", strict)
    bad = raw_packet(b"\0" * 5, length=0xFFFFFFFF)  # packet length field vs a 29-byte record
    with pytest.raises(
        BitstreamError, match="record 1 at offset .* has length 29 but its packet says 4294967319"
    ):
        load_bitstream(_file(records[0], bad), strict)
    with pytest.raises(BitstreamError, match="payload length 4294967295 exceeds MAX_PAYLOAD"):
        Packet.parse(bad)


@pytest.mark.parametrize("strict", [True, False])
def test_file_structure_errors(strict: bool) -> None:
    records = _split(make_stream().to_bytes())
    with pytest.raises(BitstreamError, match="file does not start with a header packet"):
        load_bitstream(_file(records[1], records[0]), strict)
    with pytest.raises(BitstreamError, match="record 2 at offset .* is a second header packet"):
        load_bitstream(_file(records[0], records[1], records[0]), strict)
    stranger = make_stream(stream_id=0xBAD).packets()[2].to_bytes()
    with pytest.raises(BitstreamError, match="packet seq 2 is of stream 0x00000bad, not 0x00005eed"):
        load_bitstream(_file(records[0], records[1], stranger), strict)
    result = read_stream(_file(records[0]), strict)
    assert result.layer_packets == [] and result.damaged == []


def test_zstd_bomb_in_packets() -> None:
    bs = make_stream()
    records = _split(bs.to_bytes())
    bomb_header = Packet(PacketType.HEADER, SID, 0, HEADER_LAYER, zstd_bomb()).to_bytes()
    for strict in (True, False):
        with pytest.raises(BitstreamError, match="declares 1073741824 decompressed bytes"):
            load_bitstream(_file(bomb_header, *records[1:]), strict)
    records[1] = Packet(PacketType.LAYER, SID, 1, 0, zstd_bomb()).to_bytes()
    with pytest.raises(BitstreamError, match="declares 1073741824 decompressed bytes"):
        load_bitstream(_file(*records))
    back, damaged = load_bitstream(_file(*records), strict=False)
    assert back.missing() == [0] and "declares 1073741824 decompressed bytes" in damaged[0]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"image": "12x9"}, "header image must be a map, got str"),
        ({"units": [{"name": "input", "tensors": [["weight", "8x2"]]}]}, "shape must be a list"),
        (
            {"units": [{"name": b"input", "tensors": [["weight", [8, 2]]]}]},
            "header unit 0 name must be a string",
        ),
        ({"quant": {"bits": 8.0, "per_channel": False}}, "header quant bits 8.0 is out of range 2..16"),
        (
            {"units": [{"name": "u", "tensors": [["w", [2]]]}] * 1025},
            "header units must be a list of 1..1024 entries, got 1025",
        ),
    ],
)
def test_header_packet_with_wrong_types(change: dict, match: str) -> None:
    bs = make_stream()
    payload = bs.header.to_payload() | change
    records = _split(bs.to_bytes())
    records[0] = Packet(PacketType.HEADER, SID, 0, HEADER_LAYER, encode_payload(payload)).to_bytes()
    for strict in (True, False):
        with pytest.raises(BitstreamError, match=match):
            load_bitstream(_file(*records), strict)


def test_frame_packets_matches_helper() -> None:
    bs = make_stream()
    assert frame_packets(bs.packets()) == _file(*(p.to_bytes() for p in bs.packets())) == bs.to_bytes()

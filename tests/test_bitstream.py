from __future__ import annotations

import copy
import os
import random
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zstandard
from _bitstreams import codes_of, make_stream, raw_packet, zstd_bomb

import codec.bitstream as bitstream_mod
from codec.bitstream import (
    Bitstream,
    LayerUnit,
    StreamHeader,
    frame_packets,
    load_bitstream,
    make_header_packet,
    make_layer_packet,
    new_stream_id,
    parse_header,
    parse_layer,
    read_file,
    read_stream,
    write_file,
)
from codec.errors import BitstreamError
from codec.packets import HEADER_LAYER, Packet, PacketType
from codec.payload import MAX_DECOMPRESSED, MAX_ITEMS, decode_payload, encode_payload
from codec.quant import quantize

# -- payload ------------------------------------------------------------------------------------


def test_payload_round_trip() -> None:
    obj = {"a": [1, 2.5, "x", None, True], "b": b"\x00\xff", "c": {"d": -3}}
    data = encode_payload(obj)
    assert zstandard.frame_content_size(data) == len(msgpack.packb(obj, use_bin_type=True))
    assert decode_payload(data) == obj


def _zstd(raw: bytes, content_size: bool = True) -> bytes:
    return zstandard.ZstdCompressor(write_content_size=content_size).compress(raw)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "payload is not a zstd frame"),
        (b"not zstd at all", "payload is not a zstd frame"),
        (_zstd(msgpack.packb({"a": 1}), content_size=False), "does not declare its content size"),
        (_zstd(msgpack.packb({"a": 1})) + b"xx", "2 bytes after its zstd frame"),
        (_zstd(msgpack.packb({"a": 1}))[:-2], "payload zstd frame (is truncated|is corrupt)"),
        (_zstd(msgpack.packb([1, 2])), "payload must be a msgpack map, got list"),
        (_zstd(msgpack.packb({1: 2})), "payload is not valid msgpack"),  # strict_map_key
        (_zstd(msgpack.packb({"a": 1}) + b"\x01"), "payload is not valid msgpack: ExtraData"),
        (_zstd(b"\xc1"), "payload is not valid msgpack"),  # never-used type byte
        (_zstd(msgpack.packb({"a": msgpack.ExtType(1, b"x")})), "payload is not valid msgpack"),
        (
            _zstd(msgpack.packb({"a": b"\xff"}, use_bin_type=False)),
            "payload is not valid msgpack",
        ),  # raw str, bad UTF-8
    ],
)
def test_decode_payload_rejects(data: bytes, match: str) -> None:
    with pytest.raises(BitstreamError, match=match):
        decode_payload(data)


def test_decode_payload_bounds_object_count() -> None:
    """64K empty lists would cost ~4 MB of Python objects per KB of zstd: the item budget stops it."""
    raw = msgpack.packb({"x": [[[] for _ in range(2**15)] for _ in range(16)]})
    data = _zstd(raw)
    assert len(data) < 2000
    with pytest.raises(BitstreamError, match=f"more than {MAX_ITEMS} array elements"):
        decode_payload(data)


def test_decode_payload_lying_content_size() -> None:
    raw = bytes(range(256)) * 40
    frame = bytearray(_zstd(msgpack.packb({"x": raw})))
    assert frame[4] & 0xC0 == 0x40  # 2-byte content size field at offset 5 (value - 256, little-endian)
    frame[5:7] = b"\0\0"  # now declares 256 bytes
    with pytest.raises(BitstreamError, match="payload zstd frame is corrupt"):
        decode_payload(bytes(frame))


def test_zstd_bomb_is_refused_before_allocating() -> None:
    bomb = zstd_bomb()
    assert len(bomb) < 20 and zstandard.frame_content_size(bomb) == 2**30
    with pytest.raises(
        BitstreamError,
        match=f"declares 1073741824 decompressed bytes, more than MAX_DECOMPRESSED {MAX_DECOMPRESSED}",
    ):
        decode_payload(bomb)


# -- header -------------------------------------------------------------------------------------


def test_header_round_trip() -> None:
    header = make_stream().header
    payload = header.to_payload()
    assert payload["format"] == 1 and payload["image"] == {"width": 12, "height": 9}
    assert payload["quant"] == {"bits": 8, "per_channel": False}
    assert payload["coords"] == "center" and payload["output"] == "pm1"
    assert payload["units"][0] == {"name": "input", "tensors": [["weight", [8, 2]], ["bias", [8]]]}
    back = StreamHeader.from_payload(decode_payload(encode_payload(payload)))
    assert back == header and back.num_units == 4


def test_header_optional_keys_default() -> None:
    payload = make_stream().header.to_payload()
    del payload["stage_psnr"], payload["meta"]
    back = StreamHeader.from_payload(payload)
    assert back.stage_psnr == [] and back.meta == {}


def test_header_packet_is_small() -> None:
    packet = make_header_packet(make_stream(hidden=16).header, 1)
    assert packet.ptype == PacketType.HEADER and packet.layer == HEADER_LAYER and packet.seq == 0
    assert len(packet.to_bytes()) < 400


def _set(d: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    for p in parents:
        d = d[int(p)] if isinstance(d, list) else d[p]
    if value is KeyError:
        del d[last]
    elif isinstance(d, list):
        d[int(last)] = value
    else:
        d[last] = value


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        ("format", 2, "unsupported header format 2: expected 1"),
        ("format", "1", "unsupported header format '1'"),
        ("model", "Bad-Name", r"header model 'Bad-Name' is not an identifier matching \[a-z0-9_\]\{1,32\}"),
        ("model", "a" * 33, "is not an identifier"),
        ("model", "siren\n", "is not an identifier"),
        ("model", 3, "is not an identifier"),
        ("arch", [1], "header arch must be a map"),
        (
            "arch.width",
            {"nested": 1},
            "header arch 'width' must be an int, float, str, bool or a list of them",
        ),
        ("arch.width", [1, [2]], "header arch 'width' must be"),
        ("image.width", 0, "header image width 0 is out of range 1..65535"),
        ("image.height", 65536, "header image height 65536 is out of range 1..65535"),
        ("image.width", 12.0, "header image width 12.0 is out of range"),
        ("image.depth", 3, r"header image has missing keys \[\] / unexpected keys \['depth'\]"),
        ("coords", "corner", "header coords 'corner' not supported: expected 'center'"),
        ("output", "01", "header output '01' not supported: expected 'pm1'"),
        ("quant.bits", 17, "header quant bits 17 is out of range 2..16"),
        ("quant.per_channel", 1, "header quant per_channel must be a bool"),
        ("units", [], "header units must be a list of 1..1024 entries, got 0"),
        ("units", {"a": 1}, "header units must be a list of 1..1024 entries, got dict"),
        ("units.0.tensors", [], r"header unit 'input' tensors must be a list of 1..64 entries"),
        ("units.0.tensors.0", ["weight"], r"tensor entry \['weight'\] is not \[name, shape\]"),
        ("units.0.tensors.0", ["weight", [0, 2]], "shape \\[0, 2\\] must hold positive ints"),
        ("units.0.tensors.0", ["weight", [2**16, 2**16]], "has more than 16777216 elements"),
        ("units.0.tensors.0", ["bias", [8, 2]], "header unit 'input' repeats a tensor name"),
        ("units.0.name", "", "header unit 0 name must be a string of 1..64 characters"),
        ("units.1.extra", 1, "header unit 1 has missing keys"),
        ("stage_psnr", ["x"], "header stage_psnr must hold numbers"),
        ("stage_psnr", 3.0, "header stage_psnr must be a list"),
        ("meta", [], "header meta must be a map, got list"),
        ("format", KeyError, r"header payload has missing keys \['format'\]"),
        ("version", 1, r"unexpected keys \['version'\]"),
    ],
)
def test_header_rejects(path: str, value: object, match: str) -> None:
    payload = copy.deepcopy(make_stream().header.to_payload())
    _set(payload, path, value)
    with pytest.raises(BitstreamError, match=match):
        StreamHeader.from_payload(payload)


def test_header_absurd_unit_count() -> None:
    payload = make_stream().header.to_payload()
    payload["units"] = payload["units"][:1] * 5000
    with pytest.raises(BitstreamError, match="header units must be a list of 1..1024 entries, got 5000"):
        parse_header(Packet(PacketType.HEADER, 1, 0, HEADER_LAYER, encode_payload(payload)))


def test_header_total_elements_bounded() -> None:
    payload = make_stream().header.to_payload()
    payload["units"] = [{"name": f"u{i}", "tensors": [["w", [2**12, 2**12]]]} for i in range(5)]
    with pytest.raises(BitstreamError, match="header units hold more than 67108864 elements in all"):
        StreamHeader.from_payload(payload)


def test_make_header_packet_refuses_what_a_receiver_would_reject() -> None:
    header = make_stream().header
    header.width = 0
    with pytest.raises(BitstreamError, match="header image width 0"):
        make_header_packet(header, 1)


# -- layers -------------------------------------------------------------------------------------


def test_layer_round_trip_and_packet_fields() -> None:
    bs = make_stream(per_channel=True, bits=6)
    for i, unit in bs.units.items():
        packet = make_layer_packet(unit, 77)
        assert (packet.ptype, packet.stream_id, packet.seq, packet.layer) == (PacketType.LAYER, 77, i + 1, i)
        back = parse_layer(Packet.parse(packet.to_bytes()), bs.header)
        assert back.index == i
        for a, b in zip(unit.tensors, back.tensors, strict=True):
            assert a.name == b.name and a.shape == b.shape and a.axis == b.axis
            assert np.array_equal(a.codes.ravel(), b.codes) and np.array_equal(a.dequantize(), b.dequantize())


def _layer_packet(payload: dict, layer: int = 1) -> Packet:
    return Packet(PacketType.LAYER, 1, layer + 1, layer, encode_payload(payload))


def test_layer_shape_mismatch_vs_header() -> None:
    bs = make_stream()
    wrong = LayerUnit(1, [quantize("weight", np.zeros((8, 7), np.float32)), bs.units[1].tensors[1]])
    with pytest.raises(
        BitstreamError, match=r"tensor 'weight' has shape \[8, 7\] but the header says \[8, 8\]"
    ):
        parse_layer(make_layer_packet(wrong, 1), bs.header)


def test_layer_name_order_must_match_header() -> None:
    bs = make_stream()
    swapped = LayerUnit(2, bs.units[2].tensors[::-1])
    with pytest.raises(BitstreamError, match="tensor name 'bias' does not match the header's 'weight'"):
        parse_layer(make_layer_packet(swapped, 1), bs.header)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"unit": 1}, r"layer payload has missing keys \['tensors'\]"),
        ({"unit": 9, "tensors": []}, "layer payload unit index 9 is out of range 0..3"),
        ({"unit": "1", "tensors": []}, "layer payload unit index '1' is out of range"),
        ({"unit": 1, "tensors": []}, r"unit 1 \(hidden.1\) must carry 2 tensors as the header says, got 0"),
        ({"unit": 1, "tensors": "ab"}, "must carry 2 tensors as the header says, got str"),
    ],
)
def test_layer_payload_rejects(payload: dict, match: str) -> None:
    with pytest.raises(BitstreamError, match=match):
        parse_layer(_layer_packet(payload), make_stream().header)


def test_layer_unit_must_equal_packet_layer() -> None:
    bs = make_stream()
    payload = bs.units[2].to_payload()
    with pytest.raises(BitstreamError, match="layer payload is unit 2 but its packet says layer 1"):
        parse_layer(_layer_packet(payload, layer=1), bs.header)


def test_layer_index_beyond_header() -> None:
    bs = make_stream()
    with pytest.raises(BitstreamError, match="layer packet for unit 4, but the header has 4 units"):
        parse_layer(_layer_packet(bs.units[0].to_payload(), layer=4), bs.header)


def test_packet_type_mismatch() -> None:
    bs = make_stream()
    header_packet, layer_packet = bs.packets()[:2]
    with pytest.raises(BitstreamError, match="expected a header packet, got a layer packet"):
        parse_header(layer_packet)
    with pytest.raises(BitstreamError, match="expected a layer packet, got a header packet"):
        parse_layer(header_packet, bs.header)


# -- bitstream and file -------------------------------------------------------------------------


def test_packets_order_and_missing() -> None:
    bs = make_stream(hidden=3)
    del bs.units[2]
    packets = bs.packets()
    assert [(p.ptype, p.seq, p.layer) for p in packets] == [
        (PacketType.HEADER, 0, HEADER_LAYER),
        (PacketType.LAYER, 1, 0),
        (PacketType.LAYER, 2, 1),
        (PacketType.LAYER, 4, 3),
        (PacketType.LAYER, 5, 4),
    ]
    assert {p.stream_id for p in packets} == {0x5EED}
    assert bs.missing() == [2]


def test_file_round_trip_is_bit_exact() -> None:
    bs = make_stream(per_channel=True)
    data = bs.to_bytes()
    assert data == bs.to_bytes()  # deterministic
    assert data == frame_packets(bs.packets())
    back, damaged = load_bitstream(data)
    assert damaged == [] and back.missing() == [] and back.stream_id == bs.stream_id
    assert back.header == bs.header
    assert back.to_bytes() == data
    for i, codes in codes_of(bs).items():
        assert all(np.array_equal(a, b) for a, b in zip(codes, codes_of(back)[i], strict=True))


def test_read_stream_splits_records() -> None:
    bs = make_stream()
    packets = bs.packets()
    result = read_stream(bs.to_bytes())
    assert result.header_packet == packets[0] and result.layer_packets == packets[1:] and result.damaged == []


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
    stranger = Packet(PacketType.LAYER, 0xBAD, 2, 1, packets[2].payload)
    with pytest.raises(BitstreamError, match="packet seq 2 is of stream 0x00000bad, not 0x00005eed"):
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
    bs.units[0].index = 3  # inconsistent: packets() refuses before anything is written
    with pytest.raises(BitstreamError, match="unit stored under key 0 has index 3"):
        write_file(tmp_path / "x.spnr", bs)
    assert os.listdir(tmp_path) == []


def test_new_stream_id() -> None:
    ids = {new_stream_id() for _ in range(50)}
    assert len(ids) > 45 and all(0 < i <= 0xFFFFFFFF for i in ids)


def test_raw_packet_helper_matches_packet() -> None:
    """The corruption tests craft packets with this helper; it must agree with Packet exactly."""
    p = Packet(PacketType.LAYER, 0x5EED, 3, 2, b"payload")
    assert raw_packet(b"payload", layer=2, seq=3) == p.to_bytes()

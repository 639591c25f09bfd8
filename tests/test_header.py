"""The v2 header payload and the arch records: byte layout, round trips for every family, every
truncation, hostile fields and the extension rules (docs/FORMAT.md, "Header")."""

from __future__ import annotations

import math
import struct

import pytest
from _bitstreams import siren_arch

from codec.arch import DECODERS, MODEL_IDS, read_arch, write_arch
from codec.arch.records import Field, read_record, write_record
from codec.bitstream import make_header_packet, parse_header
from codec.errors import BitstreamError, ConfigError
from codec.header import (
    EXT_INIT,
    EXT_LADDER,
    EXT_META,
    PSNR_INF,
    StreamHeader,
    parse_header_payload,
)
from codec.mpack import pack
from codec.packets import Packet, PacketType
from codec.varint import Reader

# Every family with every field away from its default (so every record field is written).
NON_DEFAULT_ARCHS = {
    "siren": {
        "width": 300,
        "hidden_layers": 3,
        "first_omega_0": 15.5,
        "hidden_omega_0": 0.1,
        "pe_frequencies": 12,
        "pe_scale": 1.25,
    },
    "spinr": {
        "width": 64,
        "hidden_layers": 16,
        "first_omega_0": 30.0,
        "hidden_omega_0": 20.0,
        "head": "shared",
        "residual": False,
        "pe_frequencies": 3,
        "pe_scale": 2.0,
    },
    "fourier": {"width": 32, "hidden_layers": 2, "mapping_size": 17, "sigma": 0.1, "b_seed": 2**32 - 1},
    "mfn": {"width": 16, "hidden_layers": 2, "filter": "fourier"},
    "wire": {"width": 8, "hidden_layers": 1, "omega_0": 10.0, "scale_0": 3.25},
    "diner": {
        "width": 8,
        "hidden_layers": 1,
        "features": 3,
        "omega_0": 31.0,
        "table_width": 40,
        "table_height": 7,
    },
}


def test_every_registered_model_has_an_id_and_a_record() -> None:
    assert set(DECODERS) == set(MODEL_IDS) == set(NON_DEFAULT_ARCHS)
    assert sorted(MODEL_IDS.values()) == list(range(len(MODEL_IDS)))  # fixed, dense, never reused
    for name, cls in DECODERS.items():
        assert cls.model_id == MODEL_IDS[name]
        assert [f.name for f in cls.RECORD][:2] == ["width", "hidden_layers"]


@pytest.mark.parametrize("model", sorted(NON_DEFAULT_ARCHS))
def test_arch_record_round_trip(model: str) -> None:
    arch = NON_DEFAULT_ARCHS[model]
    data = write_arch(model, arch)
    r = Reader(data, "record")
    back = read_arch(model, r)
    assert back == arch and r.pos == len(data)
    assert [type(v) for v in back.values()] == [type(v) for v in arch.values()]  # ints stay ints


def test_default_records_are_three_bytes() -> None:
    assert write_arch("siren", siren_arch(64, 16)) == bytes([0x00, 64, 16])
    spinr = siren_arch(64, 16) | {"head": "per_stage", "residual": True}
    assert write_arch("spinr", spinr) == bytes([0x08, 64, 16])  # flag bit 3: residual
    shared = spinr | {"head": "shared"}
    assert write_arch("spinr", shared) == bytes([0x0C, 64, 16, 1])  # bit 2: a head index follows
    omega = siren_arch(2, 0) | {"first_omega_0": 12.5}
    assert write_arch("siren", omega) == bytes([0x01, 2, 0]) + struct.pack(">d", 12.5)


def test_record_refuses_unknown_flag_bits_and_choices() -> None:
    with pytest.raises(
        BitstreamError, match=r"siren arch flags 0x10 set bits beyond the 4 this decoder knows"
    ):
        read_arch("siren", Reader(bytes([0x10, 8, 2]), "record"))
    with pytest.raises(BitstreamError, match=r"mfn arch field 'filter' 2 \(byte 3\) is out of range 0..1"):
        read_arch("mfn", Reader(bytes([0x01, 8, 2, 2]), "record"))


def test_write_record_refuses_what_it_does_not_declare() -> None:
    with pytest.raises(ConfigError, match=r"siren arch has fields .*'extra'.*; its record declares"):
        write_arch("siren", siren_arch() | {"extra": 1})
    with pytest.raises(ConfigError, match="siren arch field 'width' is -1"):
        write_arch("siren", siren_arch() | {"width": -1})
    fields = (Field("a", "bool", False),)
    with pytest.raises(ConfigError, match="expected a bool"):
        write_record(fields, {"a": 1}, "m")
    assert read_record(fields, Reader(b"\x01", "r"), "m") == {"a": True}


def _header(model: str = "spinr", **kw: object) -> StreamHeader:
    arch = NON_DEFAULT_ARCHS[model]
    return StreamHeader(model, dict(arch), 128, 96, **kw)  # type: ignore[arg-type]


def test_known_layout() -> None:
    """FORMAT.md's example: SPINR 64 x 16 (per-stage head, residual) on 128 x 128, 17 PSNRs."""
    arch = siren_arch(64, 16) | {"head": "per_stage", "residual": True}
    psnr = [20.0 + k for k in range(17)]
    h = StreamHeader("spinr", arch, 128, 128, psnr)
    payload = h.to_payload()
    expected = bytes([1, 0x80, 0x01, 0x80, 0x01, 0x08, 64, 16, 17])
    expected += b"".join(struct.pack(">H", round(p * 100)) for p in psnr)
    assert payload == expected and len(payload) == 43
    packet = make_header_packet(h, 0x1234)
    assert len(packet.to_bytes()) == 53  # well under 100 bytes (v1: 538)
    assert parse_header(Packet.parse(packet.to_bytes())) == h


@pytest.mark.parametrize("model", sorted(NON_DEFAULT_ARCHS))
def test_header_round_trip(model: str) -> None:
    h = _header(model, stage_psnr=[12.34, math.inf, 0.0, 655.33], meta={"encoder": "x", "steps": 5})
    back = parse_header_payload(h.to_payload())
    assert back == h and back.arch == NON_DEFAULT_ARCHS[model] and back.units == h.units
    assert back.version == 2 and back.quant is None


def test_psnr_encoding() -> None:
    h = _header(stage_psnr=[1e9, 31.456])
    assert parse_header_payload(h.to_payload()).stage_psnr == [655.34, 31.46]
    assert _header(stage_psnr=[math.inf]).to_payload()[-2:] == PSNR_INF.to_bytes(2, "big")
    for bad in (math.nan, -1.0, -math.inf):
        with pytest.raises(ConfigError, match="stage PSNR .* must be a number >= 0 dB"):
            _header(stage_psnr=[bad]).to_payload()


def test_every_truncation_is_refused() -> None:
    without_meta = len(_header(stage_psnr=[20.0, 21.0]).to_payload())
    payload = _header(stage_psnr=[20.0, 21.0], meta={"k": 1}).to_payload()
    assert parse_header_payload(payload[:without_meta]).meta == {}  # extensions are optional
    for n in set(range(len(payload))) - {without_meta}:
        with pytest.raises(
            BitstreamError, match="header payload is truncated|is out of range|header extension"
        ):
            parse_header_payload(payload[:n])


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (bytes([9, 1, 1]), r"model id 9 is not known to this decoder; known: 0 siren, 1 spinr"),
        (bytes([0, 0, 1, 0, 8, 2, 0]), "image width 0 .* is out of range 1..65535"),
        (bytes([0, 1, 0x80, 0x80, 0x04, 0, 8, 2, 0]), "image height 65536 .* is out of range 1..65535"),
        (bytes([0, 1, 1, 0, 0, 2, 0]), r"header arch field 'width' is 0; expected int in 1..4096"),
        (bytes([0, 1, 1, 0, 8, 0xFF, 0x03, 0]), r"header arch field 'hidden_layers' is 511"),
        (bytes([0, 1, 1, 1, 8, 2]) + struct.pack(">d", math.nan) + b"\0", "'first_omega_0' is nan"),
        (bytes([0, 1, 1, 0, 8, 2, 0x82, 0x08]), "stage PSNR count 1026 .* is out of range 0..1025"),
        (bytes([0, 1, 1, 0, 0x80, 0x20, 0x80, 0x02, 0]), "holds .* weights in all, more than 67108864"),
    ],
)
def test_header_rejects(payload: bytes, match: str) -> None:
    with pytest.raises(BitstreamError, match=match):
        parse_header_payload(payload)


def _base() -> bytes:
    return _header().to_payload()


def test_extensions() -> None:
    meta = {"encoder": "spinr 1", "steps": 300, "seconds": 1.5}
    h = _header(meta=meta)
    assert h.to_payload() == _base() + bytes([EXT_META, len(pack(meta))]) + pack(meta)
    # An optional extension this decoder does not read is skipped and kept for re-sending.
    unknown = _base() + bytes([0x04, 3]) + b"abc" + bytes([0x7F, 0])
    back = parse_header_payload(unknown)
    assert back.extensions == {0x04: b"abc", 0x7F: b""} and back.to_payload() == unknown
    # The rate-quality ladder (0x02) is read and checked against the units (tests/test_ladder.py).
    with pytest.raises(BitstreamError, match=r"0x02 \(rate-quality ladder\) has version 97"):
        parse_header_payload(_base() + bytes([EXT_LADDER, 3]) + b"abc")
    # The θ0 hash (0x83) is read (8 bytes exactly) and written back; any other critical one is refused.
    digest = bytes(range(1, 9))
    back = parse_header_payload(_base() + bytes([EXT_INIT, 8]) + digest)
    assert (
        back.init == digest
        and back.extensions == {}
        and back.to_payload() == _base() + bytes([EXT_INIT, 8]) + digest
    )
    with pytest.raises(
        BitstreamError, match=r"0x83 \(shared initialisation θ0\) has 2 bytes; a θ0 hash has 8"
    ):
        parse_header_payload(_base() + bytes([EXT_INIT, 2]) + b"\0\0")
    with pytest.raises(BitstreamError, match=r"header extension 0xc5 \(unknown\) is critical"):
        parse_header_payload(_base() + bytes([0xC5, 0]))


@pytest.mark.parametrize(
    ("tail", "match"),
    [
        (
            bytes([EXT_LADDER, 5, 1]),
            r"header extension 0x02 \(rate-quality ladder\) declares 5 bytes, the payload has 1 left",
        ),
        (
            bytes([EXT_LADDER, 0, EXT_LADDER, 0]),
            r"header extension 0x02 \(rate-quality ladder\) appears twice",
        ),
        (bytes([EXT_META, 2]) + pack([1]), "encoder meta.* must be a msgpack map, got list"),
        (bytes([EXT_META, 1, 0xC1]), "encoder meta.* is not valid msgpack"),
        (
            bytes([EXT_META, 12]) + pack({"k": math.nan}),
            r"header meta.k is nan: numbers in a header must be finite",
        ),
        (
            bytes([EXT_META, 7]) + pack({"k": b"xy"}),
            "header meta.k is bytes; meta holds maps, lists, strings",
        ),
    ],
)
def test_extension_rejects(tail: bytes, match: str) -> None:
    with pytest.raises(BitstreamError, match=match):
        parse_header_payload(_base() + tail)


def test_header_packet_type_and_refusal_before_sending() -> None:
    h = _header()
    packet = make_header_packet(h, 7)
    assert (packet.ptype, packet.seq, packet.unit, packet.version) == (PacketType.HEADER, 0, None, 2)
    with pytest.raises(BitstreamError, match="expected a header packet, got a unit packet"):
        parse_header(Packet(PacketType.UNIT, 7, 1, 0, packet.payload))
    with pytest.raises(BitstreamError, match=r"header image size 0x96 is out of range"):
        StreamHeader("spinr", dict(NON_DEFAULT_ARCHS["spinr"]), 0, 96)


@pytest.mark.parametrize("model", ["siren", "spinr"])
def test_positional_encoding_costs_nothing_when_off(model: str) -> None:
    """The encoding's fields are flag bits: off, the record is byte for byte the one without them (so
    streams made before the option existed read the same); on at the default scale, one varint."""
    base = {"width": 24, "hidden_layers": 3, "first_omega_0": 30.0, "hidden_omega_0": 30.0}
    if model == "spinr":
        base.update(head="per_stage", residual=True)
    off = write_arch(model, {**base, "pe_frequencies": 0, "pe_scale": 1.4})
    assert off == write_arch(model, base)
    on = write_arch(model, {**base, "pe_frequencies": 10, "pe_scale": 1.4})
    assert len(on) == len(off) + 1
    back = read_arch(model, Reader(on, "record"))
    assert back["pe_frequencies"] == 10 and back["pe_scale"] == 1.4
    # a decoder refuses an encoding it cannot compute, by name
    from codec.arch import decoder_for
    from codec.errors import BitstreamError

    with pytest.raises(BitstreamError, match="pe_frequencies 33 is out of range"):
        decoder_for(model, {**back, "pe_frequencies": 33})
    with pytest.raises(BitstreamError, match="pe_scale 1.0 is out of range"):
        decoder_for(model, {**back, "pe_scale": 1.0})

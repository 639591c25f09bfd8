"""Format v1 still decodes: the committed v1 corpus (tests/data/v1, written by the v1 encoder) decodes to
the pictures the v1 decoder made, v1 streams are re-sent as they came, and the v1 parsers refuse what
they always refused (docs/FORMAT.md, "Appendix: format version 1")."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zstandard
from _bitstreams import zstd_bomb
from _v1 import make_v1_file, raw_v1_packet, v1_file, v1_header, v1_layers, v1_records, v1_tensor

from codec.bitstream import load_bitstream
from codec.decoder import ProgressiveDecoder
from codec.describe import describe_stream
from codec.errors import BitstreamError
from codec.header import parse_v1_header_payload
from codec.image import load_image
from codec.mpack import MAX_ITEMS
from codec.v1.payload import MAX_DECOMPRESSED, decode_payload, encode_payload
from codec.v1.quant import MAX_TENSOR_ELEMENTS, QuantizedTensor, pack_bits, unpack_bits

CORPUS = Path(__file__).parent / "data" / "v1"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_v1_corpus_decodes_as_the_v1_decoder_did(name: str) -> None:
    info = MANIFEST[name]
    data = (CORPUS / f"{name}.spnr").read_bytes()
    assert data[0] == 0 and len(data) == info["bytes"]  # a v1 file: a u32 record length first
    bs, damaged = load_bitstream(data)
    assert damaged == [] and bs.version == 1 and bs.header.model == info["model"]
    assert bs.header.arch == info["arch"] and bs.header.num_units == info["units"]
    assert bs.to_bytes() == data  # re-sent exactly as it came
    dec = ProgressiveDecoder.from_bitstream(bs)
    assert dec.depths == info["depths"]
    for depth, digest in enumerate(info["rgb_sha256"]):
        rgb = dec.decode(depth=depth + 1).rgb  # dK.png: the first K + 1 stages (0-based names)
        want = load_image(CORPUS / f"{name}.d{depth}.png")
        # Same weights, same forward: equal on this machine; another libm may move a code by one.
        diff = np.abs(rgb.astype(int) - want.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01
        if hashlib.sha256(want.tobytes()).hexdigest() == digest:
            assert hashlib.sha256(rgb.tobytes()).hexdigest() == digest or diff.max() == 1


def test_v1_describe_keeps_its_quant() -> None:
    bs, _ = load_bitstream((CORPUS / "spinr-per-stage.spnr").read_bytes())
    info = describe_stream(bs)
    assert info["format"] == 1 and info["quant"] == {"bits": 6, "per_channel": True}
    assert info["stream_id"].startswith("0x") and len(info["stream_id"]) == 10
    assert info["bytes"] == MANIFEST["spinr-per-stage"]["bytes"]
    assert all(u["steps"] is None for u in info["units"])


def test_v1_file_lenient_and_record_errors() -> None:
    records = v1_records(v1_header(), v1_layers(v1_header()))
    bad = bytearray(records[2])
    bad[-3] ^= 0x40
    damaged_file = v1_file(records[0], records[1], bytes(bad), *records[3:])
    bs, damaged = load_bitstream(damaged_file, strict=False)
    assert bs.missing() == [1] and len(damaged) == 1 and damaged[0].startswith("record 2 at offset")
    with pytest.raises(BitstreamError, match="record 2 at offset .*: bad CRC in packet seq 2"):
        load_bitstream(damaged_file)
    data = v1_file(*records)
    for n in (1, 3, 5, len(data) - 1):
        with pytest.raises(BitstreamError, match="file truncated|has length"):
            load_bitstream(data[:n], strict=False)
    with pytest.raises(
        BitstreamError, match="record 0 at offset 0 has length 33554431, outside 24..16777240"
    ):
        load_bitstream(b"\x01\xff\xff\xff" + data[4:])


def test_v1_and_v2_packets_do_not_mix() -> None:
    from _bitstreams import make_stream

    v2 = make_stream().packets()[1].to_bytes()
    records = v1_records(v1_header(), v1_layers(v1_header()))
    with pytest.raises(BitstreamError, match="record 1 at offset .* has length 41 but its packet says"):
        load_bitstream(v1_file(records[0], v2))  # a v2 packet in a v1 record does not even frame
    assert load_bitstream(make_v1_file())[0].version == 1


# -- v1 payloads ---------------------------------------------------------------------------------


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
        (_zstd(msgpack.packb({1: 2})), "payload is not valid msgpack"),
        (_zstd(msgpack.packb({"a": 1}) + b"\x01"), "payload is not valid msgpack: ExtraData"),
        (_zstd(b"\xc1"), "payload is not valid msgpack"),
        (_zstd(msgpack.packb({"a": msgpack.ExtType(1, b"x")})), "payload is not valid msgpack"),
    ],
)
def test_decode_payload_rejects(data: bytes, match: str) -> None:
    with pytest.raises(BitstreamError, match=match):
        decode_payload(data)


def test_decode_payload_bounds() -> None:
    raw = msgpack.packb({"x": [[[] for _ in range(2**15)] for _ in range(16)]})
    with pytest.raises(BitstreamError, match=f"more than {MAX_ITEMS} array elements"):
        decode_payload(_zstd(raw))
    with pytest.raises(BitstreamError, match=f"more than MAX_DECOMPRESSED {MAX_DECOMPRESSED}"):
        decode_payload(zstd_bomb())


# -- v1 header -----------------------------------------------------------------------------------


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
        ("model", "Bad-Name", r"header model 'Bad-Name' is not an identifier matching \[a-z0-9_\]\{1,32\}"),
        ("model", "nope", "model 'nope' is not known to this decoder"),
        ("arch", [1], "header arch must be a map"),
        (
            "arch.width",
            {"nested": 1},
            "header arch 'width' must be an int, float, str, bool or a list of them",
        ),
        ("arch.width", 0, r"header arch field 'width' is 0; expected int in 1..4096"),
        ("arch.width", 9, r"header unit 0 is 'input' with weight\[8, 2\], bias\[8\]; siren \(width 9"),
        ("image.width", 0, "header image width 0 is out of range 1..65535"),
        ("image.depth", 3, r"header image has missing keys \[\] / unexpected keys \['depth'\]"),
        ("coords", "corner", "header coords 'corner' not supported: expected 'center'"),
        ("output", "01", "header output '01' not supported: expected 'pm1'"),
        ("quant.bits", 17, "header quant bits 17 is out of range 2..16"),
        ("quant.per_channel", 1, "header quant per_channel must be a bool"),
        ("units", [], "header units must be a list of 1..1024 entries, got 0"),
        ("units.0.tensors.0", ["weight"], r"tensor entry \['weight'\] is not \[name, shape\]"),
        ("units.0.tensors.0", ["weight", [2**16, 2**16]], "has more than 16777216 elements"),
        ("units.0.tensors.0", ["bias", [8, 2]], "header unit 'input' repeats a tensor name"),
        ("stage_psnr", ["x"], "header stage_psnr must hold numbers"),
        ("meta", [], "header meta must be a map, got list"),
        ("version", 1, r"unexpected keys \['version'\]"),
    ],
)
def test_v1_header_rejects(path: str, value: object, match: str) -> None:
    header = copy.deepcopy(v1_header())
    _set(header, path, value)
    with pytest.raises(BitstreamError, match=match):
        parse_v1_header_payload(encode_payload(header))


def test_v1_header_optional_keys_default() -> None:
    header = v1_header()
    del header["stage_psnr"], header["meta"]
    back = parse_v1_header_payload(encode_payload(header))
    assert back.stage_psnr == [] and back.meta == {} and back.version == 1


# -- v1 layers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        ({"unit": 1}, r"layer payload has missing keys \['tensors'\]"),
        ({"unit": 9, "tensors": []}, "layer payload unit index 9 is out of range 0..3"),
        ({"unit": 2, "tensors": []}, "layer payload is unit 2 but its packet says layer 1"),
        ({"unit": 1, "tensors": []}, r"unit 1 \(hidden.1\) must carry 2 tensors as the header says, got 0"),
    ],
)
def test_v1_layer_payload_rejects(layer: dict, match: str) -> None:
    header = v1_header()
    records = v1_records(header, [])
    bad = raw_v1_packet(encode_payload(layer), layer=1, seq=2)
    with pytest.raises(BitstreamError, match=match):
        load_bitstream(v1_file(records[0], bad))


def test_v1_layer_shape_must_match() -> None:
    header = v1_header()
    layers = v1_layers(header)
    layers[1]["tensors"][0] = v1_tensor("weight", np.zeros((8, 7), np.float32))
    with pytest.raises(
        BitstreamError, match=r"tensor 'weight' has shape \[8, 7\] but the header says \[8, 8\]"
    ):
        load_bitstream(v1_file(*v1_records(header, layers)))


@pytest.mark.parametrize("bits", range(2, 17))
def test_pack_unpack_round_trip(bits: int) -> None:
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    for count in (0, 1, 3, 7, 8, 9, 1001):
        codes = rng.integers(0, top + 1, size=count).astype(np.uint32)
        data = pack_bits(codes, bits)
        assert len(data) == (count * bits + 7) // 8
        assert np.array_equal(unpack_bits(data, bits, count), codes)


def test_msb_first_layout_and_unpack_errors() -> None:
    assert pack_bits(np.array([5, 1, 7], np.uint32), 3) == bytes([0b10100111, 0b10000000])
    assert unpack_bits(b"\xab\xc1\x23", 12, 2).tolist() == [0xABC, 0x123]
    with pytest.raises(BitstreamError, match="packed data for 3 codes of 5 bits needs 2 bytes, got 3"):
        unpack_bits(b"\0\0\0", 5, 3)
    with pytest.raises(BitstreamError, match=r"nonzero padding bits in its last byte \(0x01\)"):
        unpack_bits(b"\x00\x01", 5, 3)


def _good() -> dict:
    return v1_tensor("weight", np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), 8, True)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"bits": None}, r"missing keys \['bits'\]"),
        ({"name": "bias"}, "tensor name 'bias' does not match the header's 'weight'"),
        ({"shape": [3, 4]}, r"tensor 'weight' has shape \[3, 4\] but the header says \[4, 3\]"),
        ({"bits": 17}, "bits 17 is out of range 2..16"),
        ({"axis": 1}, "axis 1 is not null or 0"),
        ({"scale": b"\0" * 4}, r"scale needs 4 float32 \(16 bytes\), got 4 bytes"),
        ({"scale": np.array([1, 0, 1, 1], "<f4").tobytes()}, "scale must be > 0"),
        ({"data": b"\0" * 11}, "needs 12 bytes, got 11"),
    ],
)
def test_v1_tensor_rejects(change: dict, match: str) -> None:
    d = _good()
    for key, value in change.items():
        if value is None:
            del d[key]
        else:
            d[key] = value
    with pytest.raises(BitstreamError, match=match):
        QuantizedTensor.from_dict(d, "weight", (4, 3))
    d = _good() | {"shape": [2**13, 2**12], "axis": None, "scale": b"\0\0\x80?", "offset": b"\0" * 4}
    with pytest.raises(BitstreamError, match=f"more than {MAX_TENSOR_ELEMENTS} elements"):
        QuantizedTensor.from_dict(d)

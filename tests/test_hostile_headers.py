"""Headers a hostile encoder could write: deep nesting (issue 11, item 6) and non-finite or non-JSON
values (item 7), in the v1 reader's msgpack header and in v2's encoder-meta extension and arch record.
Every one is a BitstreamError with a short message; ``spinr info --json`` prints valid JSON for every
header that parses."""

from __future__ import annotations

import copy
import json
import math
import struct
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard
from _bitstreams import make_stream, raw_packet
from _v1 import v1_file, v1_header, v1_layers, v1_records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.cli import main
from codec.bitstream import load_bitstream
from codec.describe import describe_stream
from codec.errors import BitstreamError, brief
from codec.header import EXT_META, StreamHeader, parse_header_payload
from codec.mpack import MAX_DEPTH, check_depth
from codec.v1.header import V1Header
from codec.v1.payload import decode_payload, encode_payload
from codec.varint import uvarint

SID = 0x5EED


def nested(depth: int, leaf: Any = 1) -> Any:
    """``depth`` levels of maps and lists around ``leaf``."""
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def spnr_with_header(payload: dict[str, Any]) -> bytes:
    """A CRC-valid v1 file whose header packet carries ``payload`` as is (no encoder-side check)."""
    return v1_file(*v1_records(payload, v1_layers(v1_header())))


def header_payload(**changes: Any) -> dict[str, Any]:
    """A valid v1 header map with ``changes``."""
    payload = copy.deepcopy(v1_header())
    payload.update(changes)
    return payload


def v2_with_meta(raw: bytes) -> bytes:
    """A CRC-valid v2 file whose header carries ``raw`` as its encoder-meta extension (no encoder check)."""
    bs = make_stream()
    payload = StreamHeader("siren", bs.header.arch, 12, 9, [21.5]).to_payload()
    payload += bytes([EXT_META]) + uvarint(len(raw)) + raw
    header = raw_packet(payload, ptype=0, unit=None, seq=0, stream_id=bs.stream_id)
    return header + b"".join(p.to_bytes() for p in bs.packets()[1:])


# -- item 6: nesting ----------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 200, 1000, 1023])
def test_deeply_nested_payload_is_refused_with_a_short_message(depth: int) -> None:
    raw = msgpack.packb({"meta": nested(depth - 1)}, use_bin_type=True)
    data = zstandard.ZstdCompressor(write_content_size=True).compress(raw)
    with pytest.raises(
        BitstreamError, match=f"payload nests lists and maps more than {MAX_DEPTH} deep"
    ) as info:
        decode_payload(data)
    assert len(str(info.value)) < 200


def test_nesting_deeper_than_msgpack_itself_allows_is_refused() -> None:
    raw = b"\x91" * 5000 + b"\x90"  # 5000 one-element arrays
    data = zstandard.ZstdCompressor(write_content_size=True).compress(raw)
    with pytest.raises(BitstreamError, match="payload is not valid msgpack"):
        decode_payload(data)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    obj = {"a": nested(MAX_DEPTH - 1)}
    check_depth(obj, MAX_DEPTH, "x")
    assert decode_payload(encode_payload(obj)) == obj
    with pytest.raises(BitstreamError, match="x nests lists and maps more than 16 deep"):
        check_depth({"a": obj}, MAX_DEPTH, "x")


def test_check_depth_is_iterative_on_a_tree_deeper_than_the_recursion_limit() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(BitstreamError, match="more than 32 deep"):
        check_depth(deep, 32, "message")


@pytest.mark.parametrize("version", [2, 1])
def test_meta_nested_1000_deep_in_a_real_file(
    version: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.spnr"
    meta = {"x": nested(1000)}
    if version == 1:
        path.write_bytes(spnr_with_header(header_payload(meta=meta)))
    else:  # msgpack's packer stops at 512 levels: pack the nesting by hand
        path.write_bytes(v2_with_meta(b"\x81\xa1x" + b"\x91" * 1000 + b"\x01"))
    with pytest.raises(BitstreamError, match="nests lists and maps more than 16 deep"):
        load_bitstream(path.read_bytes())
    for argv in (["info", str(path), "--json"], ["decode", str(path), "-o", str(tmp_path / "o.png")]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "more than 16 deep" in err and len(err) < 300


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("name", "n" * 2**20, "tensor name 'nnnn"),
        ("shape", ["s" * 2**20], "shape ['ssss"),
        ("shape", [nested(12)], "shape ["),
        ("bits", "b" * 2**20, "bits 'bbbb"),
        ("axis", [[[[[[1]]]]]], "axis [[[[...]]]]"),
    ],
)
def test_messages_about_huge_or_nested_values_stay_short(field: str, value: Any, needle: str) -> None:
    header = v1_header()
    layers = v1_layers(header)
    layers[0]["tensors"][0][field] = value
    data = v1_file(*v1_records(header, layers[:1]))
    with pytest.raises(BitstreamError) as info:
        load_bitstream(data)
    assert needle in str(info.value) and len(str(info.value)) < 300


def test_brief_bounds_any_value() -> None:
    assert brief("x" * 10**6).startswith("'xxx") and len(brief("x" * 10**6)) <= 80
    assert brief(nested(5000)) == "[{'k': [{...}]}]"
    assert brief(list(range(10**5))).endswith("...]")
    assert brief({"a": 1}) == "{'a': 1}"


# -- item 7: non-finite and non-JSON values -----------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("where", "needle"),
    [
        ("stage_psnr", "header stage_psnr[1] is {}"),
        ("arch", "header arch 'first_omega_0' is {}"),
        ("arch_list", "header arch 'omegas' is {}"),
        ("meta", "header meta.train[0].lr is {}"),
    ],
)
def test_non_finite_numbers_anywhere_in_the_header_are_refused(bad: float, where: str, needle: str) -> None:
    payload = header_payload()
    if where == "stage_psnr":
        payload["stage_psnr"] = [20.0, bad]
    elif where == "arch":
        payload["arch"]["first_omega_0"] = bad
    elif where == "arch_list":
        payload["arch"]["omegas"] = [30.0, bad]
    else:
        payload["meta"] = {"train": [{"lr": bad}]}
    with pytest.raises(BitstreamError, match="numbers in a header must be finite") as info:
        V1Header.from_payload(payload)
    assert needle.format(bad) in str(info.value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_v2_meta_and_arch_refuse_non_finite_numbers(bad: float) -> None:
    raw = msgpack.packb({"train": [{"lr": bad}]})
    with pytest.raises(BitstreamError, match="header meta.train\\[0\\].lr is .*must be finite"):
        load_bitstream(v2_with_meta(raw))
    # The arch record's floats are float64 bytes: a non-finite one is out of every field's range.
    payload = bytearray(StreamHeader("siren", make_stream().header.arch, 12, 9).to_payload())
    payload[3] |= 1  # first_omega_0 flagged: its float64 follows width and hidden layers
    payload[6:6] = struct.pack(">d", bad)
    with pytest.raises(BitstreamError, match="first_omega_0"):
        parse_header_payload(bytes(payload))


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ({b"key": 1}, "header meta has a key b'key' that is not a string"),
        ({"blob": b"\xff\xfe"}, "header meta.blob is bytes"),
        ({"a": {"b": [1, {b"k": 3}]}}, "header meta.a.b[1] has a key b'k'"),
    ],
)
def test_meta_must_be_json_shaped(meta: dict[Any, Any], needle: str) -> None:
    data = encode_payload(header_payload(meta=meta))
    with pytest.raises(BitstreamError) as info:
        V1Header.from_payload(decode_payload(data))
    assert needle in str(info.value)
    with pytest.raises(BitstreamError) as info:  # v2's encoder-meta extension, the same rules
        load_bitstream(v2_with_meta(msgpack.packb(meta, use_bin_type=True)))
    assert needle in str(info.value)


def test_arch_strings_and_lists_are_bounded() -> None:
    with pytest.raises(BitstreamError, match="header arch 'head' value must be a string of 1..64"):
        V1Header.from_payload(header_payload(arch={"head": "h" * 65}))
    with pytest.raises(BitstreamError, match=r"or a list of them \(at most 1024\)"):
        V1Header.from_payload(header_payload(arch={"widths": [8] * 1025}))


def test_info_json_shows_every_kind_of_meta_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = {
        "s": "é",
        "i": -(2**63),
        "u": 2**64 - 1,
        "f": 1e308,
        "b": True,
        "n": None,
        "l": [1, [2.5]],
        "m": {},
    }
    path = tmp_path / "ok.spnr"
    path.write_bytes(spnr_with_header(header_payload(meta=meta, stage_psnr=[1e-300, 99.5])))
    capsys.readouterr()
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["meta"] == meta and info["stage_psnr"] == [1e-300, 99.5]
    path.write_bytes(v2_with_meta(msgpack.packb(meta)))
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == 2 and info["meta"] == meta and info["stage_psnr"] == [21.5]


# Hostile values for the free-form parts of a header: what msgpack can carry.
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=8),
)
TREES = st.recursive(
    LEAVES,
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.binary(max_size=2), kids, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(meta=TREES, stage_psnr=TREES, arch_value=TREES)
def test_any_header_that_parses_describes_as_strict_json(meta: Any, stage_psnr: Any, arch_value: Any) -> None:
    payload = header_payload(meta=meta, stage_psnr=stage_psnr)
    payload["arch"]["first_omega_0"] = arch_value
    try:
        encode_payload(payload)
        raw_meta = msgpack.packb(meta, use_bin_type=True)
    except (ValueError, TypeError, OverflowError):
        return  # msgpack cannot carry it (e.g. a map key it refuses): no file can hold it either
    for data_of in (lambda: spnr_with_header(payload), lambda: v2_with_meta(raw_meta)):
        try:
            bs, _ = load_bitstream(data_of())
        except BitstreamError as exc:
            assert len(str(exc)) < 400
            continue
        json.dumps(describe_stream(bs), allow_nan=False)  # what `spinr info --json` and the API print


# -- JSON messages from the network (the WebSocket start message; the server's done message) -----
@pytest.mark.parametrize("depth", [9, 1000, 100_000])
def test_deep_json_message_is_a_session_error(depth: int) -> None:
    from streaming.session import MAX_MESSAGE_DEPTH, SessionError, load_message

    text = '{"type": "start", "channel": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(SessionError, match=f"nests lists and .* more than {MAX_MESSAGE_DEPTH} deep") as info:
        load_message(text, "start message")
    assert len(str(info.value)) < 120


def test_json_message_within_bounds_and_invalid_json() -> None:
    from streaming.session import SessionError, load_message

    start = {"type": "start", "channel": {"loss": 0.1}, "have": [0, 1]}
    assert load_message(json.dumps(start)) == start
    with pytest.raises(SessionError, match="the start message is not valid JSON"):
        load_message("{", "start message")


def test_cli_client_refuses_a_hostile_server_answer_in_one_error() -> None:
    from types import SimpleNamespace

    from client.remote import ServerError, check

    ok = SimpleNamespace(status_code=200, text='{"id": "abc"}', headers={})
    assert check(ok, "upload") == {"id": "abc"}
    for text, needle in (("[" * 100_000 + "]" * 100_000, "more than 8 deep"), ("<html>", "not valid JSON")):
        with pytest.raises(ServerError, match=f"upload: .*{needle}"):
            check(SimpleNamespace(status_code=200, text=text, headers={}), "upload")

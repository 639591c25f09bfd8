"""The browser decoder's errors in a real headless Chromium: corrupted v2 packets are reported (never
thrown, never a crash) with the documented message, which is the Python decoder's message word for word
for every truncation length and random bit flips; damaged files and hostile headers fail cleanly; the
v1 payload parser keeps its strictness."""

from __future__ import annotations

import json
import struct
from typing import Any

import msgpack
import numpy as np
import pytest
import zstandard
from _bitstreams import raw_packet
from _browser import b64, load
from _v1 import raw_v1_packet, v1_header
from test_browser_decoder import build_stream

from codec.decoder import ProgressiveDecoder
from codec.header import EXT_INIT, EXT_LADDER, StreamHeader
from codec.packets import Packet, PacketType
from codec.v1.payload import encode_payload
from codec.v1.quant import pack_bits

pytestmark = pytest.mark.browser
SID = 0xC0DE


def _js_statuses(page: Any, header: bytes, cases: dict[str, bytes]) -> dict[str, Any]:
    """For each case a fresh decoder that holds ``header``: the status of adding the case's bytes, and
    what parsePacket + parseUnit throw for them."""
    return page.evaluate(
        """([hp, cases]) => {
          const L = window.spnrLib;
          const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
          const out = {};
          for (const [name, b] of Object.entries(cases)) {
            const dec = new L.ProgressiveDecoder();
            dec.addPacket(bytes(hp));
            const st = dec.addPacket(bytes(b));
            let thrown = null;
            try { L.parseUnit(L.parsePacket(bytes(b)), dec.header); }
            catch (e) { thrown = {name: e.name, isSpnr: e instanceof L.SpnrError, message: e.message}; }
            out[name] = {st, thrown, avail: dec.available()};
          }
          return out;
        }""",
        [b64(header), {k: b64(v) for k, v in cases.items()}],
    )


def _py_status(header: bytes, data: bytes) -> tuple[bool, str | None]:
    dec = ProgressiveDecoder()
    dec.add_packet(header)
    st = dec.add_packet(data)
    return st.accepted, st.error


def _reseal(head_and_payload: bytes, crc_at: int) -> bytes:
    """A packet with its CRC recomputed after an edit (so the edit reaches the payload checks)."""
    head, payload = head_and_payload[:crc_at], head_and_payload[crc_at + 4 :]
    import zlib

    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


def corruptions(packets: list[bytes]) -> dict[str, tuple[bytes, str]]:
    up = packets[1]
    head = Packet.peek(up)
    payload = Packet.parse(up).payload
    flip = bytearray(up)
    flip[head.head_length + 3] ^= 0x10
    steps0 = bytearray(payload)
    steps0[0:2] = b"\x00\x00"
    tail = bytearray(payload)
    tail[-1] ^= 0x01 if tail[-1] != 0x01 else 0x03
    return {
        "bad crc": (bytes(flip), "bad CRC in packet seq 1"),
        "truncated": (up[:-5], "packet truncated: payload needs"),
        "wrong magic": (b"T" + up[1:], "bad magic 0x54: expected 0x53 ('S')"),
        "short header": (up[:5], "packet is truncated: unit missing at byte 5"),
        "trailing bytes": (up + b"\0", "1 trailing bytes"),
        "bad version": (raw_packet(b"x", version=3, stream_id=SID), "unsupported packet version 3"),
        "bad ptype": (raw_packet(b"x", ptype=7, stream_id=SID), "unknown packet type 7"),
        "refinement": (
            raw_packet(b"\x09\0", ptype=2, level=1, unit=0, seq=9, stream_id=SID),
            "refinement 1 of unit 0 (input) has shift 9: allowed 0 (direct) or 1..8 bits",
        ),
        "zero step": (
            raw_packet(bytes(steps0), stream_id=SID),
            "unit 0 (input) tensor 'weight' has step bits 0x0000",
        ),
        "short steps": (
            raw_packet(b"\x3d", stream_id=SID),
            "unit 0 (input) payload has 1 bytes; its 2 steps alone need 4",
        ),
        "coded tail": (raw_packet(bytes(tail), stream_id=SID), "unit 0 (input): entropy-coded data"),
        "unit beyond": (
            raw_packet(payload, unit=99, stream_id=SID),
            "unit packet for unit 99, but the header has 5 units",
        ),
        "v1 packet": (
            raw_v1_packet(b"x", stream_id=SID),
            "unit packet seq 1 is version 1, its header version 2",
        ),
    }


def test_corrupted_packets_are_reported_not_thrown(page: Any) -> None:
    _, packets, _ = build_stream(model="siren", width=8, hidden=3, size=(6, 5), stream_id=SID)
    cases = corruptions(packets)
    res = _js_statuses(page, packets[0], {k: v[0] for k, v in cases.items()})
    for name, (data, message) in cases.items():
        r = res[name]
        assert r["st"]["accepted"] is False, name
        assert message in r["st"]["error"], (name, r["st"]["error"])
        assert r["thrown"] and r["thrown"]["isSpnr"] and r["thrown"]["name"] == "SpnrError", (
            name,
            r["thrown"],
        )
        assert r["avail"] == []
        assert _py_status(packets[0], data) == (False, r["st"]["error"]), (
            name
        )  # the Python decoder says the same


def test_every_truncation_and_bit_flip_matches_python(page: Any) -> None:
    """Each truncation length and 300 random single-bit flips of a v2 unit packet: the browser accepts
    or refuses exactly as the Python decoder does, with the same message."""
    _, packets, _ = build_stream(
        model="spinr", head="per_stage", width=6, hidden=2, size=(5, 4), stream_id=SID
    )
    up = packets[2]
    cases = {f"cut {n}": up[:n] for n in range(len(up))}
    rng = np.random.default_rng(11)
    for bit in rng.choice(len(up) * 8, size=min(300, len(up) * 8), replace=False):
        bad = bytearray(up)
        bad[bit // 8] ^= 0x80 >> (bit % 8)
        cases[f"flip {bit}"] = bytes(bad)
    # flips behind a recomputed CRC reach the step and entropy checks
    head_len = Packet.peek(up).head_length
    for bit in rng.choice((len(up) - head_len) * 8, size=60, replace=False):
        bad = bytearray(up)
        bad[head_len + bit // 8] ^= 0x80 >> (bit % 8)
        cases[f"sealed flip {bit}"] = _reseal(bytes(bad), head_len - 4)
    res = _js_statuses(page, packets[0], cases)
    refused = 0
    for name, data in cases.items():
        want = _py_status(packets[0], data)
        got = (res[name]["st"]["accepted"], res[name]["st"]["error"])
        assert got == want, (name, got, want)
        refused += not got[0]
    assert refused >= len(up) + 300  # every cut and every unsealed flip is refused


def test_corrupted_files_fail_cleanly(browser: Any, served: Any) -> None:
    data, packets, _ = build_stream(model="siren", width=8, hidden=1, size=(6, 5))
    res = load(browser, served, "trunc.spnr", data[:-3], "&nogl=1")
    assert res["ok"] is False and res["errorName"] == "SpnrError"
    assert f"packet 3 at offset {len(data) - len(packets[3])}: packet truncated" in res["error"], res["error"]
    res = load(browser, served, "png.spnr", b"\x89PNG" + data, "&nogl=1")
    assert "not a spinr file: first byte 0x89" in res["error"]
    res = load(browser, served, "badhdr.spnr", b"\x53\x30" + data[2:], "&nogl=1")
    assert "header packet (at offset 0) is damaged: unsupported packet version 3" in res["error"]
    # a damaged unit packet with its framing intact: the rest still decodes
    up = bytearray(packets[2])
    up[-1] ^= 0xFF
    res = load(
        browser, served, "badunit.spnr", b"".join([packets[0], packets[1], bytes(up), packets[3]]), "&nogl=1"
    )
    assert res["ok"], res["error"]
    assert [s["accepted"] for s in res["statuses"]] == [True, True, False, True]
    assert "bad CRC in packet seq 2" in res["statuses"][2]["error"]
    assert res["progressive"] == []  # siren needs every unit


def test_header_validation_messages(page: Any) -> None:
    _, packets, bs = build_stream(model="spinr", head="shared", width=8, hidden=2, size=(5, 5))
    good = bs.header.to_payload()

    def hp(payload: bytes) -> bytes:
        return Packet(PacketType.HEADER, SID, 0, None, payload).to_bytes()

    def v1(**changes: Any) -> bytes:
        h = v1_header(8, 2) | changes
        return raw_v1_packet(encode_payload(h), ptype=0, layer=0xFFFF, seq=0, stream_id=SID)

    wire = StreamHeader("wire", {"width": 4, "hidden_layers": 1, "omega_0": 20.0, "scale_0": 10.0}, 5, 5)
    cases = {
        "model id": (
            hp(bytes([9]) + good[1:]),
            "model id 9 is not known to this decoder; known: 0 siren, 1 spinr",
        ),
        "model not here": (  # only a v1 header can name a model outside the id table
            v1(model="nerf"),
            'model "nerf" is not supported by this decoder; supported: spinr, siren, fourier, mfn, wire, diner',
        ),
        "width 0": (hp(good[:1] + b"\x00" + good[2:]), "image width 0 (byte 1) is out of range 1..65535"),
        "flags": (
            hp(good[:3] + b"\x40" + good[4:]),
            "spinr arch flags 0x40 set bits beyond the 6 this decoder knows",
        ),
        "truncated": (
            hp(good[:4]),
            "header payload is truncated: spinr arch field 'width' missing at byte 4",
        ),
        "psnr count": (hp(good[:7] + b"\x09"), "header payload is truncated: stage PSNR 0 missing at byte 8"),
        "arch range": (
            hp(good[:4] + b"\x00" + good[5:]),
            "header arch field 'width' is 0; expected int in 1..4096",
        ),
        "critical": (
            hp(good + bytes([0xC5, 1, 0])),
            "header extension 0xc5 (unknown) is critical and this decoder does not support it",
        ),
        "θ0 hash length": (
            hp(good + bytes([EXT_INIT, 1, 0])),
            "header extension 0x83 (shared initialisation θ0) has 1 bytes; a θ0 hash has 8",
        ),
        "ext length": (
            hp(good + bytes([EXT_LADDER, 9])),
            "header extension 0x02 (rate-quality ladder) declares 9 bytes",
        ),
        "ext twice": (hp(good + bytes([EXT_LADDER, 0, EXT_LADDER, 0])), "appears twice"),
        "v1 unit layout": (
            v1(arch={**v1_header(8, 2)["arch"], "width": 9}),
            'header unit 0 is "input" with weight[8,2], bias[8]',
        ),
        "v1 format": (v1(format=2), "unsupported header format 2: expected 1"),
        "v1 bits": (v1(quant={"bits": 1, "per_channel": False}), "header quant bits 1 is out of range 2..16"),
    }
    res = page.evaluate(
        """(cases) => Object.fromEntries(Object.entries(cases).map(([k, b]) => {
             const dec = new window.spnrLib.ProgressiveDecoder();
             return [k, dec.addPacket(Uint8Array.from(atob(b), (c) => c.charCodeAt(0)))];
           }))""",
        {k: b64(v[0]) for k, v in cases.items()},
    )
    for k, (_, msg) in cases.items():
        assert res[k]["accepted"] is False, k
        assert msg in res[k]["error"], (k, res[k]["error"])
    for payload in (good + bytes([0x7E, 2, 7, 7]), wire.to_payload()):
        ok = page.evaluate(
            "(b) => new window.spnrLib.ProgressiveDecoder().addPacket(Uint8Array.from(atob(b), (c) => c.charCodeAt(0)))",
            b64(hp(payload)),
        )
        # an optional extension the decoder does not read is skipped; every registered family decodes
        assert ok["accepted"] is True, ok


def test_v1_payload_zstd_and_msgpack_strictness(page: Any) -> None:
    obj = {
        "a": 1,
        "neg": -5,
        "big": 2**40,
        "f": 1.5,
        "s": "héllo",
        "b": bytes(range(256)) * 3,
        "l": [None, True, False, 0.25, -(2**31)],
        "m": {"x": [1, 2, {"y": b""}]},
        "rnd": np.random.default_rng(0).integers(0, 40, 150_000, dtype=np.uint8).tobytes(),  # > 1 block
    }

    def compress(o: Any, level: int = 19, **kw: Any) -> bytes:
        return zstandard.ZstdCompressor(level=level, write_content_size=True, **kw).compress(
            msgpack.packb(o, use_bin_type=True)
        )

    good = {"level1": compress(obj, 1), "level22": compress(obj, 22), "fast": compress(obj, -5),
            "checksum": compress(obj, 3, write_checksum=True), "tiny": compress({}, 3)}  # fmt: skip
    raw = msgpack.packb

    def frame(b: bytes) -> bytes:
        return zstandard.ZstdCompressor(write_content_size=True).compress(b)

    bad = {
        "truncated msgpack": (frame(raw({"a": "hello"})[:-2]), "msgpack truncated"),
        "unknown type byte": (frame(b"\x81\xa1a\xc1"), "unknown type byte 0xc1"),
        "trailing bytes": (frame(raw({"a": 1}) + b"\x00"), "1 trailing bytes"),
        "int key": (frame(b"\x81\x01\x02"), "map key at offset 1 must be a str"),
        "not a map": (frame(raw([1, 2])), "payload must be a msgpack map"),
        "no content size": (
            zstandard.ZstdCompressor(write_content_size=False).compress(raw({"a": 1})),
            "does not declare",
        ),
        "too big declared": (
            b"\x28\xb5\x2f\xfd\xa0" + struct.pack("<I", 2**30) + b"\x01\x00\x00",
            "more than MAX_DECOMPRESSED",
        ),
        "trailing frame bytes": (frame(raw({"a": 1})) + b"\0", "bytes after its zstd frame"),
    }
    res = page.evaluate(
        """([good, bad]) => {
          const L = window.spnrLib;
          const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const enc = (v) => v instanceof Uint8Array ? {n: v.length, crc: L.crc32(v)}
                          : Array.isArray(v) ? v.map(enc)
                          : typeof v === "bigint" ? {bigint: String(v)}
                          : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, enc(x)]))
                          : v;
          const out = {good: {}, bad: {}};
          for (const [k, b] of Object.entries(good)) {
            try { out.good[k] = enc(L.decodePayload(bytes(b))); } catch (e) { out.good[k] = {error: L.errorText(e)}; }
          }
          for (const [k, b] of Object.entries(bad)) {
            try { L.decodePayload(bytes(b)); out.bad[k] = {error: null}; }
            catch (e) { out.bad[k] = {error: e.message, name: e.name}; }
          }
          return out;
        }""",
        [{k: b64(v) for k, v in good.items()}, {k: b64(v[0]) for k, v in bad.items()}],
    )
    import zlib

    def enc(v: Any) -> Any:
        if isinstance(v, bytes):
            return {"n": len(v), "crc": zlib.crc32(v)}
        if isinstance(v, dict):
            return {k: enc(x) for k, x in v.items()}
        if isinstance(v, list):
            return [enc(x) for x in v]
        return v

    for k in good:
        assert json.loads(json.dumps(res["good"][k])) == json.loads(
            json.dumps(enc({} if k == "tiny" else obj))
        ), k
    for k, (_, msg) in bad.items():
        r = res["bad"][k]
        assert r["error"] is not None and r["name"] == "SpnrError", (k, r)
        assert msg in r["error"], (k, r["error"])


def test_v1_unpack_bits_and_dequantize(page: Any) -> None:
    rng = np.random.default_rng(3)
    cases = []
    for bits in (2, 3, 7, 8, 11, 16):
        codes = rng.integers(0, 1 << bits, 37, dtype=np.uint32)
        cases.append([bits, list(pack_bits(codes, bits)), codes.tolist()])
    res = page.evaluate(
        """(cases) => {
          const L = window.spnrLib;
          const out = cases.map(([bits, data, _]) => Array.from(L.unpackBits(new Uint8Array(data), bits, 37)));
          const errs = [];
          for (const [d, b, n] of [[[0xff], 3, 2], [[1, 2], 8, 3], [[1], 1, 1]]) {
            try { L.unpackBits(new Uint8Array(d), b, n); errs.push(null); } catch (e) { errs.push(e.message); }
          }
          const t = {shape: [2, 3], axis: 0, codes: new Uint32Array([0, 1, 255, 0, 2, 4]),
                     scale: new Float32Array([0.1, 0.5]), offset: new Float32Array([-1, 2])};
          return {out, errs, deq: Array.from(L.dequantize(t))};
        }""",
        cases,
    )
    assert res["out"] == [c[2] for c in cases]
    assert "nonzero padding bits" in res["errs"][0] and "needs 3 bytes, got 2" in res["errs"][1]
    assert "bits 1 is out of range 2..16" in res["errs"][2]
    codes = np.array([[0, 1, 255], [0, 2, 4]], np.float32)
    want = np.array([[-1], [2]], np.float32) + np.array([[0.1], [0.5]], np.float32) * codes
    assert np.array_equal(np.array(res["deq"], np.float32), want.astype(np.float32).ravel())

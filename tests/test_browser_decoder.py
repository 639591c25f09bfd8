"""The browser decoder (client/web/spnr.js, gl.js) in a real headless Chromium, against numpy.

Bitstreams are built here from numpy, msgpack and zstandard alone, straight from docs/FORMAT.md (so
the JS side is checked against the spec, not against the Python reader), plus one stream made by
``codec.bitstream`` to check that the browser reads what the real encoder writes. Files are served by
``http.server`` on 127.0.0.1; Chromium runs headless with SwiftShader so WebGL2 works without a GPU.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

msgpack = pytest.importorskip("msgpack")
zstandard = pytest.importorskip("zstandard")
playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "client" / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
STATS: dict[str, dict[str, float]] = {}

# ---------------------------------------------------------------------------------------------
# Building streams from the spec (numpy + msgpack + zstandard only)

HEADER_FMT = ">4sBBHIHHII"


def packet(
    ptype: int, stream_id: int, seq: int, layer: int, payload: bytes, *, magic=b"SPNR", version=1, flags=1
) -> bytes:
    head = struct.pack(HEADER_FMT, magic, version, ptype, flags, stream_id, seq, layer, len(payload), 0)[:20]
    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


def compress(obj, level: int = 19, **kw) -> bytes:
    raw = msgpack.packb(obj, use_bin_type=True)
    return zstandard.ZstdCompressor(level=level, write_content_size=True, **kw).compress(raw)


def pack_bits(codes: np.ndarray, bits: int) -> bytes:
    flat = codes.reshape(-1).astype(np.uint32)
    bitmat = (flat[:, None] >> np.arange(bits - 1, -1, -1, dtype=np.uint32)) & 1
    return np.packbits(bitmat.astype(np.uint8).reshape(-1)).tobytes()


def quantize(w: np.ndarray, bits: int, per_channel: bool) -> tuple[dict, np.ndarray]:
    """FORMAT.md "Quantization": the tensor map (without name) and the dequantized float32 weights."""
    levels = (1 << bits) - 1
    axis = 0 if per_channel and w.ndim >= 2 else None
    rows = w.reshape(1, -1) if axis is None else w.reshape(w.shape[0], -1)
    lo, hi = rows.min(1).astype(np.float64), rows.max(1).astype(np.float64)
    scale = ((hi - lo) / levels).astype(np.float32)
    scale[hi == lo] = 1.0
    offset = lo.astype(np.float32)
    q = np.clip(np.rint((rows - offset[:, None].astype(np.float64)) / scale[:, None]), 0, levels).astype(
        np.uint32
    )
    deq = (offset[:, None] + scale[:, None] * q.astype(np.float32)).astype(np.float32).reshape(w.shape)
    t = {
        "shape": list(w.shape),
        "bits": bits,
        "axis": axis,
        "scale": scale.astype("<f4").tobytes(),
        "offset": offset.astype("<f4").tobytes(),
        "data": pack_bits(q, bits),
    }
    return t, deq


def unit_layout(model: str, head: str, width: int, hidden: int) -> list[tuple[str, list[tuple[str, tuple]]]]:
    def lin(prefix, o, i):
        return [(f"{prefix}weight", (o, i)), (f"{prefix}bias", (o,))]

    inp, hid, out = lin("", width, 2), lin("", width, width), lin("", 3, width)
    if model == "siren":
        return [("input", inp)] + [(f"hidden.{k}", hid) for k in range(1, hidden + 1)] + [("output", out)]
    if head == "shared":
        return [("input", inp), ("output", out)] + [(f"hidden.{k}", hid) for k in range(1, hidden + 1)]
    return [("stage.0", lin("in_", width, 2) + lin("head_", 3, width))] + [
        (f"stage.{k}", hid + lin("head_", 3, width)) for k in range(1, hidden + 1)
    ]


def build_stream(
    model="spinr",
    head="shared",
    width=24,
    hidden=3,
    bits=8,
    per_channel=False,
    size=(37, 23),
    residual=False,
    seed=0,
    stream_id=0xC0FFEE,
):
    """Random SIREN-initialised weights -> (file bytes, list of packet bytes, dequantized params, header)."""
    rng = np.random.default_rng(seed)
    layout = unit_layout(model, head, width, hidden)
    arch = {"width": width, "hidden_layers": hidden, "first_omega_0": 30.0, "hidden_omega_0": 30.0}
    if model == "spinr":
        arch.update(head=head, residual=residual)
    header = {
        "format": 1,
        "model": model,
        "arch": arch,
        "image": {"width": size[0], "height": size[1]},
        "coords": "center",
        "output": "pm1",
        "quant": {"bits": bits, "per_channel": per_channel},
        "units": [{"name": n, "tensors": [[t, list(s)] for t, s in ts]} for n, ts in layout],
        "stage_psnr": [20.0 + k for k in range(hidden + 1)],
        "meta": {"encoder": "test_browser_decoder"},
    }
    packets = [packet(0, stream_id, 0, 0xFFFF, compress(header))]
    params: list[dict[str, np.ndarray]] = []
    for index, (uname, tensors) in enumerate(layout):
        tmaps, deq = [], {}
        for tname, shape in tensors:
            first = uname == "input" or tname.startswith("in_")
            readout = uname == "output" or tname.startswith("head_")
            fan_in = 2 if first else width
            if first:
                bound = 1.0 / fan_in
            elif readout:  # large enough that the picture spans the whole [-1, 1] range (and clips)
                bound = 0.5 * np.sqrt(6.0 / fan_in)
            else:
                bound = np.sqrt(6.0 / fan_in) / 30.0 * (0.3 if residual else 1.0)
            w = rng.uniform(-bound, bound, shape).astype(np.float32)
            t, deq[tname] = quantize(w, bits, per_channel)
            tmaps.append({"name": tname, **t})
        params.append(deq)
        packets.append(packet(1, stream_id, index + 1, index, compress({"unit": index, "tensors": tmaps})))
    data = b"".join(struct.pack(">I", len(p)) + p for p in packets)
    return data, packets, params, header


# ---------------------------------------------------------------------------------------------
# numpy reference forward (FORMAT.md "Decoding")


def grid(w: int, h: int) -> np.ndarray:
    xs = ((2.0 * np.arange(w) + 1.0) / w - 1.0).astype(np.float32)
    ys = ((2.0 * np.arange(h) + 1.0) / h - 1.0).astype(np.float32)
    return np.stack(np.broadcast_arrays(xs[None, :], ys[:, None]), -1).reshape(-1, 2).astype(np.float32)


def reference(header: dict, params: list[dict], depth: int | None, w: int, h: int) -> np.ndarray:
    """uint8 (h, w, 3) for the prefix of ``depth`` stages (1..H+1; None: all)."""
    a = header["arch"]
    w0f, w0 = np.float32(a["first_omega_0"]), np.float32(a["hidden_omega_0"])
    H = a["hidden_layers"]
    depth = H if depth is None else depth - 1  # hidden layers used

    def sine(x, p, wn, bn, omega):
        return np.sin(omega * (x @ p[wn].T + p[bn]), dtype=np.float32)

    x = grid(w, h)
    if header["model"] == "siren":
        x = sine(x, params[0], "weight", "bias", w0f)
        for k in range(1, H + 1):
            x = sine(x, params[k], "weight", "bias", w0)
        y = x @ params[H + 1]["weight"].T + params[H + 1]["bias"]
    else:
        shared = a["head"] == "shared"
        x = sine(x, params[0], *(("weight", "bias") if shared else ("in_weight", "in_bias")), w0f)
        for k in range(1, depth + 1):
            out = sine(x, params[k + 1 if shared else k], "weight", "bias", w0)
            x = x + out if a["residual"] else out
        hp, pre = (params[1], "") if shared else (params[depth], "head_")
        y = x @ hp[pre + "weight"].T + hp[pre + "bias"]
    rgb = np.clip((y.astype(np.float32) + 1.0) * 0.5, 0.0, 1.0)
    return np.rint(rgb * 255.0).astype(np.uint8).reshape(h, w, 3)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def rgb_of(text: str, w: int, h: int) -> np.ndarray:
    rgba = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    assert rgba.size == w * h * 4
    rgba = rgba.reshape(h, w, 4)
    assert (rgba[..., 3] == 255).all()
    return rgba[..., :3]


def compare(got: np.ndarray, want: np.ndarray, label: str) -> None:
    d = np.abs(got.astype(np.int16) - want.astype(np.int16))
    s = STATS.setdefault(label, {"max": 0.0, "mean": 0.0, "over2": 0.0, "n": 0})
    s["max"] = max(s["max"], float(d.max()))
    s["mean"] = max(s["mean"], float(d.mean()))
    s["over2"] = max(s["over2"], float((d > 2).mean()))
    s["n"] += 1
    assert (d > 2).mean() <= 0.002, f"{label}: {(d > 2).mean():.4%} of values differ by more than 2/255"
    assert d.mean() < 0.5, f"{label}: mean abs diff {d.mean():.3f}/255"


# ---------------------------------------------------------------------------------------------
# fixtures: files, server, browser


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, data dir): client/web at /, the test's files at /data/."""
    data_dir = tmp_path_factory.mktemp("spnr-data")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path):
            clean = path.split("?", 1)[0].split("#", 1)[0]
            if clean.startswith("/data/"):
                return str(data_dir / Path(clean[len("/data/") :]).name)
            return super().translate_path(path)

        def log_message(self, *args):
            pass

    handler = functools.partial(Handler, directory=str(WEB))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", data_dir
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("no Chromium at /usr/bin/chromium")
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, served):
    base, _ = served
    pg = browser.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(f"{base}/test.html?src=/data/none.spnr&nogl=1")  # a page with the modules loaded
    pg.wait_for_function("window.spnrDone === true", timeout=10_000)
    yield pg
    assert not errors, f"uncaught errors in the page: {errors}"
    pg.close()


def load(browser, served, name: str, data: bytes, query: str = "") -> dict:
    base, data_dir = served
    (data_dir / name).write_bytes(data)
    pg = browser.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        pg.goto(f"{base}/test.html?src=/data/{name}{query}")
        pg.wait_for_function("window.spnrDone === true", timeout=20_000)
        res = pg.evaluate("window.spnrResult")
    finally:
        pg.close()
    assert not errors, f"uncaught errors in the page: {errors}"
    return res


# ---------------------------------------------------------------------------------------------
# tests

CASES = {
    "siren": dict(model="siren", width=24, hidden=3, bits=8, size=(37, 23), seed=1),
    "spinr-shared": dict(
        model="spinr", head="shared", width=32, hidden=4, bits=10, per_channel=True, size=(40, 28), seed=2
    ),
    "spinr-per-stage-residual": dict(
        model="spinr", head="per_stage", width=20, hidden=3, bits=6, size=(24, 36), residual=True, seed=3
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_decode_matches_numpy(browser, served, case):
    data, _, params, header = build_stream(**CASES[case])
    w, h = header["image"]["width"], header["image"]["height"]
    res = load(browser, served, f"{case}.spnr", data, "&size=51x19")
    assert res["ok"], res["error"]
    assert all(s["accepted"] for s in res["statuses"]), res["statuses"]
    hidden = header["arch"]["hidden_layers"]
    depths = hidden + 1 if header["model"] == "spinr" else 1
    assert res["header"]["depths"] == depths
    gl_ok = res["webgl"]["available"]
    STATS.setdefault("webgl", {})["available"] = gl_ok
    backends = ["js", "gl"] if gl_ok else ["js"]

    # progressive: after each packet, the deepest usable prefix, computed incrementally
    want_depths = list(range(1, depths + 1)) if header["model"] == "spinr" else [1]
    seen = [step["usableDepth"] for step in res["progressive"]]
    assert seen == want_depths, seen
    for step in res["progressive"]:
        d = step["usableDepth"]
        want = reference(header, params, d if header["model"] == "spinr" else None, w, h)
        for b in backends:
            out = step[b]
            assert out["depth"] == d
            # one trunk layer per new stage (SIREN: every layer at once)
            assert out["computedSteps"] == (1 if header["model"] == "spinr" else hidden + 1), (b, out)
            compare(rgb_of(out["rgba"], w, h), want, b)
    assert res["progressive"][-1]["js"]["units"] == list(range(len(header["units"])))

    # explicit depths (deepest first: the cache must keep the deepest prefix) and a cached re-decode
    assert [e["depth"] for e in res["depths"]] == want_depths[::-1]
    for e in res["depths"]:
        want = reference(header, params, e["depth"] if header["model"] == "spinr" else None, w, h)
        for b in backends:
            compare(rgb_of(e[b]["rgba"], w, h), want, b)
    for b in backends:
        assert res["again"][b]["computedSteps"] == 0
    full = reference(header, params, None, w, h)
    for b in backends:
        compare(rgb_of(res["again"][b]["rgba"], w, h), full, b)
    # the JS path does numpy's float32 maths (only the summation order differs): off by one at most
    assert np.abs(rgb_of(res["again"]["js"]["rgba"], w, h).astype(int) - full).max() <= 1

    # another output size samples the same function
    rw, rh = res["resized"]["width"], res["resized"]["height"]
    want = reference(header, params, None, rw, rh)
    for b in backends:
        compare(rgb_of(res["resized"][b]["rgba"], rw, rh), want, b)
    assert res["autoBackend"] == ("webgl2" if gl_ok else "js")
    for b in backends:
        compare(rgb_of(res["cold"][b]["rgba"], w, h), full, b)
    timing = STATS.setdefault(f"ms {case} {w}x{h}", {})
    for b in backends:
        timing[f"{b}_cold_full"] = round(res["cold"][b]["ms"], 1)


def test_webgl2_runs_headless(browser, served):
    """With the SwiftShader flags, WebGL2 with float render targets must be there (else: say why)."""
    data, *_ = build_stream(model="spinr", width=8, hidden=1, size=(4, 4))
    res = load(browser, served, "tiny.spnr", data)
    assert res["ok"], res["error"]
    STATS.setdefault("webgl", {}).update(res["webgl"])
    assert res["webgl"]["available"], f"WebGL2 unavailable headless: {res['webgl']['reason']}"
    assert res["autoBackend"] == "webgl2"


def test_larger_image_timing(browser, served):
    """A realistic size (128x96, width 64, 6 hidden layers): both backends agree with numpy; times reported."""
    data, _, params, header = build_stream(
        model="spinr", head="shared", width=64, hidden=6, size=(128, 96), seed=7
    )
    res = load(browser, served, "big.spnr", data)
    assert res["ok"], res["error"]
    want = reference(header, params, None, 128, 96)
    compare(rgb_of(res["again"]["js"]["rgba"], 128, 96), want, "js")
    t = STATS.setdefault("ms spinr 128x96 w64 h6", {})
    for b in ["js", "gl"] if res["webgl"]["available"] else ["js"]:
        compare(rgb_of(res["again"][b]["rgba"], 128, 96), want, b)
        compare(rgb_of(res["cold"][b]["rgba"], 128, 96), want, b)
        t[f"{b}_cold_full"] = round(res["cold"][b]["ms"], 1)
        t[f"{b}_add_one_layer"] = round(res["progressive"][-1][b]["ms"], 1)
        t[f"{b}_cached_redecode"] = round(res["again"][b]["ms"], 1)


def test_real_encoder_bitstream(browser, served):
    """A stream written by codec.bitstream decodes to exactly what codec.decoder gives."""
    bitstream = pytest.importorskip("codec.bitstream")
    quant = pytest.importorskip("codec.quant")
    decoder = pytest.importorskip("codec.decoder")
    _, _, params, header = build_stream(
        model="spinr", head="per_stage", width=16, hidden=2, size=(30, 20), seed=5
    )
    specs = [
        bitstream.UnitSpec(u["name"], tuple((n, tuple(s)) for n, s in u["tensors"])) for u in header["units"]
    ]
    sh = bitstream.StreamHeader("spinr", header["arch"], 30, 20, 8, False, specs, [1.0, 2.0, 3.0], {})
    units = {
        i: bitstream.LayerUnit(i, [quant.quantize(n, params[i][n], 8) for n, _ in spec.tensors])
        for i, spec in enumerate(specs)
    }
    bs = bitstream.Bitstream(sh, units, 0x1234ABCD)
    want = decoder.ProgressiveDecoder.from_bitstream(bs).decode().rgb
    res = load(browser, served, "codec.spnr", bs.to_bytes())
    assert res["ok"], res["error"]
    compare(rgb_of(res["again"]["js"]["rgba"], 30, 20), want, "js")
    assert np.abs(rgb_of(res["again"]["js"]["rgba"], 30, 20).astype(int) - want).max() <= 1
    if res["webgl"]["available"]:
        compare(rgb_of(res["again"]["gl"]["rgba"], 30, 20), want, "gl")


def test_out_of_order_missing_and_foreign_packets(page, served):
    data, packets, params, header = build_stream(
        model="spinr", head="shared", width=16, hidden=4, size=(20, 14), seed=9
    )
    other = build_stream(
        model="spinr", head="shared", width=16, hidden=4, size=(20, 14), seed=9, stream_id=7
    )[1]
    # packets: 0 header, 1 input (unit 0), 2 output (unit 1), 3..6 hidden.1..4 (units 2..5)
    order = [5, 3, 0, 1, 2, 5, 4]  # two layers before the header, a duplicate, hidden.2 late, no hidden.4
    res = page.evaluate(
        """async ([pk, order, foreign]) => {
          const L = window.spnrLib;
          const dec = new L.ProgressiveDecoder();
          const steps = [];
          for (const i of order) {
            const st = dec.addPacket(new Uint8Array(pk[i]));
            steps.push({st, depth: dec.usableDepth(), used: dec.usedUnits()});
          }
          const foreignSt = dec.addPacket(new Uint8Array(foreign));
          const rgba = dec.decode();
          const info = dec.lastInfo;
          const outOfRange = [0, dec.depths + 1].map((d) => {
            try { dec.decode(undefined, undefined, {depth: d}); return null; } catch (e) { return e.message; }
          });
          const gap = [0, 1, 2, 3, 5];  // hidden.2 missing
          const prefix = new L.ProgressiveDecoder();
          const skip = new L.ProgressiveDecoder({conceal: "skip"});
          for (const i of gap) { prefix.addPacket(new Uint8Array(pk[i])); skip.addPacket(new Uint8Array(pk[i])); }
          let s = ""; for (const v of rgba) s += String.fromCharCode(v);
          return {steps, foreignSt, info, outOfRange, rgba: btoa(s), prefixDepth: prefix.usableDepth(),
                  skipPlan: skip.plan(), skipUnits: skip.usedUnits()};
        }""",
        [[list(p) for p in packets], order, list(other[2])],
    )
    steps = res["steps"]
    # layer packets before the header are held, then used
    assert [s["depth"] for s in steps] == [None, None, None, None, 2, 2, 4]
    assert [s["st"]["accepted"] for s in steps] == [True] * 7
    assert steps[5]["st"]["duplicate"] is True
    assert steps[6]["used"] == [0, 1, 2, 3, 4]
    assert res["foreignSt"]["accepted"] is False
    assert "packet of stream 0x00000007 does not belong to stream 0x00c0ffee" in res["foreignSt"]["error"]
    assert res["info"]["depth"] == 4 and res["info"]["units"] == [0, 1, 2, 3, 4]
    # decode's depth counts stages from 1, as codec.decoder and `spinr decode --layers` do
    assert res["outOfRange"] == [f"depth {d} is out of range: this stream has 1..5 stages" for d in (0, 6)]
    compare(rgb_of(res["rgba"], 20, 14), reference(header, params, 4, 20, 14), "js")
    assert res["prefixDepth"] == 2
    assert res["skipPlan"] == {"depth": 3, "steps": [0, 1, 3]} and res["skipUnits"] == [0, 1, 2, 4]


def test_accelerator_failure_falls_back_to_js(page):
    _, packets, params, header = build_stream(model="spinr", head="per_stage", width=8, hidden=2, size=(9, 7))
    res = page.evaluate(
        """(pk) => {
          const L = window.spnrLib, G = window.spnrGL;
          const broken = {name: "broken", run() { throw new Error("boom"); }};
          const dec = new L.ProgressiveDecoder({accelerator: broken});
          for (const p of pk) dec.addPacket(new Uint8Array(p));
          const a = dec.decode();
          const first = dec.lastInfo;
          dec.decode();
          let forced = null;
          try { dec.decode(undefined, undefined, {backend: "accelerator"}); } catch (e) { forced = [e.name, e.message]; }
          const noCtx = G.tryCreateWebGLAccelerator({canvas: {getContext: () => null}});
          let s = ""; for (const v of a) s += String.fromCharCode(v);
          return {first, second: dec.lastInfo, forced, noCtx: {acc: noCtx.accelerator, reason: noCtx.reason},
                  rgba: btoa(s)};
        }""",
        [list(p) for p in packets],
    )
    assert res["first"]["backend"] == "js" and res["first"]["fallback"] == "broken failed: Error: boom"
    assert res["second"]["backend"] == "js" and res["second"]["fallback"] == "broken failed: Error: boom"
    assert res["forced"] == ["SpnrError", "broken failed: Error: boom"]
    assert res["noCtx"] == {"acc": None, "reason": "WebGL2 unavailable: getContext('webgl2') returned null"}
    compare(rgb_of(res["rgba"], 9, 7), reference(header, params, None, 9, 7), "js")


def corruptions(packets: list[bytes]) -> dict[str, bytes]:
    hp, lp = packets[0], packets[1]
    flip = bytearray(lp)
    flip[40] ^= 0x10
    other_payload = compress({"unit": 0, "tensors": []})
    return {
        "bad crc": bytes(flip),
        "truncated": lp[:-5],
        "wrong magic": b"SPNX" + lp[4:],
        "short header": lp[:10],
        "trailing bytes": lp + b"\0",
        "bad version": packet(1, 0xC0FFEE, 1, 0, b"x", version=2),
        "bad flags": packet(1, 0xC0FFEE, 1, 0, b"x", flags=3),
        "bad ptype": bytes(lp[:5]) + b"\x07" + lp[6:],
        "not zstd": packet(1, 0xC0FFEE, 1, 0, b"not a zstd frame"),
        "wrong tensors": packet(1, 0xC0FFEE, 1, 0, other_payload),
        "unit mismatch": packet(1, 0xC0FFEE, 2, 1, lp[24:]),
        "header as layer 5": packet(0, 0xC0FFEE, 0, 5, hp[24:]),
    }


EXPECTED = {
    "bad crc": "bad CRC in packet seq 1",
    "truncated": "packet truncated: payload needs",
    "wrong magic": "bad magic b'SPNX'",
    "short header": "header needs 24 bytes, got 10",
    "trailing bytes": "1 trailing bytes",
    "bad version": "unsupported packet version 2",
    "bad flags": "packet flags 0x0003 not supported",
    "bad ptype": "unknown packet type 7",
    "not zstd": "payload is not a zstd frame",
    "wrong tensors": "unit 0 (input) must carry 2 tensors",
    "unit mismatch": "layer payload is unit 0 but its packet says layer 1",
    "header as layer 5": "header packet must have layer 0xffff, got 5",
}


def test_corrupted_packets_are_reported_not_thrown(page):
    _, packets, *_ = build_stream(model="siren", width=8, hidden=1, size=(6, 5))
    bad = corruptions(packets)
    res = page.evaluate(
        """([hp, cases]) => {
          const L = window.spnrLib;
          const out = {};
          for (const [name, bytes] of Object.entries(cases)) {
            const dec = new L.ProgressiveDecoder();
            if (name !== "header as layer 5") dec.addPacket(new Uint8Array(hp));
            const st = dec.addPacket(new Uint8Array(bytes));
            let thrown = null;
            try { L.parseLayer(L.parsePacket(new Uint8Array(bytes)), dec.header || {units: []}); }
            catch (e) { thrown = {name: e.name, isSpnr: e instanceof L.SpnrError, message: e.message}; }
            out[name] = {st, thrown, avail: dec.available()};
          }
          return out;
        }""",
        [list(packets[0]), {k: list(v) for k, v in bad.items()}],
    )
    for name, r in res.items():
        assert r["st"]["accepted"] is False, name
        assert EXPECTED[name] in r["st"]["error"], (name, r["st"]["error"])
        assert r["thrown"] and r["thrown"]["isSpnr"] and r["thrown"]["name"] == "SpnrError", (
            name,
            r["thrown"],
        )
        assert r["avail"] == []


def test_corrupted_files_fail_cleanly(browser, served):
    data, packets, *_ = build_stream(model="siren", width=8, hidden=1, size=(6, 5))
    bad_header = bytearray(data)
    bad_header[30] ^= 1
    res = load(browser, served, "badhdr.spnr", bytes(bad_header), "&nogl=1")
    assert res["ok"] is False and res["errorName"] == "SpnrError"
    assert "no usable header packet" in res["error"] or "bad CRC" in res["error"]
    res = load(browser, served, "trunc.spnr", data[:-3], "&nogl=1")
    assert res["ok"] is False and res["errorName"] == "SpnrError"
    assert "file truncated: record 3" in res["error"], res["error"]
    res = load(browser, served, "prefix.spnr", b"\0\0\0\x05" + data[4:], "&nogl=1")
    assert "record 0 at offset 0 has length 5, outside 24.." in res["error"]
    # a damaged layer packet: the rest still decodes
    lp = bytearray(packets[2])
    lp[-1] ^= 0xFF
    framed = b"".join(struct.pack(">I", len(p)) + p for p in [packets[0], packets[1], bytes(lp), packets[3]])
    res = load(browser, served, "badlayer.spnr", framed, "&nogl=1")
    assert res["ok"], res["error"]
    assert [s["accepted"] for s in res["statuses"]] == [True, True, False, True]
    assert "bad CRC in packet seq 2" in res["statuses"][2]["error"]
    assert res["progressive"] == []  # siren needs every unit


def test_payload_zstd_variants_and_msgpack_strictness(page):
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
    good = {
        "level1": compress(obj, 1),
        "level3": compress(obj, 3),
        "level19": compress(obj, 19),
        "level22": compress(obj, 22),
        "fast": compress(obj, -5),
        "checksum": compress(obj, 3, write_checksum=True),
        "tiny": compress({}, 3),
        "zeros": compress({"z": bytes(500_000)}, 19),
    }
    raw = msgpack.packb
    frame = lambda b: zstandard.ZstdCompressor(write_content_size=True).compress(b)  # noqa: E731
    bad = {
        "truncated msgpack": (frame(raw({"a": "hello"})[:-2]), "msgpack truncated"),
        "unknown type byte": (frame(b"\x81\xa1a\xc1"), "unknown type byte 0xc1"),
        "ext type": (frame(b"\x81\xa1a\xd4\x01\x00"), "ext type byte 0xd4"),
        "trailing bytes": (frame(raw({"a": 1}) + b"\x00"), "1 trailing bytes"),
        "oversize str": (frame(b"\x81\xa1a\xdb\x7f\xff\xff\xff"), "over the limit"),
        "oversize array": (
            frame(b"\x81\xa1a\xdd\x00\x10\x00\x00"),
            "has 1048576 elements, over the limit 65536",
        ),
        "lying array length": (frame(b"\x81\xa1a\xdc\x10\x00"), "msgpack truncated"),
        "int key": (frame(b"\x81\x01\x02"), "map key at offset 1 must be a str"),
        "duplicate key": (frame(b"\x82\xa1a\x01\xa1a\x02"), "repeats the key"),
        "bad utf8": (frame(b"\x81\xa1a\xa2\xff\xfe"), "not valid UTF-8"),
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
        "truncated frame": (frame(raw({"a": "x" * 100}))[:-3], "truncated"),
        "corrupt frame": (bytes(b ^ 0x55 if 8 <= i < 12 else b for i, b in enumerate(compress(obj, 19))), ""),
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
            try { out.good[k] = enc(L.decodePayload(bytes(b))); }
            catch (e) { out.good[k] = {error: L.errorText(e)}; }
          }
          for (const [k, b] of Object.entries(bad)) {
            try { L.decodePayload(bytes(b)); out.bad[k] = {error: null}; }
            catch (e) { out.bad[k] = {error: e.message, name: e.name}; }
          }
          return out;
        }""",
        [{k: b64(v) for k, v in good.items()}, {k: b64(v[0]) for k, v in bad.items()}],
    )

    def enc(v):
        if isinstance(v, bytes):
            return {"n": len(v), "crc": zlib.crc32(v)}
        if isinstance(v, dict):
            return {k: enc(x) for k, x in v.items()}
        if isinstance(v, list):
            return [enc(x) for x in v]
        return v

    for k, src in (
        ("level1", obj),
        ("level3", obj),
        ("level19", obj),
        ("level22", obj),
        ("fast", obj),
        ("checksum", obj),
        ("tiny", {}),
        ("zeros", {"z": bytes(500_000)}),
    ):
        assert json.loads(json.dumps(res["good"][k])) == json.loads(json.dumps(enc(src))), k
    for k, (_, msg) in bad.items():
        r = res["bad"][k]
        assert r["error"] is not None and r["name"] == "SpnrError", (k, r)
        assert msg in r["error"], (k, r["error"])


def test_unpack_bits_and_dequantize(page):
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
          for (const [d, b, n] of [[[0xff], 3, 2], [[1, 2], 8, 3], [[1], 1, 1], [[0], 17, 0]]) {
            try { L.unpackBits(new Uint8Array(d), b, n); errs.push(null); } catch (e) { errs.push(e.message); }
          }
          const t = {shape: [2, 3], axis: 0, codes: new Uint32Array([0, 1, 255, 0, 2, 4]),
                     scale: new Float32Array([0.1, 0.5]), offset: new Float32Array([-1, 2])};
          return {out, errs, deq: Array.from(L.dequantize(t))};
        }""",
        cases,
    )
    assert res["out"] == [c[2] for c in cases]
    assert "nonzero padding bits" in res["errs"][0]
    assert "needs 3 bytes, got 2" in res["errs"][1]
    assert "bits 1 is out of range 2..16" in res["errs"][2]
    assert "bits 17 is out of range" in res["errs"][3]
    codes = np.array([[0, 1, 255], [0, 2, 4]], np.float32)
    want = np.array([[-1], [2]], np.float32) + np.array([[0.1], [0.5]], np.float32) * codes
    assert np.array_equal(np.array(res["deq"], np.float32), want.astype(np.float32).ravel())


def test_header_validation_messages(page):
    _, packets, _, header = build_stream(model="spinr", head="shared", width=8, hidden=2, size=(5, 5))

    def hp(**changes):
        h = json.loads(json.dumps(header))
        for k, v in changes.items():
            if v is None:
                h.pop(k)
            else:
                h[k] = v
        return list(packet(0, 0xC0FFEE, 0, 0xFFFF, compress(h)))

    cases = {
        "unknown model": (
            hp(model="nerf"),
            'model "nerf" is not supported by this decoder; supported: spinr, siren, fourier, mfn, wire, diner',
        ),
        "bad model name": (hp(model="Bad Name"), "is not an identifier"),
        "format 2": (hp(format=2), "unsupported header format 2"),
        "float width": (
            hp(image={"width": 5.0, "height": 5}),
            "header image width 5 is out of range 1..65535",
        ),
        "extra key": (hp(extra=1), 'unexpected keys ["extra"]'),
        "missing units": (hp(units=None), 'missing keys ["units"]'),
        "coords": (hp(coords="corner"), 'header coords "corner" not supported'),
        "bits": (hp(quant={"bits": 1, "per_channel": False}), "header quant bits 1 is out of range 2..16"),
        "head": (hp(arch={**header["arch"], "head": "both"}), "'head' is \"both\""),
        "unit layout": (
            hp(arch={**header["arch"], "width": 9}),
            'header unit 0 is "input" with weight[8,2], bias[8]',
        ),
        "hidden float": (
            hp(arch={**header["arch"], "hidden_layers": 2.0}),
            "'hidden_layers' is 2; expected int",
        ),
    }
    res = page.evaluate(
        """(cases) => Object.fromEntries(Object.entries(cases).map(([k, b]) => {
             const dec = new window.spnrLib.ProgressiveDecoder();
             const st = dec.addPacket(new Uint8Array(b));
             return [k, st];
           }))""",
        {k: v[0] for k, v in cases.items()},
    )
    for k, (_, msg) in cases.items():
        assert res[k]["accepted"] is False, k
        assert msg in res[k]["error"], (k, res[k]["error"])


def test_report(request):
    """Prints the measured differences and timings (run with -s to see them)."""
    yield_lines = [f"{k}: {json.dumps(v)}" for k, v in STATS.items()]
    print("\n".join(["", "browser decoder stats:"] + yield_lines))

"""The browser decoder (client/web/spnr.js, gl.js) in a real headless Chromium against the numpy decoder.

v2 streams of SIREN and SPINR (both heads) are made by the codec's own quantizer, entropy coder and
header writer, and by the real encoder; the browser must hold exactly the numpy decoder's integer codes
and float32 weights, and paint its pixels (within one code value in JS, the GL tolerance on WebGL2) at
every prefix depth, incrementally and cold, at the encoded size and another. v1 files still decode.
Errors are tests/test_browser_errors.py's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _browser import STATS, assert_same_params, b64, compare, load, rgb_of, wait_done

from codec.bitstream import Bitstream, StreamHeader, Unit, load_bitstream
from codec.decoder import ProgressiveDecoder
from codec.quant import quantize

pytestmark = pytest.mark.browser
V1_CORPUS = Path(__file__).parent / "data" / "v1"


def init_bound(unit: str, tensor: str, width: int, residual: bool) -> float:
    """SIREN-like initial ranges; readouts large enough that pictures span (and clip) [-1, 1]."""
    first = unit in ("input", "stage.0") and not tensor.startswith("head_")
    readout = unit == "output" or tensor.startswith("head_")
    if first:
        return 0.5
    if readout:
        return 0.5 * np.sqrt(6.0 / width)
    return np.sqrt(6.0 / width) / 30.0 * (0.3 if residual else 1.0)


def build_stream(
    model: str = "spinr",
    head: str = "shared",
    width: int = 24,
    hidden: int = 3,
    size: tuple[int, int] = (37, 23),
    residual: bool = False,
    seed: int = 0,
    stream_id: int = 0xC0DE,
    rel_step: float = 1 / 32,
    pe: int = 0,
) -> tuple[bytes, list[bytes], Bitstream]:
    """Random weights quantized at ``rel_step`` of their range -> (file, packet bytes, bitstream)."""
    rng = np.random.default_rng(seed)
    arch: dict[str, Any] = {
        "width": width,
        "hidden_layers": hidden,
        "first_omega_0": 30.0,
        "hidden_omega_0": 30.0,
    }
    if model == "spinr":
        arch.update(head=head, residual=residual)
    arch.update(pe_frequencies=pe, pe_scale=1.3 if pe else 1.4)  # a scale off the default is written
    header = StreamHeader(model, arch, size[0], size[1], [20.0 + k for k in range(hidden + 1)])
    units = {}
    for i, spec in enumerate(header.units):
        tensors = []
        for name, shape in spec.tensors:
            bound = init_bound(spec.name, name, width, residual)
            tensors.append(
                quantize(name, rng.uniform(-bound, bound, shape).astype(np.float32), bound * rel_step)
            )
        units[i] = Unit(i, tuple(tensors))
    bs = Bitstream(header, units, stream_id)
    return bs.to_bytes(), [p.to_bytes() for p in bs.packets()], bs


def numpy_rgb(bs: Bitstream, depth: int | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    return ProgressiveDecoder.from_bitstream(bs).decode(size=size, depth=depth).rgb


CASES = {
    "siren": dict(model="siren", width=24, hidden=3, size=(37, 23), seed=1),
    "spinr-shared": dict(
        model="spinr", head="shared", width=32, hidden=4, size=(40, 28), seed=2, rel_step=1 / 64
    ),
    "spinr-per-stage-residual": dict(
        model="spinr",
        head="per_stage",
        width=20,
        hidden=3,
        size=(24, 36),
        residual=True,
        seed=3,
        rel_step=1 / 16,
    ),
    # Positional encoding (codec/posenc.py): the JS features must be numpy's; WebGL2 has none yet.
    "siren-pe": dict(model="siren", width=16, hidden=2, size=(33, 21), seed=4, pe=6),
    "spinr-pe": dict(
        model="spinr", head="per_stage", width=12, hidden=2, size=(26, 30), residual=True, seed=5, pe=9
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_decode_matches_numpy(browser: Any, served: Any, case: str) -> None:
    data, _, bs = build_stream(**CASES[case])  # type: ignore[arg-type]
    h = bs.header
    w, ht = h.width, h.height
    res = load(browser, served, f"{case}.spnr", data, "&size=51x19" + ("&nogl=1" if "pe" in case else ""))
    assert res["ok"], res["error"]
    assert all(s["accepted"] for s in res["statuses"]), res["statuses"]
    progressive = h.model == "spinr"
    depths = h.arch["hidden_layers"] + 1 if progressive else 1
    assert res["header"]["depths"] == depths and res["header"]["format"] == 2
    assert res["header"]["units"] == [u.name for u in h.units]  # derived in the browser as in numpy
    assert res["header"]["stagePsnr"] == h.stage_psnr
    gl_ok = res["webgl"]["available"]
    STATS.setdefault("webgl", {})["available"] = gl_ok
    backends = ["js", "gl"] if gl_ok else ["js"]

    # progressive: after each packet, the deepest usable prefix, computed incrementally
    want_depths = list(range(1, depths + 1)) if progressive else [1]
    assert [step["usableDepth"] for step in res["progressive"]] == want_depths
    for step in res["progressive"]:
        d = step["usableDepth"]
        want = numpy_rgb(bs, d if progressive else None)
        for b in backends:
            out = step[b]
            assert out["depth"] == d
            # one trunk layer per new stage (SIREN: every layer at once)
            assert out["computedSteps"] == (1 if progressive else h.arch["hidden_layers"] + 1), (b, out)
            compare(rgb_of(out["rgba"], w, ht), want, b)
        assert np.abs(rgb_of(step["js"]["rgba"], w, ht).astype(int) - want).max() <= 1
    assert res["progressive"][-1]["js"]["units"] == list(range(h.num_units))

    # explicit depths (deepest first: the cache must keep the deepest prefix) and a cached re-decode
    assert [e["depth"] for e in res["depths"]] == want_depths[::-1]
    for e in res["depths"]:
        want = numpy_rgb(bs, e["depth"] if progressive else None)
        for b in backends:
            compare(rgb_of(e[b]["rgba"], w, ht), want, b)
        assert np.abs(rgb_of(e["js"]["rgba"], w, ht).astype(int) - want).max() <= 1
    full = numpy_rgb(bs)
    for b in backends:
        assert res["again"][b]["computedSteps"] == 0
        compare(rgb_of(res["again"][b]["rgba"], w, ht), full, b)
        compare(rgb_of(res["cold"][b]["rgba"], w, ht), full, b)
    # another output size samples the same function
    rw, rh = res["resized"]["width"], res["resized"]["height"]
    want = numpy_rgb(bs, size=(rw, rh))
    for b in backends:
        compare(rgb_of(res["resized"][b]["rgba"], rw, rh), want, b)
    assert res["autoBackend"] == ("webgl2" if gl_ok else "js")
    timing = STATS.setdefault(f"ms {case} {w}x{ht}", {})
    for b in backends:
        timing[f"{b}_cold_full"] = round(res["cold"][b]["ms"], 1)


@pytest.mark.parametrize("case", list(CASES))
def test_codes_and_weights_are_bit_exact(page: Any, case: str) -> None:
    """Python and JS agree exactly on every integer code, every step and every float32 weight."""
    _, packets, bs = build_stream(**CASES[case])  # type: ignore[arg-type]
    assert_same_params(page, packets, bs)


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("siren", {}),
        ("spinr", {"head": "per_stage"}),
        ("spinr", {"head": "shared"}),
        ("siren", {"pe_frequencies": 5}),
        ("spinr", {"pe_frequencies": 5}),
    ],
)
def test_real_encoder_streams(
    browser: Any, served: Any, photo_crop: np.ndarray, model: str, options: dict
) -> None:
    """What ``spinr encode`` writes (trained, sensitivity-allocated steps, SPINR frozen at its codes)
    decodes in the browser to the numpy decoder's picture at every depth."""
    from codec.config import EncodeConfig, ModelSpec, TrainConfig
    from codec.encode import encode_image

    img = photo_crop[:20, :28]
    cfg = EncodeConfig(ModelSpec(model, 12, 2, options), TrainConfig(steps=45, device="cpu", seed=4))
    bs = encode_image(img, cfg).bitstream
    name = f"enc-{model}-{options.get('head', '')}-{options.get('pe_frequencies', 0)}.spnr"
    res = load(browser, served, name, bs.to_bytes(), "&nogl=1")
    assert res["ok"], res["error"]
    assert res["header"]["stagePsnr"] == bs.header.stage_psnr
    for e in res["depths"]:
        want = numpy_rgb(bs, e["depth"] if model == "spinr" else None)
        got = rgb_of(e["js"]["rgba"], 28, 20)
        compare(got, want, "js")
        assert np.abs(got.astype(int) - want).max() <= 1


def test_records_are_the_python_records(page: Any) -> None:
    """The JS arch-record tables and model ids are the Python families' RECORD tuples, entry for entry."""
    from codec.arch import DECODERS, MODEL_IDS
    from codec.arch.records import REQUIRED

    js = page.evaluate("() => ({ids: window.spnrLib.MODEL_IDS, records: window.spnrLib.RECORDS})")
    assert js["ids"] == MODEL_IDS
    for name, cls in DECODERS.items():
        want = [
            {
                "name": f.name,
                "kind": f.kind,
                **({} if f.default is REQUIRED else {"def": f.default}),
                **({"choices": list(f.choices)} if f.choices else {}),
            }
            for f in cls.RECORD
        ]
        got = [{k: v for k, v in f.items() if v is not None} for f in js["records"][name]]
        assert got == want, name


def test_v2_headers_of_every_family_parse_alike(page: Any) -> None:
    """Every family's header payload (fields off their defaults) reads to the same arch map in JS."""
    from test_header import NON_DEFAULT_ARCHS

    payloads = {
        m: b64(StreamHeader(m, dict(a), 30, 20, [1.5, float("inf")], {"k": [1, "x"]}).to_payload())
        for m, a in NON_DEFAULT_ARCHS.items()
    }
    got = page.evaluate(
        """(ps) => Object.fromEntries(Object.entries(ps).map(([m, p]) => {
             const h = window.spnrLib.parseHeaderPayload(Uint8Array.from(atob(p), (c) => c.charCodeAt(0)));
             return [m, {model: h.model, arch: {...h.arch}, size: [h.width, h.height],
                         psnr: h.stagePsnr.map(String), meta: h.meta}];
           }))""",
        payloads,
    )
    for m, arch in NON_DEFAULT_ARCHS.items():
        assert got[m] == {
            "model": m,
            "arch": arch,
            "size": [30, 20],
            "psnr": ["1.5", "Infinity"],
            "meta": {"k": [1, "x"]},
        }


def test_webgl2_runs_headless(browser: Any, served: Any) -> None:
    """With the SwiftShader flags, WebGL2 with float render targets must be there (else: say why)."""
    data, *_ = build_stream(model="spinr", width=8, hidden=1, size=(4, 4))
    res = load(browser, served, "tiny.spnr", data)
    assert res["ok"], res["error"]
    STATS.setdefault("webgl", {}).update(res["webgl"])
    assert res["webgl"]["available"], f"WebGL2 unavailable headless: {res['webgl']['reason']}"
    assert res["autoBackend"] == "webgl2"


def test_larger_image_decodes_like_numpy(browser: Any, served: Any) -> None:
    """A realistic size (128x96, width 64, 6 hidden layers): both backends agree with numpy, cold,
    cached and layer by layer. Times are recorded for the report, never asserted (the benchmark,
    benchmarks/browser_decode.py, measures speed); the page may take as long as the machine's load
    makes it, as long as it keeps decoding (_browser.wait_done)."""
    data, _, bs = build_stream(model="spinr", head="shared", width=64, hidden=6, size=(128, 96), seed=7)
    res = load(browser, served, "big.spnr", data)
    assert res["ok"], res["error"]
    want = numpy_rgb(bs)
    t = STATS.setdefault("ms spinr 128x96 w64 h6", {})
    for b in ["js", "gl"] if res["webgl"]["available"] else ["js"]:
        compare(rgb_of(res["again"][b]["rgba"], 128, 96), want, b)
        compare(rgb_of(res["cold"][b]["rgba"], 128, 96), want, b)
        t[f"{b}_cold_full"] = round(res["cold"][b]["ms"], 1)
        t[f"{b}_add_one_layer"] = round(res["progressive"][-1][b]["ms"], 1)
        t[f"{b}_cached_redecode"] = round(res["again"][b]["ms"], 1)


def test_waiting_for_the_page_follows_progress_and_fails_on_a_stall(page: Any) -> None:
    """wait_done follows the page's decode count to the end, and fails naming the count when the
    page stands still for its stall limit."""
    page.evaluate("window.spnrDone = false; window.spnrProgress = 3")
    with pytest.raises(AssertionError, match="made no progress for 0.5 s after 3 decodes"):
        wait_done(page, stall_s=0.5)
    page.evaluate(
        """() => { const tick = () => { window.spnrProgress += 1;
                     if (window.spnrProgress < 13) setTimeout(tick, 100); else window.spnrDone = true; };
                   setTimeout(tick, 100); }"""
    )  # ten more decodes, 0.1 s apart, then done
    wait_done(page, stall_s=60.0)
    assert page.evaluate("window.spnrProgress") == 13


@pytest.mark.parametrize("name", ["siren", "spinr-shared", "spinr-per-stage"])
def test_v1_files_still_decode(browser: Any, served: Any, name: str) -> None:
    """The v1 corpus (written by the v1 encoder) decodes in the browser to the numpy decoder's picture."""
    data = (V1_CORPUS / f"{name}.spnr").read_bytes()
    bs, _ = load_bitstream(data)
    res = load(browser, served, f"v1-{name}.spnr", data, "&nogl=1")
    assert res["ok"], res["error"]
    assert res["header"]["format"] == 1 and res["header"]["units"] == [u.name for u in bs.header.units]
    for e in res["depths"]:
        want = numpy_rgb(bs, e["depth"] if bs.header.model == "spinr" else None)
        got = rgb_of(e["js"]["rgba"], bs.header.width, bs.header.height)
        compare(got, want, "js")
        assert np.abs(got.astype(int) - want).max() <= 1


def test_out_of_order_missing_and_foreign_packets(page: Any) -> None:
    _, packets, bs = build_stream(model="spinr", head="shared", width=16, hidden=4, size=(20, 14), seed=9)
    other = build_stream(
        model="spinr", head="shared", width=16, hidden=4, size=(20, 14), seed=9, stream_id=7
    )[1]
    # packets: 0 header, 1 input (unit 0), 2 output (unit 1), 3..6 hidden.1..4 (units 2..5)
    order = [5, 3, 0, 1, 2, 5, 4]  # two units before the header, a duplicate, hidden.2 late, no hidden.4
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
    assert [s["depth"] for s in steps] == [None, None, None, None, 2, 2, 4]  # held until the header came
    assert [s["st"]["accepted"] for s in steps] == [True] * 7
    assert steps[5]["st"]["duplicate"] is True
    assert steps[6]["used"] == [0, 1, 2, 3, 4]
    assert res["foreignSt"]["accepted"] is False
    assert "packet of stream 0x7 does not belong to stream 0xc0de" in res["foreignSt"]["error"]
    assert res["info"]["depth"] == 4 and res["info"]["units"] == [0, 1, 2, 3, 4]
    # decode's depth counts stages from 1, as codec.decoder and `spinr decode --layers` do
    assert res["outOfRange"] == [f"depth {d} is out of range: this stream has 1..5 stages" for d in (0, 6)]
    partial = Bitstream(bs.header, {u: bs.units[u] for u in (0, 1, 2, 3, 4)}, bs.stream_id)
    compare(rgb_of(res["rgba"], 20, 14), numpy_rgb(partial), "js")
    assert res["prefixDepth"] == 2
    assert res["skipPlan"] == {"depth": 3, "steps": [0, 1, 3]} and res["skipUnits"] == [0, 1, 2, 4]


def test_accelerator_failure_falls_back_to_js(page: Any) -> None:
    _, packets, bs = build_stream(model="spinr", head="per_stage", width=8, hidden=2, size=(9, 7))
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
    compare(rgb_of(res["rgba"], 9, 7), numpy_rgb(bs), "js")


def test_report() -> None:
    """Prints the measured differences and timings (run with -s to see them)."""
    print("\n".join(["", "browser decoder stats:"] + [f"{k}: {json.dumps(v)}" for k, v in STATS.items()]))

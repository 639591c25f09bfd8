"""Every registered model in the browser decoder: fourier, mfn, wire and diner against numpy.

Streams come from the real encoder (format v2: a short fit of each family on a photograph crop), are
served from 127.0.0.1 (tests/_browser.py) and decoded in headless Chromium by client/web (JavaScript: WebGL2 has shaders for sine
layers only, and a stream of these families falls back, saying why). The pictures must equal
``codec.decoder``'s within the tolerance the SIREN/SPINR tests use (tests/test_browser_decoder.py).
Their codes, steps and float32 weights must be numpy's bit for bit, and FourierNet's projection B, which
the browser regenerates from numpy's PCG64, too.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest
from _browser import assert_same_params, compare, rgb_of

from codec.arch import DECODERS
from codec.bitstream import Bitstream
from codec.config import EncodeConfig, ModelSpec, QuantConfig, TrainConfig
from codec.decoder import ProgressiveDecoder
from codec.encode import encode_image
from codec.fourier_features import b_matrix

pytestmark = pytest.mark.browser

# Each family with the options that change its forward pass; small widths keep the fits short.
CASES: dict[str, tuple[str, dict[str, Any], int, int]] = {
    "fourier": ("fourier", {"mapping_size": 64, "sigma": 6.0, "b_seed": 12345}, 24, 2),
    "fourier-default-b": ("fourier", {}, 16, 1),
    "mfn-gabor": ("mfn", {}, 24, 2),
    "mfn-fourier": ("mfn", {"filter": "fourier"}, 24, 2),
    "wire": ("wire", {}, 24, 2),
    "diner": ("diner", {}, 24, 2),
}
SIZES = [None, (61, 29), (128, 96)]  # the image's own, odd, and the browser's 2x zoom


@pytest.fixture(scope="module")
def streams(photo_crop: np.ndarray) -> dict[str, Bitstream]:
    """Each family fitted for 25 steps to a 64x48 photograph crop (a picture with structure)."""
    out = {}
    for case, (model, options, width, hidden) in CASES.items():
        cfg = EncodeConfig(
            ModelSpec(model, width, hidden, dict(options)),
            TrainConfig(steps=25, device="cpu", seed=3),
            QuantConfig(bits=8),
        )
        out[case] = encode_image(photo_crop, cfg).bitstream
    return out


def js_decode(page: Any, data: bytes, sizes: list[tuple[int, int] | None]) -> dict[str, Any]:
    """Decode ``data`` in the page with the JS decoder (and once with the WebGL2 accelerator in
    'auto' mode), returning RGBA per size and what each decode reported."""
    return page.evaluate(
        """async ([b64, sizes]) => {
          const L = window.spnrLib;
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const dec = new L.ProgressiveDecoder();
          const statuses = L.splitFile(bytes.buffer).map((p) => dec.addPacket(p));
          const out = {statuses, model: dec.header.model, depths: dec.depths, usable: dec.usableDepth(),
                       accelerated: dec.arch.accelerated !== false, pictures: []};
          const toB64 = (a) => { let s = ""; for (let i = 0; i < a.length; i += 0x8000)
            s += String.fromCharCode.apply(null, a.subarray(i, i + 0x8000)); return btoa(s); };
          for (const size of sizes) {
            const [w, h] = size || [undefined, undefined];
            const rgba = dec.decode(w, h, {backend: "js"});
            out.pictures.push({rgba: toB64(rgba), info: dec.lastInfo});
          }
          // The accelerator declines these families: the decode falls back to JS and says why.
          const G = await import("./gl.js");
          const {accelerator, reason} = G.tryCreateWebGLAccelerator();
          out.webgl = {available: !!accelerator, reason};
          if (accelerator) {
            const auto = new L.ProgressiveDecoder({accelerator});
            for (const p of L.splitFile(bytes.buffer)) auto.addPacket(p);
            const rgba = auto.decode();
            out.auto = {rgba: toB64(rgba), info: auto.lastInfo};
            accelerator.dispose();
          }
          return out;
        }""",
        [base64.b64encode(data).decode(), sizes],
    )


def test_every_registered_model_is_supported(page: Any) -> None:
    assert sorted(page.evaluate("window.spnrLib.SUPPORTED_MODELS")) == sorted(DECODERS)


@pytest.mark.parametrize("case", list(CASES))
def test_zoo_decodes_like_numpy(page: Any, streams: dict[str, Bitstream], case: str) -> None:
    bs = streams[case]
    res = js_decode(page, bs.to_bytes(), SIZES)
    assert all(s["accepted"] for s in res["statuses"]), res["statuses"]
    assert res["model"] == CASES[case][0] and res["depths"] == 1 and res["usable"] == 1
    assert res["accelerated"] is False
    dec = ProgressiveDecoder.from_bitstream(bs)
    for size, pic in zip(SIZES, res["pictures"], strict=True):
        want = dec.decode(size=size).rgb
        h, w = want.shape[:2]
        info = pic["info"]
        assert (info["width"], info["height"], info["backend"], info["depth"]) == (w, h, "js", 1)
        assert info["units"] == list(range(bs.header.num_units))
        got = rgb_of(pic["rgba"], w, h)
        compare(got, want, f"{case} {w}x{h}")
        # numpy's float32 maths, only summed in another order: one code value at most (measured: 0-1)
        assert np.abs(got.astype(int) - want).max() <= 1, f"{case} {w}x{h}"
    assert res["webgl"]["available"], res["webgl"]["reason"]
    auto = res["auto"]
    assert auto["info"]["backend"] == "js"
    assert auto["info"]["fallback"].startswith("webgl2 failed: WebGL2 has no shader for "), auto["info"]
    want = dec.decode().rgb
    compare(rgb_of(auto["rgba"], want.shape[1], want.shape[0]), want, f"{case} auto")


@pytest.mark.parametrize("case", list(CASES))
def test_zoo_codes_and_weights_are_bit_exact(page: Any, streams: dict[str, Bitstream], case: str) -> None:
    """The v2 unit payloads of every zoo family (units derived from the arch, steps, one entropy
    block) give the browser exactly numpy's codes, steps and float32 weights."""
    bs = streams[case]
    assert bs.version == 2
    assert_same_params(page, [p.to_bytes() for p in bs.packets()], bs)


@pytest.mark.parametrize(
    ("mapping_size", "sigma", "seed"),
    [(256, 10.0, 0), (64, 6.0, 12345), (4096, 25.5, 2**32 - 1), (7, 1e-3, 1), (300, 10.0, 2**31 + 5)],
)
def test_fourier_projection_is_numpys_bit_for_bit(
    page: Any, mapping_size: int, sigma: float, seed: int
) -> None:
    got = page.evaluate(
        """async ([m, sigma, seed]) => {
          const R = await import("./codec/arch/numpy_random.js");
          const gen = new R.Pcg64(seed);
          const raw = [];
          for (let i = 0; i < 4; i++) raw.push(gen.next64().toString());
          return {b: Array.from(R.bMatrix(m, sigma, seed)), raw};
        }""",
        [mapping_size, sigma, seed],
    )
    want = b_matrix(mapping_size, sigma, seed)
    b = np.asarray(got["b"], dtype=np.float32).reshape(mapping_size, 2)
    assert np.array_equal(b.view(np.uint32), want.view(np.uint32))
    raw = np.random.Generator(np.random.PCG64(seed)).bit_generator.random_raw(4)
    assert [int(x) for x in got["raw"]] == [int(x) for x in raw]

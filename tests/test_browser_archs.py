"""Every registered model in the browser decoder: fourier, mfn, wire and diner against numpy.

Streams come from the real encoder (a short fit of each family on a photograph crop), are served from
127.0.0.1 and decoded in headless Chromium by client/web (JavaScript: WebGL2 has shaders for sine
layers only, and a stream of these families falls back, saying why). The pictures must equal
``codec.decoder``'s within the tolerance the SIREN/SPINR tests use (tests/test_browser_decoder.py).
FourierNet's projection B is regenerated in the browser from numpy's PCG64: it must be bit-exact.
"""

from __future__ import annotations

import base64
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codec.arch import DECODERS
from codec.bitstream import Bitstream
from codec.config import EncodeConfig, ModelSpec, QuantConfig, TrainConfig
from codec.decoder import ProgressiveDecoder
from codec.encode import encode_image
from codec.fourier_features import b_matrix

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

WEB = Path(__file__).resolve().parent.parent / "client" / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
if not Path(CHROMIUM).exists():  # pragma: no cover - depends on the machine
    pytest.skip(f"{CHROMIUM} is not installed (make browser-deps)", allow_module_level=True)

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
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, data dir): client/web at /, the test's streams at /data/."""
    data_dir = tmp_path_factory.mktemp("archs")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path: str) -> str:
            clean = path.split("?", 1)[0]
            if clean.startswith("/data/"):
                return str(data_dir / Path(clean[len("/data/") :]).name)
            return super().translate_path(path)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(WEB)))
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
def page(served: tuple[str, Path]) -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(f"{served[0]}/test.html?src=/data/none.spnr&nogl=1")  # the modules, loaded
        pg.wait_for_function("window.spnrDone === true", timeout=20_000)
        try:
            yield pg
        finally:
            browser.close()
        assert errors == [], errors


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


def rgb(text: str, w: int, h: int) -> np.ndarray:
    rgba = np.frombuffer(base64.b64decode(text), dtype=np.uint8).reshape(h, w, 4)
    assert (rgba[..., 3] == 255).all()
    return rgba[..., :3]


def compare(got: np.ndarray, want: np.ndarray, label: str) -> None:
    """The SIREN/SPINR tolerance (tests/test_browser_decoder.py): float32 maths summed in another order."""
    d = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert (d > 2).mean() <= 0.002, f"{label}: {(d > 2).mean():.4%} of values differ by more than 2/255"
    assert d.mean() < 0.5, f"{label}: mean abs diff {d.mean():.3f}/255"


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
        got = rgb(pic["rgba"], w, h)
        compare(got, want, f"{case} {w}x{h}")
        # numpy's float32 maths, only summed in another order: one code value at most (measured: 0-1)
        assert np.abs(got.astype(int) - want).max() <= 1, f"{case} {w}x{h}"
    assert res["webgl"]["available"], res["webgl"]["reason"]
    auto = res["auto"]
    assert auto["info"]["backend"] == "js"
    assert auto["info"]["fallback"].startswith("webgl2 failed: WebGL2 has no shader for "), auto["info"]
    want = dec.decode().rgb
    compare(rgb(auto["rgba"], want.shape[1], want.shape[0]), want, f"{case} auto")


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

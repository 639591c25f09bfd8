"""Shared machinery of the browser tests (its fixtures are registered in conftest.py): client/web served on 127.0.0.1 (the test's files at /data/),
Playwright's headless Chromium with SwiftShader (WebGL2 without a GPU), pixel comparisons, and for the
pages of a real server (test_browser_e2e.py, test_browser_page.py, test_browser_abr.py) a page that
records its errors, and ``save_shot`` for their screenshots."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _server import Server, finished, png

from benchmarks.browser_decode import CHROMIUM, CHROMIUM_ARGS, serve_web
from codec.bitstream import load_bitstream
from codec.decoder import ProgressiveDecoder

DONE = '#app[data-state="done"]'
"""The page's state once a stream has ended."""
WAIT_MS = 45_000
ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "client" / "web"
DOCS_IMG = ROOT / "docs" / "img"
ENCODE = {"preset": "tiny", "width": 32, "depth": 3, "steps": 80}
"""The options the page tests encode their crop with (through the form or the API)."""
"""Where ``save_shot`` copies a screenshot when SPINR_UPDATE_DOCS=1."""
STATS: dict[str, dict[str, Any]] = {}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def rgb_of(text: str, w: int, h: int) -> np.ndarray:
    rgba = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    assert rgba.size == w * h * 4
    rgba = rgba.reshape(h, w, 4)
    assert (rgba[..., 3] == 255).all()
    return rgba[..., :3]


def compare(got: np.ndarray, want: np.ndarray, label: str) -> None:
    """Within the decoders' tolerance: float paths differ in summation order (JS) or precision (GL)."""
    d = np.abs(got.astype(np.int16) - want.astype(np.int16))
    s = STATS.setdefault(label, {"max": 0.0, "mean": 0.0, "over2": 0.0, "n": 0})
    s["max"] = max(s["max"], float(d.max()))
    s["mean"] = max(s["mean"], float(d.mean()))
    s["over2"] = max(s["over2"], float((d > 2).mean()))
    s["n"] += 1
    assert (d > 2).mean() <= 0.002, f"{label}: {(d > 2).mean():.4%} of values differ by more than 2/255"
    assert d.mean() < 0.5, f"{label}: mean abs diff {d.mean():.3f}/255"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, data dir): client/web at /, the test's files at /data/."""
    data_dir = tmp_path_factory.mktemp("spnr-data")
    with serve_web(data_dir) as base:
        yield base, data_dir


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("no Chromium at /usr/bin/chromium")
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, served: tuple[str, Path]) -> Iterator[Any]:
    """A page with the decoder library loaded (window.spnrLib, window.spnrGL)."""
    base, _ = served
    pg = browser.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(f"{base}/test.html?src=/data/none.spnr&nogl=1")
    pg.wait_for_function("window.spnrDone === true", timeout=10_000)
    yield pg
    assert not errors, f"uncaught errors in the page: {errors}"
    pg.close()


STALL_S = 120.0
"""Seconds test.html may go without finishing a decode before it counts as stuck (one decode takes
well under a second here when the machine is idle)."""


def wait_done(pg: Any, stall_s: float = STALL_S) -> None:
    """Wait for test.html to finish however long a loaded machine makes it take, as long as it keeps
    making progress (``window.spnrProgress``, decodes done); fail when it stops for ``stall_s``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    seen = -1
    while True:
        try:
            state = pg.wait_for_function(
                """(seen) => window.spnrDone === true ? {done: true}
                   : (window.spnrProgress ?? -1) > seen ? {done: false, progress: window.spnrProgress}
                   : null""",
                arg=seen,
                timeout=stall_s * 1000,
            ).json_value()
        except PlaywrightTimeout:
            raise AssertionError(
                f"test.html made no progress for {stall_s:g} s after {seen} decodes"
            ) from None
        if state["done"]:
            return
        seen = state["progress"]


def load(browser: Any, served: tuple[str, Path], name: str, data: bytes, query: str = "") -> dict[str, Any]:
    """test.html's run over ``data`` served as /data/NAME: every packet added, decodes after each."""
    base, data_dir = served
    (data_dir / name).write_bytes(data)
    pg = browser.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        pg.goto(f"{base}/test.html?src=/data/{name}{query}")
        wait_done(pg)
        res = pg.evaluate("window.spnrResult")
    finally:
        pg.close()
    assert not errors, f"uncaught errors in the page: {errors}"
    return res


def _js_params(page: Any, packets: list[bytes]) -> dict[str, Any]:
    """Every unit the page's decoder holds after ``packets``: per tensor its codes, step, shape and
    float32 values (base64 of the little-endian arrays)."""
    return page.evaluate(
        """(pk) => {
          const L = window.spnrLib;
          const dec = new L.ProgressiveDecoder();
          for (const p of pk) dec.addPacket(Uint8Array.from(atob(p), (c) => c.charCodeAt(0)));
          const b64 = (a) => { const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength); let s = "";
            for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000));
            return btoa(s); };
          const out = {};
          for (const [i, t] of dec.params) {
            out[i] = Object.fromEntries(Object.entries(t).map(([n, v]) =>
              [n, {values: b64(v.values), codes: b64(v.codes), step: v.step, shape: v.shape}]));
          }
          return out;
        }""",
        [b64(p) for p in packets],
    )


def assert_same_params(page: Any, packets: list[bytes], bs: Any) -> None:
    """Python and JS agree exactly on every integer code, every step and every float32 weight of
    ``bs`` (a Bitstream) once the page's decoder has ``packets``."""
    from codec.decoder import ProgressiveDecoder

    got = _js_params(page, packets)
    numpy = ProgressiveDecoder.from_bitstream(bs).params
    assert sorted(map(int, got)) == sorted(bs.units)
    for i, unit in bs.units.items():
        for t in unit.tensors:
            js = got[str(i)][t.name]
            assert js["step"] == t.step and js["shape"] == list(t.shape), (i, t.name)
            codes = np.frombuffer(base64.b64decode(js["codes"]), "<i4")
            assert np.array_equal(codes, np.asarray(t.codes).ravel()), (i, t.name)
            values = np.frombuffer(base64.b64decode(js["values"]), "<f4")
            want = numpy[i][t.name].ravel().view(np.uint32).tolist()
            assert values.view(np.uint32).tolist() == want, (i, t.name)


def crop() -> np.ndarray:
    """A 64x48 (w x h) thumbnail of skimage's astronaut's face (every 4th pixel of a 256x192 crop)."""
    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(data.astronaut()[40:232:4, 130:386:4])


class Page:
    """A page plus the console errors and uncaught exceptions it produced."""

    def __init__(self, browser: Any, width: int, height: int) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.errors: list[str] = []
        self.page.on(
            "console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def close(self) -> None:
        self.context.close()

    def canvas_rgb(self) -> np.ndarray:
        w, h, data = self.page.evaluate(
            """() => {
                const c = document.getElementById('view');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                return [c.width, c.height, Array.from(d)];
            }"""
        )
        return np.asarray(data, dtype=np.uint8).reshape(h, w, 4)

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector).strip()

    def restream(self, **sliders: float) -> None:
        """Move sliders (id suffix -> value) the way a user does, then wait for the new stream to end."""
        before = int(self.page.get_attribute("#app", "data-streams") or 0)
        for name, value in sliders.items():
            self.page.eval_on_selector(
                f"#ch-{name}",
                "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input', {bubbles: true})); }",
                value,
            )
        self.page.wait_for_function(
            "n => Number(document.getElementById('app').dataset.streams) > n"
            " && document.getElementById('app').dataset.state === 'done'",
            arg=before,
        )


def reference_rgb(server: Server, image_id: str) -> tuple[np.ndarray, Any]:
    r = server.http.get(f"/api/images/{image_id}/bitstream.spnr")
    assert r.status_code == 200, r.text
    bs, damaged = load_bitstream(r.content)
    assert damaged == []
    return ProgressiveDecoder.from_bitstream(bs).decode().rgb, bs


def save_shot(page: Any, tmp_path: Path, name: str, clip: str | None = None) -> Path:
    """A screenshot of the whole page (or of the element ``clip``)."""
    shot = tmp_path / name
    if clip:
        page.locator(clip).screenshot(path=str(shot))
    else:
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000  # a real rendering, not a blank page
    # The docs' screenshots are refreshed on request only: a test run must not edit the checkout.
    if os.environ.get("SPINR_UPDATE_DOCS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMG / name)
    return shot


def encode_crop(server: Server, name: str = "api-crop.png", **changes: Any) -> str:
    """The image id of ``crop()`` encoded through ``server``'s API with ``ENCODE`` (and ``changes``)."""
    return finished(server, png(crop()), name, **{**ENCODE, **changes})

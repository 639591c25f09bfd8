"""The browser client's page in a real headless Chromium against a real ``spinr serve`` (tests/_server.py):
its layout at a phone's width and on a desktop, its errors (an unknown image id, a refused stream, and
leaving the error state when a later action succeeds), zoom, the decoder badge and the training view's
label. Every test asserts that the page logged no console errors. Screenshots go to the pytest tmp dir
(and, with SPINR_UPDATE_DOCS=1, to docs/img/browser-phone.png and docs/img/browser-zoom.png).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import CHROMIUM, DONE, Page, encode_crop, save_shot
from _server import Server, serve

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser


if not Path(CHROMIUM).exists():  # pragma: no cover - depends on the machine
    pytest.skip(f"{CHROMIUM} is not installed (make browser-deps)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory, "page")


@pytest.fixture(scope="module")
def encoded(server: Server) -> str:
    """An image encoded through the API."""
    return encode_crop(server)


@pytest.fixture(scope="module")
def long_stream(server: Server) -> str:
    """A stream of ~10 KB (64 x 4): ten seconds at the page's slowest link (8 kbit/s), so a test can act
    while it is still streaming on a loaded machine (the small v2 streams end within 2-3 s)."""
    return encode_crop(server, "long-crop.png", width=64, depth=4, steps=20)


def test_phone_width_has_no_horizontal_overflow(
    server: Server, browser: Any, encoded: str, tmp_path: Path
) -> None:
    p = Page(browser, 375, 812)
    try:
        page = p.page
        page.goto(f"{server.url}/#image={encoded}")
        page.wait_for_selector(DONE)
        page.wait_for_selector("#jpeg:not([hidden])")
        scroll, inner = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"page is {scroll} px wide in a {inner} px viewport"
        box = page.locator("#view").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= inner
        save_shot(page, tmp_path, "browser-phone.png")
        assert p.errors == []
    finally:
        p.close()


def test_unknown_image_id_shows_an_error(server: Server, browser: Any) -> None:
    p = Page(browser, 1280, 900)
    try:
        page = p.page
        page.goto(f"{server.url}/#image=0123456789abcdef")
        page.wait_for_selector("#error:not([hidden])")
        assert 'No image with id "0123456789abcdef"' in p.text("#error-text")
        assert page.get_attribute("#app", "data-state") == "error"
        # The only console error allowed is the browser's own note about the 404 answer.
        unexpected = [e for e in p.errors if "status of 404" not in e]
        assert unexpected == []

        page.goto(f"{server.url}/#image=bad%20id!")  # not even an id: refused before any request
        page.wait_for_function(
            "() => document.getElementById('error-text').textContent.includes('is not an image id')"
        )
        assert page.is_visible("#error")
    finally:
        p.close()


def test_refused_stream_shows_the_close_reason(server: Server, browser: Any, encoded: str) -> None:
    """A start message the server refuses (a channel seed beyond netsim's range) closes the
    WebSocket with 1008; the page shows the code and the server's reason."""
    p = Page(browser, 1280, 900)
    try:
        page = p.page
        page.goto(f"{server.url}/#image={encoded}")
        page.wait_for_selector(DONE)
        page.fill("#ch-seed", "99999999999999999999")
        page.click("#restream")
        page.wait_for_selector("#error:not([hidden])")
        text = p.text("#error-text")
        assert "WebSocket code 1008" in text and "seed" in text, text
        assert page.get_attribute("#app", "data-state") == "error"
        assert p.errors == []
    finally:
        p.close()


def box(page: Any, selector: str) -> dict[str, float]:
    b = page.locator(selector).bounding_box()
    assert b is not None, selector
    return b


def test_zoom_shows_the_picture_bigger_and_says_the_decode_time(
    server: Server, browser: Any, encoded: str, tmp_path: Path
) -> None:
    """2x and 4x decode the representation at that size and show it that much bigger in a pane
    that scrolls (both panes, together); the decode size and time are said next to the buttons."""
    p = Page(browser, 1280, 1000)
    try:
        page = p.page
        page.goto(f"{server.url}/#image={encoded}")
        page.wait_for_selector(DONE)
        one = box(page, "#view")
        frame = box(page, "#frame")
        assert abs(one["width"] - frame["width"]) <= 3  # 1x: the picture fills its pane
        assert "64×48 px decoded in" in p.text("#zoom-note") and " ms" in p.text("#zoom-note")
        for zoom in (2, 4):
            page.click(f'label[for="zoom-{zoom}"]')
            page.wait_for_selector(f'#view[data-zoom="{zoom}"]')
            assert page.eval_on_selector("#view", "c => [c.width, c.height]") == [64 * zoom, 48 * zoom]
            shown = box(page, "#view")
            assert shown["width"] == pytest.approx(zoom * one["width"], abs=3), (zoom, shown, one)
            assert shown["height"] == pytest.approx(zoom * one["height"], abs=3), (zoom, shown, one)
            # The pane keeps its size and scrolls over the bigger picture.
            assert box(page, "#frame")["width"] == pytest.approx(frame["width"], abs=1)
            scroll = page.eval_on_selector("#frame", "f => [f.scrollWidth, f.clientWidth, f.scrollLeft]")
            assert scroll[0] > scroll[1] and scroll[2] > 0, scroll  # scrollable, and starts at the centre
            note = p.text("#zoom-note")
            assert f"{64 * zoom}×{48 * zoom} px decoded in" in note and f"shown {zoom}× bigger" in note, note
            assert re.search(r"decoded in \d+(\.\d)? ms", note), note
        page.wait_for_selector("#jpeg:not([hidden])")
        fractions = """() => [...document.querySelectorAll('.frame')].map((f) => [
            f.scrollLeft / (f.scrollWidth - f.clientWidth), f.scrollTop / (f.scrollHeight - f.clientHeight)])"""
        page.wait_for_function(f"() => ({fractions})().flat().every((x) => Math.abs(x - 0.5) < 0.02)")
        save_shot(page, tmp_path, "browser-zoom.png", clip=".viewer")
        # Scrolling the spinr pane scrolls the JPEG pane to the same place.
        page.eval_on_selector("#frame", "f => { f.scrollLeft = 0; f.scrollTop = 0; }")
        page.wait_for_function(
            "() => { const f = document.querySelectorAll('.frame')[1]; return f.scrollLeft === 0 && f.scrollTop === 0; }"
        )
        page.click('label[for="zoom-1"]')
        page.wait_for_selector('#view[data-zoom="1"]')
        assert box(page, "#view")["width"] == pytest.approx(one["width"], abs=1)
        assert p.errors == []
    finally:
        p.close()


def test_the_badge_says_which_engine_decoded_and_why(server: Server, browser: Any, encoded: str) -> None:
    p = Page(browser, 1280, 1000)
    try:
        page = p.page
        page.goto(f"{server.url}/#image={encoded}")
        page.wait_for_selector(DONE)
        assert p.text("#backend-badge") == "decoder: WebGL2"
        assert page.get_attribute("#backend-badge", "data-backend") == "webgl2"
        page.select_option("#backend", "js")
        page.wait_for_selector('#backend-badge[data-backend="js"]')
        assert p.text("#backend-badge") == "decoder: JavaScript (chosen)"
        page.select_option("#backend", "auto")
        page.wait_for_selector('#backend-badge[data-backend="webgl2"]')
        assert p.text("#backend-badge") == "decoder: WebGL2"
        assert p.errors == []
    finally:
        p.close()


def test_the_page_leaves_error_when_a_later_action_succeeds(
    server: Server, browser: Any, long_stream: str
) -> None:
    encoded = long_stream
    p = Page(browser, 1280, 1000)
    try:
        page = p.page
        page.goto(f"{server.url}/")
        page.wait_for_selector('#app[data-state="idle"]')
        page.wait_for_function(
            f"() => [...document.getElementById('library').options].some(o => o.value === '{encoded}')"
        )
        page.click("#library-load")  # nothing chosen
        page.wait_for_selector('#app[data-state="error"]')
        assert "Pick an image from the list first." in p.text("#error-text")
        page.select_option("#library", encoded)
        page.click("#library-load")
        page.wait_for_selector(DONE)
        assert page.is_hidden("#error")

        # An error while a stream runs (a slow link: 8 kbit/s) is over when that stream ends well.
        page.select_option("#library", "")
        p.page.eval_on_selector(
            "#ch-bw", "el => { el.value = '1'; el.dispatchEvent(new Event('input', {bubbles: true})); }"
        )
        page.wait_for_selector('#app[data-state="streaming"]')
        page.click("#library-load")
        assert page.get_attribute("#app", "data-state") == "error"
        page.wait_for_selector(DONE)
        held, total = p.text("#stat-layers").split(" / ")
        assert page.is_hidden("#error") and held == total

        # Dismissing an error brings back the state of the latest action.
        page.click("#library-load")
        page.wait_for_selector('#app[data-state="error"]')
        page.click("#error-close")
        page.wait_for_selector(DONE)
        assert p.errors == []
    finally:
        p.close()


def test_a_phone_shows_what_is_streaming_first(server: Server, browser: Any, encoded: str) -> None:
    """At 390 px the page is one column: the form first while nothing is open, the picture first
    (above the fold) once an image streams."""
    p = Page(browser, 390, 844)
    try:
        page = p.page
        page.goto(f"{server.url}/")
        page.wait_for_selector('#app[data-state="idle"]')
        assert box(page, ".encode")["y"] < box(page, ".viewer")["y"]
        page.goto(f"{server.url}/#image={encoded}")
        page.wait_for_selector(DONE)
        viewer, form, canvas = box(page, ".viewer"), box(page, ".encode"), box(page, "#view")
        assert viewer["y"] < form["y"], (viewer, form)
        assert canvas["y"] >= 0 and canvas["y"] + canvas["height"] <= 844, canvas  # no scrolling needed
        scroll, inner = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner
        assert p.errors == []
    finally:
        p.close()


def test_the_training_view_says_what_the_job_is_doing(server: Server, browser: Any) -> None:
    """Queued, training with its share done, and quantizing once training is done (the API's
    ``phase``; the bar cannot measure that part, so the label says it)."""
    p = Page(browser, 1280, 900)
    try:
        page = p.page
        page.goto(f"{server.url}/")
        page.wait_for_selector('#app[data-state="idle"]')
        labels = page.evaluate(
            """async () => {
                const { trainLabel } = await import("./ui/training.js");
                return [
                    trainLabel({ state: "queued", name: "a.png" }, 0),
                    trainLabel({ state: "running", phase: "training", name: "a.png" }, 0.456),
                    trainLabel({ state: "running", name: "a.png" }, 0.5),
                    trainLabel({ state: "running", phase: "quantizing", name: "a.png" }, 1),
                ];
            }"""
        )
        assert labels == [
            "Queued: a.png",
            "Training a.png: 46%",
            "Training a.png: 50%",
            "Quantizing a.png to its target size…",
        ]
        assert p.errors == []
    finally:
        p.close()

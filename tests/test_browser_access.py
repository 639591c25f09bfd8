"""The browser page with a server that needs a token (issue 11 item 13): the token given once in the
page address (#token=...) goes with the upload (a header) and the stream (a WebSocket subprotocol),
and leaves the address bar; a page without it shows the server's reason. Real server, real Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _server import Server, png

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
TOKEN = "browser-token-0123456789"
WAIT_MS = 45_000

if not Path(CHROMIUM).exists():  # pragma: no cover - depends on the machine
    pytest.skip(f"{CHROMIUM} is not installed (make browser-deps)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("browser-access") / "data", "--token", TOKEN)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_page_sends_the_token_from_its_address(
    server: Server, browser: Any, photo_crop: np.ndarray, tmp_path: Path
) -> None:
    source = tmp_path / "crop.png"
    source.write_bytes(png(photo_crop))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{server.url}/#token={TOKEN}")
        page.wait_for_selector('#app[data-state="idle"]')
        assert "token" not in page.evaluate("() => location.href")  # out of the address bar
        page.set_input_files("#file", str(source))
        page.select_option("#opt-preset", "tiny")
        page.fill("#opt-steps", "5")
        page.click("#upload")
        page.wait_for_selector('#app[data-state="done"]')
        image_id = page.evaluate("() => new URLSearchParams(location.hash.slice(1)).get('image')")
        assert server.job(image_id)["state"] == "done"
        assert page.is_hidden("#error")

        # A new tab without the token: the stream is refused and the page says why.
        other = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            page2 = other.new_page()
            page2.set_default_timeout(WAIT_MS)
            page2.goto(f"{server.url}/#image={image_id}")
            page2.wait_for_selector("#error:not([hidden])")
            text = page2.inner_text("#error-text")
            assert "4401" in text and "needs a token" in text, text
        finally:
            other.close()
    finally:
        context.close()

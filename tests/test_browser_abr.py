"""The browser's ABR view in a real headless Chromium against a real ``spinr serve``: the ABR switch
streams with protocol version 2 (the page reports, the server's controller chooses), the page says what
was chosen and the throughput it measured, and the picture repaints as packets arrive."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from _browser import DONE, Page, crop, reference_rgb
from _server import Server, finished, png, serve

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory, "abr-web")


@pytest.fixture(scope="module")
def refined(server: Server) -> str:
    return finished(
        server, png(crop()), "abr.png", preset="tiny", width=48, depth=4, steps=150, refinements=1
    )


def abr_stream(p: Page, deadline: float, bandwidth_step: int = 0) -> None:
    """Switch ABR on (with a deadline and a bandwidth slider position) and wait for that stream's end,
    counting the picture's repaints (each decode rewrites the decode-time line)."""
    page = p.page
    before = int(page.get_attribute("#app", "data-streams") or 0)
    page.evaluate(
        """() => { window.repaints = 0;
             new MutationObserver(() => { window.repaints += 1; })
               .observe(document.getElementById('stat-decode'), {childList: true, characterData: true, subtree: true}); }"""
    )
    if not page.is_checked("#ch-abr"):
        page.check("#ch-abr")  # a change event: the page will reconnect with the switch on
    page.fill("#ch-deadline", str(deadline))
    page.eval_on_selector(  # moved last: the reconnect (debounced) reads every control as it is now
        "#ch-bw", "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input', {bubbles: true})); }",
        bandwidth_step,
    )  # fmt: skip
    page.wait_for_function(
        "n => Number(document.getElementById('app').dataset.streams) > n"
        " && document.getElementById('app').dataset.state === 'done'"
        " && document.getElementById('abr-info').textContent.includes('server:')",
        arg=before,
    )


def test_abr_view_streams_reports_and_repaints(server: Server, browser: Any, refined: str) -> None:
    ref, bs = reference_rgb(server, refined)
    n = bs.header.num_units
    p = Page(browser, 1280, 1000)
    try:
        page = p.page
        page.goto(f"{server.url}/#image={refined}")
        page.wait_for_selector(DONE)
        assert p.text("#abr-info") == ""  # version 1 first: no ABR line
        abr_stream(p, deadline=5)
        info = p.text("#abr-info")
        assert info.startswith("ABR:") and "throughput" in info and "report(s)" in info, info
        # a generous link: the controller sends every unit whole, in one (direct) packet each
        assert page.get_attribute("#abr-info", "data-packets") == str(n)
        assert f"{n} whole layer(s)" in info
        assert page.evaluate("window.repaints") >= 2  # the picture repainted as units arrived
        assert p.text("#stat-layers") == f"{n} / {n}"
        diff = np.abs(p.canvas_rgb()[..., :3].astype(int) - ref.astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 3, (diff.mean(), diff.max())
        items = page.locator("#packets li").all_inner_texts()
        assert any("whole (level 1)" in t for t in items), items

        full_bytes, full_psnr = p.text("#stat-bytes"), float(p.text("#stat-psnr").split()[0])
        # 8 kbit/s and a 1 s deadline: less than the whole stream by the deadline; the controller
        # chose coarse bases or fewer layers (never nothing), and the page says what it shows
        abr_stream(p, deadline=1, bandwidth_step=1)
        info = p.text("#abr-info")
        whole = int(info.split(" whole layer(s)")[0].rsplit(" ", 1)[1])
        got = int(p.text("#stat-layers").split("/")[0])
        assert got >= 1 and whole < n and p.text("#stat-bytes") != full_bytes, (info, p.text("#stat-layers"))
        shown = p.text("#stat-psnr")
        assert float(shown.split()[0]) < full_psnr, (shown, full_psnr)
        if got < n:
            assert f"{n - got} layer(s) not worth sending" in p.text("#stat-state")
        assert page.is_hidden("#error")
        assert [e for e in p.errors if "status of 422" not in e] == []
    finally:
        p.close()

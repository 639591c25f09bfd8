"""A residual (``init=meta``) image end to end in a real headless Chromium: the form offers ``init``,
the server encodes from its θ0, the page fetches that θ0 by hash (``/api/inits/{hash}.spnri``) and
paints the numpy decoder's picture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _browser import CHROMIUM, CHROMIUM_ARGS, DONE
from _server import Server, png

from codec.bitstream import load_bitstream
from codec.decoder import ProgressiveDecoder
from codec.meta import store
from codec.meta.initfile import write_init
from codec.meta.reptile import snapshot
from codec.models.base import build_model

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():  # pragma: no cover - depends on the machine
    pytest.skip(f"{CHROMIUM} is not installed (make browser-deps)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    import torch

    folder = tmp_path_factory.mktemp("inits")
    torch.manual_seed(2)
    write_init(folder / "tiny.spnri", snapshot(build_model("spinr", 16, 2, {})))  # the tiny preset's network
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(store.ENV_PATH, str(folder))
        srv = Server(tmp_path_factory.mktemp("meta-e2e") / "data")
    try:
        yield srv, str(folder)
    finally:
        srv.close()


def test_meta_image_streams_into_the_page(server, photo_crop, monkeypatch, tmp_path) -> None:
    srv, folder = server
    monkeypatch.setenv(store.ENV_PATH, folder)
    source = tmp_path / "crop.png"
    source.write_bytes(png(photo_crop))
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(60_000)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(f"{srv.url}/")
            page.wait_for_selector('#app[data-state="idle"]')
            page.set_input_files("#file", str(source))
            page.select_option("#opt-preset", "tiny")
            page.select_option("#opt-init", "meta")
            page.fill("#opt-steps", "40")
            page.click("#upload")
            page.wait_for_selector(DONE)
            image_id = page.evaluate("() => new URLSearchParams(location.hash.slice(1)).get('image')")
            job: dict[str, Any] = srv.job(image_id)
            assert job["options"]["init"] == "meta", job
            bs, _ = load_bitstream(srv.http.get(f"/api/images/{image_id}/bitstream.spnr").content)
            assert bs.header.init is not None
            ref = ProgressiveDecoder.from_bitstream(bs).decode().rgb
            w, h, data = page.evaluate(
                """() => { const c = document.getElementById('view');
                   return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }"""
            )
            rgba = np.asarray(data, dtype=np.uint8).reshape(h, w, 4)
            diff = np.abs(rgba[..., :3].astype(int) - ref.astype(int))
            assert diff.mean() < 1.0 and diff.max() <= 3, (diff.mean(), diff.max())
            # The page's JPEG comparison may find no JPEG that small (a 422 the browser logs itself).
            assert [e for e in errors if "status of 422" not in e] == []
        finally:
            browser.close()

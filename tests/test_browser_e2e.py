"""The browser client (client/web/index.html + app.js) end to end in a real headless Chromium.

A real ``spinr serve`` runs in a subprocess (tests/_server.py); the page uploads a small crop through
its form, waits for training, streams the result over the WebSocket and paints it. The canvas is
checked against the numpy decoder's output for the downloaded bitstream. Further tests check that the
upload form offers exactly the options, ranges and choices of ``/api/config`` (model-only options with
their models, presets filling every field), stream through the server's netsim with 30% loss, offer,
train and decode every registered model, and use a server that needs a token. The page's own
behaviour (layout, errors, zoom, badge, training view) is tests/test_browser_page.py. Every test
asserts that the page logged no console errors. Screenshots go to the pytest tmp dir (and, with
SPINR_UPDATE_DOCS=1, to docs/img/browser.png).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _browser import CHROMIUM, DONE, ENCODE, Page, crop, encode_crop, reference_rgb, save_shot
from _server import Server, png, serve

from streaming.session import StreamSession

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
DOCS_IMG = ROOT / "docs" / "img"

if not Path(CHROMIUM).exists():  # pragma: no cover - depends on the machine
    pytest.skip(f"{CHROMIUM} is not installed (make browser-deps)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory, "e2e")


@pytest.fixture(scope="module")
def encoded(server: Server) -> str:
    """An image encoded through the API (for the tests that do not exercise the upload form)."""
    return encode_crop(server)


def test_upload_train_stream_matches_numpy(server: Server, browser: Any, tmp_path: Path) -> None:
    source = tmp_path / "astronaut-crop.png"
    source.write_bytes(png(crop()))
    p = Page(browser, 1280, 1000)
    try:
        page = p.page
        page.goto(f"{server.url}/")
        page.wait_for_selector('#app[data-state="idle"]')
        page.set_input_files("#file", str(source))
        page.select_option("#opt-preset", ENCODE["preset"])
        for key in ("width", "depth", "steps"):
            page.fill(f"#opt-{key}", str(ENCODE[key]))
        page.click("#upload")
        page.wait_for_selector(DONE)

        image_id = page.evaluate("() => new URLSearchParams(location.hash.slice(1)).get('image')")
        job = server.job(image_id)
        assert job["state"] == "done" and job["options"]["width"] == ENCODE["width"], job
        assert page.eval_on_selector("#train-progress", "el => el.value") == 1
        # The job view shows the plan and the worker's time estimate, as the API gives them.
        plan = job["plan"]
        assert plan["network"] in p.text("#train-plan"), (plan, p.text("#train-plan"))
        assert f"estimated {plan['estimated_seconds']:.1f} s" in p.text("#train-plan")

        # The canvas holds the full decode, equal to numpy's within rounding (WebGL2 or JS).
        ref, bs = reference_rgb(server, image_id)
        rgba = p.canvas_rgb()
        assert rgba.shape[:2] == ref.shape[:2] == (48, 64)
        assert (rgba[..., 3] == 255).all()
        diff = np.abs(rgba[..., :3].astype(int) - ref.astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 3, (diff.mean(), diff.max())

        units = bs.header.num_units
        assert p.text("#stat-layers") == f"{units} / {units}"
        assert p.text("#stat-psnr") == f"{bs.header.stage_psnr[-1]:.2f} dB"
        assert p.text("#stat-depth") == f"{len(bs.header.stage_psnr)} / {len(bs.header.stage_psnr)}"
        assert p.page.locator("#packets li").count() == units + 1
        backend = p.text("#backend-badge")
        assert backend.startswith("decoder: "), backend

        # The JavaScript decoder paints the same picture (a forced fallback).
        page.select_option("#backend", "js")
        page.wait_for_selector('#backend-badge[data-backend="js"]')
        diff = np.abs(p.canvas_rgb()[..., :3].astype(int) - ref.astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 3, ("js", diff.mean(), diff.max())
        page.select_option("#backend", "auto")

        # JPEG at the same byte budget, with its quality and size shown.
        page.wait_for_selector("#jpeg:not([hidden])")
        jpeg_bytes = int(page.get_attribute("#jpeg", "data-bytes"))
        header = server.http.get(f"/api/images/{image_id}/header").json()
        received = sum(x["bytes"] for x in header["packets"])  # a clean link delivers every packet
        assert f"({received} B)" in p.text("#stat-bytes")
        assert 0 < jpeg_bytes <= received
        assert "quality" in p.text("#jpeg-caption")

        save_shot(page, tmp_path, "browser.png")

        # Zoom decodes the continuous representation at 4x.
        page.click('label[for="zoom-4"]')
        page.wait_for_selector('#view[data-zoom="4"]')
        assert page.eval_on_selector("#view", "c => [c.width, c.height]") == [256, 192]
        assert page.is_hidden("#error")
        assert p.errors == []
    finally:
        p.close()


# Reads every generated option field: its control, label, hint and state, in document order.
READ_FORM = """() => [...document.querySelectorAll('#option-fields [name]')].map((el) => {
    const label = document.querySelector(`label[for="${el.id}"]`);
    const hint = document.getElementById(el.getAttribute('aria-describedby') || '');
    return {
        name: el.name, id: el.id, tag: el.tagName.toLowerCase(), type: el.type || null,
        min: el.getAttribute('min'), max: el.getAttribute('max'), step: el.getAttribute('step'),
        choices: el.tagName === 'SELECT' ? [...el.options].map((o) => o.value) : null,
        label: label ? label.textContent.trim() : null, hint: hint ? hint.textContent : null,
        value: el.type === 'checkbox' ? el.checked : el.value,
        shown: !el.closest('.field').hidden && el.offsetParent !== null, disabled: el.disabled,
        group: el.closest('fieldset').dataset.group,
    };
})"""
CONTROL = {"int": ("input", "number"), "float": ("input", "number"), "bool": ("input", "checkbox"),
           "choice": ("select", "select-one"), "str": ("input", "text")}  # fmt: skip


def expected_value(opt: dict[str, Any], value: Any) -> Any:
    """What a field shows for an option's value: a checkbox's state, an input's text ("" when unset)."""
    if opt["type"] == "bool":
        return value is True
    if value is None:
        return ""
    return str(value)


def test_form_is_generated_from_api_config(server: Server, browser: Any, tmp_path: Path) -> None:
    config = server.http.get("/api/config").json()
    options = config["options"]
    assert {"model", "width", "depth", "steps", "bits"} <= {o["name"] for o in options}
    p = Page(browser, 1280, 1000)
    try:
        page = p.page
        page.goto(f"{server.url}/")
        page.wait_for_selector('#app[data-state="idle"]')

        # Exactly the table's options, in its order, each with the control, range and choices it gives.
        fields = page.evaluate(READ_FORM)
        assert [f["name"] for f in fields] == [o["name"] for o in options]
        for opt, f in zip(options, fields, strict=True):
            name = opt["name"]
            assert f["id"] == f"opt-{name}"
            assert (f["tag"], f["type"]) == CONTROL[opt["type"]], (name, f)
            assert f["label"], f"{name} has no label bound to it"
            assert f["hint"] is not None and opt["help"] in f["hint"], (name, f["hint"])
            assert f["group"] == opt["group"], name
            if opt["type"] in ("int", "float"):
                assert f["min"] == (None if opt["min"] is None else page.evaluate("String", opt["min"])), name
                assert f["max"] == (None if opt["max"] is None else page.evaluate("String", opt["max"])), name
                assert f["step"] == ("1" if opt["type"] == "int" else "any"), name
            else:
                assert f["min"] is None and f["max"] is None, name
            assert f["choices"] == opt["choices"], name
        assert page.evaluate("document.getElementById('opt-preset').labels.length") == 1

        # Model-only options are shown and enabled with their models only.
        scoped = [o for o in options if o["models"] is not None]
        assert scoped, "the table has no model-specific option to check"
        model_opt = next(o for o in options if o["name"] == "model")
        for model in model_opt["choices"]:
            page.select_option("#opt-model", model)
            state = {f["name"]: f for f in page.evaluate(READ_FORM)}
            for opt in options:
                applies = opt["models"] is None or model in opt["models"]
                assert state[opt["name"]]["shown"] is applies, (model, opt["name"])
                assert state[opt["name"]]["disabled"] is not applies, (model, opt["name"])

        # Choosing a preset fills every field with that preset's value.
        for name, values in config["presets"].items():
            page.select_option("#opt-preset", name)
            state = {f["name"]: f for f in page.evaluate(READ_FORM)}
            assert set(values) == set(state), name
            for opt in options:
                got = state[opt["name"]]["value"]
                if opt["type"] == "float" and got != "":
                    assert float(got) == pytest.approx(values[opt["name"]]), (name, opt["name"])
                else:
                    assert got == expected_value(opt, values[opt["name"]]), (name, opt["name"], got)

        # A value outside the table's range is refused in the page, naming the option and its range.
        source = tmp_path / "crop.png"
        source.write_bytes(png(crop()))
        page.set_input_files("#file", str(source))
        page.select_option("#opt-preset", "tiny")
        width = next(o for o in options if o["name"] == "width")
        before = len(server.http.get("/api/jobs").json()["jobs"])
        page.fill("#opt-width", str(width["max"] + 1))
        page.click("#upload")
        page.wait_for_selector("#error:not([hidden])")
        text = p.text("#error-text")
        assert f"width: {width['max'] + 1} is out of range: allowed {width['min']}..{width['max']}" in text, (
            text
        )
        assert page.get_attribute("#opt-width", "aria-invalid") == "true"
        assert page.evaluate("document.activeElement.id") == "opt-width"
        assert len(server.http.get("/api/jobs").json()["jobs"]) == before

        # A SIREN upload sends the enabled fields only: no SPINR option reaches the job. Width 40: a
        # stream of a few KB, so the page's JPEG comparison fits (the smallest JPEG of the crop is ~730
        # bytes, more than a 16-wide SIREN's v2 stream; the page says so, with a 422 in the console).
        page.fill("#opt-width", "40")
        page.select_option("#opt-model", "siren")
        page.fill("#opt-steps", "20")
        page.click("#upload")
        page.wait_for_function("() => new URLSearchParams(location.hash.slice(1)).get('image')")
        image_id = page.evaluate("() => new URLSearchParams(location.hash.slice(1)).get('image')")
        job = server.wait_state(image_id, ("done", "failed"))
        assert job["state"] == "done", job
        sent = job["options"]
        assert sent["model"] == "siren" and sent["width"] == 40 and sent["steps"] == 20, sent
        assert not {o["name"] for o in scoped if "siren" not in o["models"]} & set(sent), sent
        assert sent["bits"] == config["presets"]["tiny"]["bits"], sent
        page.wait_for_selector(DONE)
        assert page.is_hidden("#error")
        assert p.errors == []
    finally:
        p.close()


def lossy_seed(server: Server, image_id: str, loss: float) -> tuple[int, list[int]]:
    """A channel seed whose 30%-loss transmission drops some layer but keeps the first one."""
    _, bs = reference_rgb(server, image_id)
    for seed in range(1, 200):
        session = StreamSession(bs, {"loss": loss, "seed": seed})
        session.plan()
        dropped = session.summary.dropped
        if dropped and 0 not in dropped:
            return seed, dropped
    raise AssertionError("no seed in 1..199 drops a layer other than the first")


def test_lossy_channel_shows_fewer_layers_then_recovers(server: Server, browser: Any, encoded: str) -> None:
    seed, dropped = lossy_seed(server, encoded, 0.3)
    p = Page(browser, 1280, 1000)
    try:
        page = p.page
        page.goto(f"{server.url}/#image={encoded}")
        page.wait_for_selector(DONE)
        total = int(p.text("#stat-layers").split("/")[1])
        assert p.text("#stat-layers") == f"{total} / {total}"

        page.fill("#ch-seed", str(seed))
        p.restream(loss=0.3)
        got = int(p.text("#stat-layers").split("/")[0])
        assert got == total - len(dropped), (p.text("#stat-layers"), dropped)
        assert "dropped" in p.text("#stat-state")
        assert page.is_hidden("#error")
        assert p.text("#stat-psnr").endswith("dB")  # the first stage still decodes
        assert not page.is_disabled("#resume")

        p.restream(loss=0)  # a clean link again: every layer arrives
        assert p.text("#stat-layers") == f"{total} / {total}"
        assert page.is_hidden("#error")
        # The JPEG comparison may find no JPEG small enough for what a lossy stream delivered: the
        # page says so in its caption, and the browser itself logs the server's 422.
        assert [e for e in p.errors if "status of 422" not in e] == []
    finally:
        p.close()


ZOO = ("fourier", "mfn", "wire", "diner")


def test_every_registered_model_is_offered_encoded_and_decoded(server: Server, browser: Any) -> None:
    """The form offers every model the codec registers; the server trains each and the page decodes
    it like numpy (the zoo in JavaScript, and the badge says why)."""
    from codec.model_options import MODEL_OPTIONS

    config = server.http.get("/api/config").json()
    assert config["models"] == list(MODEL_OPTIONS) and set(ZOO) <= set(MODEL_OPTIONS)
    ids = {}
    for model in ZOO:  # width 32: streams over the crop's smallest JPEG (~730 bytes), so the page's
        # JPEG comparison has one to show (a smaller stream gets the page's notice and a 422 in the console)
        r = server.upload(
            png(crop()), name=f"{model}.png", preset="tiny", model=model, width=32, depth=2, steps=30
        )
        assert r.status_code == 202, r.text
        ids[model] = r.json()["id"]
    p = Page(browser, 1280, 1000)
    try:
        page = p.page
        page.goto(f"{server.url}/")
        page.wait_for_selector('#app[data-state="idle"]')
        offered = page.eval_on_selector("#opt-model", "s => [...s.options].map(o => o.value)")
        assert offered == list(MODEL_OPTIONS)
        for model, image_id in ids.items():
            job = server.wait_state(image_id, ("done", "failed"))
            assert job["state"] == "done", job
            ref, bs = reference_rgb(server, image_id)
            page.goto(f"{server.url}/#image={image_id}")
            page.wait_for_function(
                "([id, n]) => document.getElementById('app').dataset.state === 'done'"
                " && location.hash.includes(id) && document.getElementById('view').dataset.layers === String(n)",
                arg=[image_id, bs.header.num_units],
            )
            assert bs.header.model == model
            diff = np.abs(p.canvas_rgb()[..., :3].astype(int) - ref.astype(int))
            assert diff.mean() < 1.0 and diff.max() <= 3, (model, diff.mean(), diff.max())
            assert p.text("#backend-badge") == f"decoder: JavaScript (WebGL2 has no {model} shaders)"
            assert "WebGL2 has no shader for" in page.get_attribute("#backend-badge", "title")
            assert page.is_hidden("#error")
        assert p.errors == []
    finally:
        p.close()


TOKEN = "browser-token-0123456789"


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory, "e2e-token", "--token", TOKEN)


def test_the_token_in_the_page_address_goes_with_uploads_and_streams(
    token_server: Server, browser: Any, tmp_path: Path
) -> None:
    """A server with --token: the token given once in the address (#token=...) leaves the address
    bar and goes with the upload (a header) and the stream (a WebSocket subprotocol); a tab without
    it shows the server's close code and reason."""
    source = tmp_path / "crop.png"
    source.write_bytes(png(crop()))
    p = Page(browser, 1280, 900)
    try:
        page = p.page
        page.goto(f"{token_server.url}/#token={TOKEN}")
        page.wait_for_selector('#app[data-state="idle"]')
        assert "token" not in page.evaluate("() => location.href")
        page.set_input_files("#file", str(source))
        page.select_option("#opt-preset", "tiny")
        page.fill("#opt-steps", "5")
        page.fill("#opt-width", "40")  # a stream over the crop's smallest JPEG: no 422 for the comparison
        page.click("#upload")
        page.wait_for_selector(DONE)
        image_id = page.evaluate("() => new URLSearchParams(location.hash.slice(1)).get('image')")
        assert token_server.job(image_id)["state"] == "done"
        assert page.is_hidden("#error") and p.errors == []
    finally:
        p.close()
    other = Page(browser, 1280, 900)  # a new context: no token in its storage
    try:
        other.page.goto(f"{token_server.url}/#image={image_id}")
        other.page.wait_for_selector("#error:not([hidden])")
        text = other.text("#error-text")
        assert "WebSocket code 4401" in text and "needs a token" in text, text
    finally:
        other.close()

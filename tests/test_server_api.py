"""The HTTP API end to end against a real ``spinr serve`` subprocess, on each training engine
(tests/_engines.py)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from _server import Server, png
from PIL import Image

from codec.bitstream import load_bitstream
from codec.config import ENCODE_OPTIONS
from codec.decoder import ProgressiveDecoder
from codec.image import SUPPORTED_FORMATS
from codec.model_options import MODEL_OPTIONS
from server.options import SERVER_OWNED


@pytest.fixture(scope="module")
def server(tmp_path_factory, engine):
    s = Server(tmp_path_factory.mktemp("api") / "data", "--preview-max-work", "1e9", *engine)
    yield s
    s.close()


@pytest.fixture(scope="module")
def done(server, photo_crop):
    r = server.upload(png(photo_crop), name="astronaut crop", depth=3, steps=30)
    assert r.status_code == 202, r.text
    job = server.wait_state(r.json()["id"], ("done", "failed"))
    assert job["state"] == "done", job
    return job


def test_health_and_docs(server):
    h = server.http.get("/health").json()
    assert h["status"] == "ok" and h["device"] == "cpu" and set(h["jobs"]) == {"queued", "running"}
    assert server.http.get("/docs").status_code == 200
    paths = server.http.get("/openapi.json").json()["paths"]
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/images/{job_id}/preview.png", "/health"} <= set(paths)
    cfg = server.http.get("/api/config").json()
    assert cfg["limits"]["max_upload_bytes"] == 20 * 1024 * 1024 and cfg["ranges"]["bits"] == [2, 16]


OPTION_KEYS = {"name", "type", "min", "max", "min_exclusive", "max_exclusive", "choices", "default", "help"}


def test_api_config_lists_every_option_and_every_presets_value(server):
    cfg = server.http.get("/api/config").json()
    names = [o["name"] for o in cfg["options"]]
    assert names == [o.name for o in ENCODE_OPTIONS if o.name not in SERVER_OWNED]  # device, memory
    for entry in cfg["options"]:
        assert set(entry) == OPTION_KEYS | {"models", "group"}, entry
        assert entry["type"] in ("int", "float", "bool", "choice") and entry["group"] in (
            "rate",
            "model",
            "train",
            "quant",
        )
        assert entry["default"] == cfg["presets"][cfg["default_preset"]][entry["name"]]
    by_name = {o["name"]: o for o in cfg["options"]}
    assert (by_name["width"]["min"], by_name["width"]["max"], by_name["depth"]["max"]) == (1, 1024, 64)
    # Every registered model by default: the browser client decodes them all.
    assert by_name["model"]["choices"] == cfg["models"] == list(MODEL_OPTIONS)
    assert set(MODEL_OPTIONS) == {"spinr", "siren", "fourier", "mfn", "wire", "diner"}
    assert by_name["head"]["choices"] == cfg["heads"] and by_name["head"]["models"] == ["spinr"]
    assert by_name["joint"]["max_exclusive"] and by_name["lr"]["min_exclusive"]
    for values in cfg["presets"].values():
        assert list(values) == names
    assert (
        cfg["presets"]["quick"]["width"] is None and cfg["presets"]["tiny"]["width"] == 16
    )  # sized per rate
    assert cfg["formats"] == list(SUPPORTED_FORMATS) and cfg["ranges"]["width"] == [1, 1024]


def test_upload_answers_at_once_with_a_queued_job(server, photo_crop):
    r = server.upload(png(photo_crop), steps=20)
    assert r.status_code == 202
    job = r.json()
    assert job["state"] in ("queued", "running") and len(job["id"]) == 16
    assert job["image"] == {"width": 64, "height": 48} and job["options"]["steps"] == 20
    assert r.headers["location"] == f"/api/jobs/{job['id']}"
    finished = server.wait_state(job["id"], ("done", "failed"))
    assert finished["state"] == "done" and finished["progress"] == 1
    assert finished["stages"] == 3 and finished["psnr"] is not None  # tiny preset: 2 hidden layers


def test_finished_job_result_and_listing(server, done):
    result = done["result"]
    assert result["packets"] == 5 and len(result["stage_psnr"]) == 4  # header + 4 units, depth 3
    assert result["bytes"] > 0 and result["psnr"] == pytest.approx(result["stage_psnr"][-1], abs=1e-3)
    ids = [j["id"] for j in server.http.get("/api/jobs").json()["jobs"]]
    assert done["id"] in ids
    assert ids == [
        j["id"]
        for j in sorted(server.http.get("/api/jobs").json()["jobs"], key=lambda j: j["created"], reverse=True)
    ]


def test_bitstream_download_header_and_previews(server, done, photo_crop):
    job_id = done["id"]
    r = server.http.get(f"/api/images/{job_id}/bitstream.spnr")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-sha256"] == hashlib.sha256(r.content).hexdigest() == done["result"]["sha256"]
    bs, damaged = load_bitstream(r.content, strict=True)
    assert not damaged and (bs.header.width, bs.header.height) == (64, 48)

    header = server.http.get(f"/api/images/{job_id}/header").json()
    assert header["model"] == "spinr" and header["image"] == {"width": 64, "height": 48}
    assert [p["layer"] for p in header["packets"]] == [None, 0, 1, 2, 3]
    assert header["packets"][0]["name"] == "header" and header["stage_psnr"] == bs.header.stage_psnr
    assert (
        sum(p["bytes"] for p in header["packets"]) == len(r.content) == header["bytes"]
    )  # packets back to back
    assert header["format"] == 2 and header["header_bytes"] == header["packets"][0]["bytes"] < 100

    dec = ProgressiveDecoder.from_bitstream(bs)
    for query, size, depth in [
        ("", (64, 48), None),
        ("?layers=1", (64, 48), 1),
        ("?size=32x20", (32, 20), None),
        ("?scale=2&layers=2", (128, 96), 2),
    ]:
        p = server.http.get(f"/api/images/{job_id}/preview.png{query}")
        assert p.status_code == 200 and p.headers["content-type"] == "image/png", p.text
        img = np.asarray(Image.open(io.BytesIO(p.content)))
        assert (img.shape[1], img.shape[0]) == size
        np.testing.assert_array_equal(img, dec.decode(size=size, depth=depth).rgb)

    orig = server.http.get(f"/api/images/{job_id}/original.png")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(orig.content))), photo_crop)


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("?layers=9", "1..4"),
        ("?layers=0", "layers"),
        ("?size=big", "WIDTHxHEIGHT"),
        ("?size=9000x9000", "limit"),
        ("?size=4000x4000", "over the decode budget of 1e+09 (max_work)"),  # refused before decoding
        ("?size=2x2&scale=2", "not both"),
    ],
)
def test_bad_preview_options_are_422_naming_the_field(server, done, query, needle):
    r = server.http.get(f"/api/images/{done['id']}/preview.png{query}")
    assert r.status_code == 422 and needle in r.json()["detail"]


def test_jpeg_at_a_byte_budget(server, done):
    sizes = []
    for budget in (1500, 4000):
        r = server.http.get(f"/api/images/{done['id']}/jpeg", params={"bytes": budget})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert len(r.content) <= budget and int(r.headers["x-bytes"]) == len(r.content)
        assert Image.open(io.BytesIO(r.content)).format == "JPEG"
        sizes.append(int(r.headers["x-quality"]))
    assert 1 <= sizes[0] < sizes[1] <= 100  # a larger budget buys a higher quality
    r = server.http.get(f"/api/images/{done['id']}/jpeg", params={"bytes": 10})
    assert r.status_code == 422 and "quality 1" in r.json()["detail"]


def test_unknown_ids_are_404(server):
    for path in [
        "/api/jobs/nope",
        "/api/images/nope/bitstream.spnr",
        "/api/images/nope/header",
        "/api/images/nope/preview.png",
        "/api/images/nope/original.png",
        "/api/images/nope/jpeg?bytes=9",
    ]:
        r = server.http.get(path)
        assert r.status_code == 404 and "nope" in r.json()["detail"], path
    assert server.http.delete("/api/jobs/nope").status_code == 404


def test_cancel_a_finished_job_is_409(server, done):
    r = server.http.delete(f"/api/jobs/{done['id']}")
    assert r.status_code == 409 and "done" in r.json()["detail"]
    assert server.job(done["id"])["state"] == "done"

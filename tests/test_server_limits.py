"""Every limit answers a clear HTTP error (413, 415, 422, 429 + Retry-After, 409) and cancel works, on
each training engine (tests/_engines.py)."""

from __future__ import annotations

import struct
import zlib

import httpx
import numpy as np
import pytest
from _server import Server, png, poll


@pytest.fixture(scope="module")
def server(tmp_path_factory, engine):
    s = Server(
        tmp_path_factory.mktemp("limits") / "data",
        "--max-queued", "1", "--max-upload-bytes", "100000", "--max-pixels", "20000", *engine,
    )  # fmt: skip
    yield s
    s.close()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but holds no pixels: what a decompression bomb looks like
    to a server that reads the header (a few dozen bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def test_upload_over_the_size_limit_is_413(server, rng):
    big = rng.integers(0, 255, 150_000, dtype="uint8").tobytes()
    r = server.upload(big)
    assert r.status_code == 413 and "100000" in r.json()["detail"]


def test_request_body_far_over_the_limit_is_refused_before_reading(server):
    r = server.http.post(
        "/api/jobs", content=b"x" * 2_000_000, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert r.status_code == 413 and "limited to" in r.json()["detail"]


def test_chunked_upload_without_content_length_is_cut_off_at_the_limit(server):
    def body():  # a generator: httpx sends it chunked, with no Content-Length to check up front
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
        for _ in range(100):  # 100 x 64 KiB = 6.4 MB offered against a 100 kB limit
            yield b"x" * 65536
        yield b"\r\n--b--\r\n"  # (the limit is the upload limit plus 1 MiB for the form around it)

    try:
        r = server.http.post(
            "/api/jobs", content=body(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
    except httpx.TransportError:
        # The server may close the connection while the client is still writing: also a refusal.
        r = None
    if r is not None:
        assert "content-length" not in {k.lower() for k in r.request.headers}
        assert r.status_code == 413 and "request body is over the limit of" in r.json()["detail"]
    assert server.http.get("/health").status_code == 200  # the server is fine afterwards


def test_not_an_image_is_415(server):
    r = server.upload(b"hello, this is text", name="notes.txt")
    assert r.status_code == 415 and "PNG" in r.json()["detail"]


def test_pixel_count_over_the_limit_is_422(server):
    r = server.upload(png(np.zeros((150, 150, 3), np.uint8)))
    assert r.status_code == 422 and "20000" in r.json()["detail"]


def test_decompression_bomb_is_422_without_decoding(server):
    r = server.upload(png_header_only(100_000, 100_000))
    assert r.status_code == 422
    assert "pixels" in r.json()["detail"] or "too large" in r.json()["detail"]


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"width": 99999}, "width"),
        ({"width": 99999}, "1024"),
        ({"bits": 1}, "bits"),
        ({"steps": "many"}, "steps"),
        ({"model": "resnet"}, "spinr, siren"),
        ({"head": "both"}, "per_stage, shared"),
        ({"preset": "huge"}, "tiny"),
        ({"lr": 5}, "lr"),
        ({"model": "siren", "head": "shared"}, "head"),
        ({"joint": 1}, "joint"),
        ({"qat": -0.5}, "qat"),
        ({"model": "siren", "joint": 0.5}, "joint applies to the spinr model only"),
    ],
)
def test_bad_options_are_422_naming_the_field(server, photo_crop, fields, needle):
    r = server.upload(png(photo_crop), **fields)
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"]


def test_missing_file_is_422(server):
    r = server.http.post("/api/jobs", data={"width": "8"})
    assert r.status_code == 422 and "file" in r.json()["detail"]


def test_queue_limit_429_with_retry_after_then_cancel(server, photo_crop):
    image = png(photo_crop[:24, :32])
    running = server.upload(image, steps=200000)  # long: it holds the only worker
    assert running.status_code == 202
    running_id = running.json()["id"]
    server.wait_state(running_id, ("running",))
    queued = server.upload(image)
    assert queued.status_code == 202 and queued.json()["state"] == "queued"
    refused = server.upload(image)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1 and "limit is 1" in refused.json()["detail"]

    # Not finished: no bitstream yet.
    assert server.http.get(f"/api/images/{running_id}/bitstream.spnr").status_code == 409

    # Cancel the queued job, then the running one; both end cancelled and the worker is free again.
    r = server.http.delete(f"/api/jobs/{queued.json()['id']}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    progressed = poll(lambda: (j := server.job(running_id))["step"] > 0 and j, 30, "training progress")
    assert progressed["state"] == "running" and progressed["steps"] == 200000
    assert progressed["progress"] == pytest.approx(progressed["step"] / 200000, abs=1e-3)
    r = server.http.delete(f"/api/jobs/{running_id}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert server.http.delete(f"/api/jobs/{running_id}").status_code == 409

    after = server.upload(image, steps=20)
    assert after.status_code == 202
    assert server.wait_state(after.json()["id"], ("done", "failed"))["state"] == "done"
    assert server.job(queued.json()["id"])["state"] == "cancelled"
    assert server.job(running_id)["state"] == "cancelled"

"""Training memory per job (issue 11 item 2; codec/memory.py through server/plan.py): a job that
cannot fit is trained on pixel batches when that fits, else refused before anything is decoded or
queued, naming the numbers. Real server, real SQLite; the estimate's constants against the
measurements they came from."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from _server import Server, png
from PIL import Image

from codec.config import apply_overrides, preset
from codec.memory import EVAL_CHUNK, GIB, MIN_BATCH, MemoryTooLarge, estimate, fit_memory
from server.plan import plan_job

LIMIT_GIB = 0.5


def zeros_png(width: int, height: int) -> bytes:
    """A large picture in a small upload (the issue's 12 KB 2000x2000 image of zeros)."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("memory") / "data", "--max-job-memory", str(LIMIT_GIB))
    yield s
    s.close()


def test_a_job_that_cannot_fit_is_refused_naming_the_numbers(server):
    data = zeros_png(2000, 2000)
    assert len(data) < 20_000
    before = server.http.get("/api/jobs").json()["jobs"]
    r = server.upload(data, preset="quick", steps=2)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    # quick is a rate preset: the size model picks the width for the image and the default rate
    assert re.match(
        r"this encode needs 4000000 pixels x width \d+ x \d+ layers, every pixel per step, full-image passes "
        r"in chunks of 65536 pixels: about ",
        detail,
    )
    assert "the limit is 0.50 GiB (spinr serve --max-job-memory)" in detail
    assert "use a smaller image, a smaller width or depth, or raise spinr serve --max-job-memory" in detail
    assert server.http.get("/api/jobs").json()["jobs"] == before  # nothing stored, nothing queued
    assert server.http.get("/api/config").json()["limits"]["max_job_memory"] == int(LIMIT_GIB * GIB)


def test_a_job_over_the_limit_trains_on_pixel_batches_when_they_fit(server, photo_crop):
    big = np.ascontiguousarray(np.tile(photo_crop, (8, 8, 1)))  # 512x384: full batch is over 0.5 GiB
    r = server.upload(png(big), preset="tiny", width=64, depth=4, steps=2)
    assert r.status_code == 202, r.text
    batch = r.json()["options"]["batch_pixels"]
    assert f"training on {batch} pixels per step" in r.json()["plan"]["notes"][0]
    cfg = apply_overrides(preset("tiny"), {"width": 64, "depth": 4})
    assert estimate(cfg, 512 * 384).total > LIMIT_GIB * GIB  # over as asked, ...
    # The plan judges the whole image in chunks first (codec/chunked.py), then batches the training.
    assert "judging the whole image in chunks of 65536 pixels" in r.json()["plan"]["notes"][1]
    fitted = apply_overrides(cfg, {"batch_pixels": batch}).replace(**{"train.eval_pixels": EVAL_CHUNK})
    assert (
        MIN_BATCH <= batch < 512 * 384 and estimate(fitted, 512 * 384).total <= LIMIT_GIB * GIB
    )  # ... fits now
    job = server.wait_state(r.json()["id"], ("done", "failed"), timeout=120)
    assert job["state"] == "done", job
    # A batch the user chose is kept; one too large is refused naming the largest that fits.
    r = server.upload(png(big), preset="tiny", width=64, depth=4, steps=2, batch_pixels=512 * 384)
    assert r.status_code == 422 and f"batch_pixels of at most {batch} fits" in r.json()["detail"]


def test_a_job_that_fits_is_left_alone(server, photo_crop):
    r = server.upload(png(photo_crop), steps=2)
    assert r.status_code == 202 and "batch_pixels" not in r.json()["options"]


@pytest.mark.parametrize(
    ("model", "width", "depth", "batch", "measured_mb"),
    [  # peak RSS over a warmed-up process, 400x400 pixels, 2 steps (codec/memory.py's calibration)
        ("spinr", 32, 4, 0, 542),
        ("spinr", 64, 4, 0, 676),
        ("spinr", 32, 8, 0, 815),
        ("siren", 32, 4, 0, 336),
        ("siren", 128, 4, 0, 951),
        ("spinr", 32, 4, 4096, 205),
        ("spinr", 64, 4, 4096, 184),
        ("spinr", 32, 8, 4096, 300),
        ("siren", 32, 4, 4096, 150),
        ("siren", 128, 4, 4096, 351),
    ],
)
def test_the_estimate_is_an_upper_bound_of_the_measurements(model, width, depth, batch, measured_mb):
    cfg = apply_overrides(
        preset("quick"), {"model": model, "width": width, "depth": depth, "batch_pixels": batch}
    )
    ratio = measured_mb * 2**20 / estimate(cfg, 400 * 400).total
    assert 0.4 <= ratio <= 1.0, ratio


def test_plan_job_without_a_server():
    cfg = apply_overrides(preset("quick"), {})
    options, plan = plan_job(cfg, {"x": 1}, 64, 48, GIB, None)
    assert options == {"x": 1, "max_memory": 1.0} and plan["batch_pixels"] == 0 and plan["notes"] == []
    with pytest.raises(MemoryTooLarge, match="holds at most about"):
        plan_job(cfg, {}, 4000, 4000, GIB // 8, None)


def test_fit_memory_batches_or_refuses():
    cfg = apply_overrides(preset("tiny"), {"width": 64, "depth": 4})
    pixels = 512 * 384
    assert fit_memory(cfg, pixels, GIB * 64) is cfg  # fits: unchanged
    fitted = fit_memory(cfg, pixels, GIB // 2)
    assert MIN_BATCH <= fitted.train.batch_pixels < pixels
    assert estimate(fitted, pixels).total <= GIB // 2 < estimate(cfg, pixels).total
    with pytest.raises(MemoryTooLarge, match=r"the limit is 10\.2 MiB \(--max-memory\)"):
        fit_memory(cfg, pixels, GIB // 100)

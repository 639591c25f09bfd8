"""``spinr upload``, ``spinr stream`` and ``spinr netsim proxy`` as a user runs them: real processes, real sockets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _server import Proxy, Server, png, run_cli
from PIL import Image

from codec.bitstream import load_bitstream
from codec.decoder import ProgressiveDecoder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("cli") / "data")
    yield s
    s.close()


@pytest.fixture(scope="module")
def crop_file(tmp_path_factory, photo_crop):
    path = tmp_path_factory.mktemp("img") / "crop.png"
    path.write_bytes(png(photo_crop))
    return path


@pytest.fixture(scope="module")
def image(server, crop_file):
    r = run_cli("upload", str(crop_file), "--server", server.url, "--wait", "--json", "--preset", "tiny",
                "--depth", "4", "--steps", "30", "--name", "cli upload")  # fmt: skip
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job["state"] == "done" and job["name"] == "cli upload" and job["options"]["depth"] == 4
    bs, _ = load_bitstream(server.http.get(f"/api/images/{job['id']}/bitstream.spnr").content, strict=True)
    return {"id": job["id"], "bitstream": bs}


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def decode_units(bs, units) -> np.ndarray:
    dec = ProgressiveDecoder(bs.header, bs.stream_id)
    for u in units:
        dec.add_unit(bs.units[u])
    return dec.decode().rgb


def one_line_error(r, *needles: str) -> None:
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_upload_without_wait_prints_the_id(server, crop_file):
    r = run_cli("upload", str(crop_file), "--server", server.url, "--steps", "10")
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.split()[0]
    assert server.wait_state(job_id, ("done", "failed"))["state"] == "done"


def test_upload_errors_are_one_line(server, crop_file, tmp_path):
    one_line_error(run_cli("upload", str(tmp_path / "none.png"), "--server", server.url), "none.png")
    # Outside the codec's range: refused before sending; inside it but over this server's cap: 422.
    one_line_error(
        run_cli("upload", str(crop_file), "--server", server.url, "--width", "99999"),
        "--width: width 99999 is out of range: allowed 1..4096",
    )
    one_line_error(
        run_cli("upload", str(crop_file), "--server", server.url, "--width", "2000"),
        "422",
        "width 2000 is out of range: allowed 1..1024 (this server's limit",
    )
    one_line_error(run_cli("upload", str(crop_file), "--server", "http://127.0.0.1:9"), "cannot reach")


def test_stream_writes_a_png_per_layer_and_the_exact_final_picture(server, image, crop_file, tmp_path):
    out = tmp_path / "out"
    r = run_cli(
        "stream", image["id"], "--server", server.url, "--out", str(out), "--ref", str(crop_file), "--json"
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    bs = image["bitstream"]
    n = bs.header.num_units
    assert result["missing"] == [] and result["received"] == list(range(n)) and result["reconnects"] == 0
    assert result["files"] == [f"layer-{k:02d}.png" for k in range(1, n + 1)]
    full = ProgressiveDecoder.from_bitstream(bs).decode().rgb
    np.testing.assert_array_equal(read_png(out / "final.png"), full)
    np.testing.assert_array_equal(
        read_png(out / "layer-01.png"), ProgressiveDecoder.from_bitstream(bs).decode(depth=1).rgb
    )
    psnr = [e["psnr"] for e in result["timeline"] if e["new_picture"]]
    assert len(psnr) == n and psnr[-1] > psnr[0]
    assert result["psnr"] == pytest.approx(bs.header.stage_psnr[-1], abs=0.05)


def test_stream_through_a_lossy_proxy_sees_drops(server, image, tmp_path):
    proxy = Proxy(server.ws, tmp_path, "--loss", "0.3", "--channel-seed", "5")
    try:
        out = tmp_path / "out"
        url = f"{proxy.ws}/ws/stream/{image['id']}"
        r = run_cli("stream", url, "--out", str(out), "--json", "--retries", "0")
        assert r.returncode == 0, r.stderr + proxy.output()
        result = json.loads(r.stdout)
        assert result["missing"], "channel seed 5 at 30% loss drops something between proxy and client"
        assert result["server"][0]["dropped"] == []  # the server's own link was perfect: the proxy dropped
        assert sorted(result["received"] + result["missing"]) == list(
            range(image["bitstream"].header.num_units)
        )
        if result["units_used"]:
            np.testing.assert_array_equal(
                read_png(out / "final.png"), decode_units(image["bitstream"], result["received"])
            )
    finally:
        proxy.stop()


def test_stream_resumes_after_the_connection_drops(server, image, tmp_path):
    proxy = Proxy(server.ws, tmp_path, "--disconnect-after", "3")  # header + 2 layers, then the link dies
    try:
        out = tmp_path / "out"
        r = run_cli("stream", f"{proxy.ws}/ws/stream/{image['id']}", "--out", str(out), "--json")
        assert r.returncode == 0, r.stderr + proxy.output()
        result = json.loads(r.stdout)
        assert result["reconnects"] >= 1 and result["missing"] == []
        assert result["server"][-1]["skipped"]  # the resumed request listed what the client had
        np.testing.assert_array_equal(
            read_png(out / "final.png"), ProgressiveDecoder.from_bitstream(image["bitstream"]).decode().rgb
        )
    finally:
        proxy.stop()


def test_stream_errors_are_one_line(server, tmp_path):
    one_line_error(
        run_cli("stream", "nope", "--server", server.url, "--out", str(tmp_path)), "unknown image", "4404"
    )
    one_line_error(run_cli("stream", "x", "--server", "http://127.0.0.1:9", "--out", str(tmp_path), "--retries", "0"),
                   "lost")  # fmt: skip


def test_stream_uploads_then_streams_through_a_relay(server, crop_file, tmp_path):
    """The compose demo's command: upload a picture to the server, wait for it, stream it through a
    netsim proxy (--via), PSNR per layer against it."""
    proxy = Proxy(server.ws, tmp_path)
    try:
        out = tmp_path / "out"
        r = run_cli("stream", "--upload", str(crop_file), "--upload-preset", "tiny", "--server", server.url,
                    "--via", proxy.ws, "--out", str(out), "--ref", str(crop_file), "--json")  # fmt: skip
        assert r.returncode == 0, r.stderr + proxy.output()
        result = json.loads(r.stdout)
        image_id = result["url"].rsplit("/", 1)[1]
        assert result["url"] == f"{proxy.ws}/ws/stream/{image_id}" and result["missing"] == []
        job = server.job(image_id)
        assert job["state"] == "done" and job["options"]["preset"] == "tiny" and job["name"] == "crop.png"
        bs, _ = load_bitstream(server.http.get(f"/api/images/{image_id}/bitstream.spnr").content)
        np.testing.assert_array_equal(
            read_png(out / "final.png"), ProgressiveDecoder.from_bitstream(bs).decode().rgb
        )
        assert result["psnr"] == pytest.approx(bs.header.stage_psnr[-1], abs=0.005)  # sent in 1/100 dB
    finally:
        proxy.stop()
    one_line_error(
        run_cli("stream", "--server", server.url, "--out", str(tmp_path)), "an id or ws:// URL, or --upload"
    )
    one_line_error(
        run_cli("stream", "x", "--upload", str(crop_file), "--out", str(tmp_path)), "(one of them)"
    )
    one_line_error(
        run_cli("stream", "x", "--upload-preset", "tiny", "--out", str(tmp_path)), "goes with --upload"
    )

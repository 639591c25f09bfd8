"""kill -9 during training, restart on the same data folder: nothing is lost silently.

Policy (docs/API.md): finished images are served as before (checksums verified), jobs caught running
are failed with "server restarted during training", queued jobs run after the restart; on each
training engine (tests/_engines.py: a Ray server's actors die with their killed driver).
"""

from __future__ import annotations

import hashlib

from _server import Server, png, poll


def test_restart_keeps_finished_fails_running_resumes_queued(tmp_path, photo_crop, engine):
    data = tmp_path / "data"
    image = png(photo_crop)
    first = Server(data, *engine)
    try:
        finished = first.upload(image, steps=20).json()["id"]
        first.wait_state(finished, ("done",))
        bitstream = first.http.get(f"/api/images/{finished}/bitstream.spnr").content
        header = first.http.get(f"/api/images/{finished}/header").json()

        running = first.upload(image, steps=200000).json()["id"]
        poll(lambda: first.job(running)["step"] > 0, 30, "the long job to train")
        queued = first.upload(image, steps=20).json()["id"]
        assert first.job(queued)["state"] == "queued"
        first.kill9()
    finally:
        first.stop()

    second = Server(data, *engine)
    try:
        again = second.http.get(f"/api/images/{finished}/bitstream.spnr")
        assert again.status_code == 200
        assert hashlib.sha256(again.content).hexdigest() == hashlib.sha256(bitstream).hexdigest()
        assert second.http.get(f"/api/images/{finished}/header").json() == header
        assert second.job(finished)["state"] == "done"

        interrupted = second.job(running)
        assert interrupted["state"] == "failed"
        assert interrupted["error"] == "server restarted during training"

        resumed = second.wait_state(queued, ("done", "failed"))
        assert resumed["state"] == "done" and resumed["result"]["packets"] == 4

        # A file damaged on disk is reported, never served.
        path = data / "images" / finished / "bitstream.spnr"
        raw = bytearray(path.read_bytes())
        raw[-1] ^= 0xFF
        path.write_bytes(bytes(raw))
        r = second.http.get(f"/api/images/{finished}/bitstream.spnr")
        assert r.status_code == 500 and "damaged" in r.json()["detail"]
    finally:
        second.close()

"""The job lifecycle on each training engine (tests/_engines.py: the process pool and a real local
Ray cluster): a worker killed mid-job fails that job with a reason, a new worker takes its place and
the server keeps serving."""

from __future__ import annotations

import json
import os
import signal

from _server import Server, png, poll


def ready_workers(server: Server) -> list[dict]:
    """The ``worker ready`` reports in the server's JSON log, oldest first."""
    out = []
    for line in server.log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"worker ready"' in line:
            out.append(json.loads(line))
    return out


def test_a_killed_worker_fails_its_job_with_a_reason_and_the_server_keeps_serving(
    tmp_path, photo_crop, engine
) -> None:
    s = Server(tmp_path / "data", *engine)
    try:
        health = s.http.get("/health").json()["workers"]
        assert health["engine"] == engine[1] and health["threads"] == [1]
        image = png(photo_crop[:24, :32])
        long = s.upload(image, steps=200_000).json()["id"]
        poll(lambda: s.job(long)["step"] > 0, 60, "the long job to train")
        (first,) = ready_workers(s)
        os.kill(first["pid"], signal.SIGKILL)

        failed = s.wait_state(long, ("failed", "done", "cancelled"), 60)
        assert failed["state"] == "failed", failed
        assert "died" in failed["error"] and failed["error"].endswith("while training"), failed["error"]
        # A new worker takes its place; the next job trains on it.
        poll(lambda: len(ready_workers(s)) == 2, 60, "a replacement worker")
        assert ready_workers(s)[1]["pid"] != first["pid"]
        after = s.upload(image, steps=20).json()["id"]
        assert s.wait_state(after, ("done", "failed"), 60)["state"] == "done"
        assert s.http.get("/health").json()["workers"]["ready"] == 1
    finally:
        s.close()

"""``spinr serve --batch``: queued jobs of one shape trained together by one worker, against a real
server (uvicorn on a loopback port, spawned workers or Ray actors: tests/_engines.py, SQLite). Each job keeps its own progress, result
and cancel; the result is the one the job gets alone."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from _server import Server, png

from codec.encode import encode_image
from codec.threads import cores, threads_per_worker
from server.worker import encode_config


@pytest.fixture(scope="module")
def server(tmp_path_factory, engine):
    s = Server(tmp_path_factory.mktemp("batch") / "data", "--batch", "3", *engine)
    yield s
    s.close()


def started_tasks(server: Server) -> list[list[str]]:
    """The job ids of every task the server handed a worker, from its JSON log lines."""
    tasks = []
    for line in server.log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"job started"' in line:
            tasks.append(json.loads(line)["jobs"])
    return tasks


def test_queued_jobs_of_one_shape_train_as_one_batch_each_with_its_own_cancel(server: Server) -> None:
    health = server.http.get("/health").json()["workers"]
    assert health["batch"] == 3 and health["threads"] == [threads_per_worker(1)]
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(4)]
    # A long job keeps the only worker busy while the others queue.
    blocker = server.upload(png(crops[0]), steps=100_000).json()["id"]
    server.wait_state(blocker, ("running",))
    same = [server.upload(png(c), steps=1500, seed=i).json()["id"] for i, c in enumerate(crops[1:])]
    other = server.upload(png(crops[0][:20]), steps=40).json()["id"]  # another size: trained alone
    assert server.http.delete(f"/api/jobs/{blocker}").json()["state"] == "cancelled"

    # The three same-size jobs run together; one of them is cancelled mid-way, the others train on.
    running = server.wait_state(same[1], ("running",))
    assert server.job(same[0])["state"] == "running" and server.job(same[2])["state"] == "running"
    assert running["steps"] == 1500
    assert server.http.delete(f"/api/jobs/{same[1]}").json()["state"] == "cancelled"
    finished = [server.wait_state(j, ("done", "failed", "cancelled"), 120) for j in (same[0], same[2], other)]
    assert [j["state"] for j in finished] == ["done", "done", "done"], finished
    assert server.job(same[1])["state"] == "cancelled"
    assert started_tasks(server) == [[blocker], same, [other]]

    # A batched job ends where it would alone: the same fit up to float rounding.
    job = finished[1]
    alone = encode_image(crops[3], encode_config(job["options"], "cpu"))
    assert job["progress"] == 1.0 and job["step"] == 1500
    assert abs(job["result"]["psnr"] - alone.psnr) < 0.05, (job["result"]["psnr"], alone.psnr)


def test_two_workers_share_the_cores(tmp_path) -> None:
    s = Server(tmp_path / "data", "--workers", "2")
    try:
        from _server import poll

        threads = poll(
            lambda: (w := s.http.get("/health").json()["workers"])["ready"] == 2 and w["threads"],
            60,
            "both workers ready",
        )
        assert threads == [threads_per_worker(2)] * 2 and threads[0] <= max(1, cores() // 2)
        assert sum(threads) <= max(cores(), 2), (threads, os.sched_getaffinity(0))
    finally:
        s.close()

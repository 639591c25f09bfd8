"""The data folder with real processes: one server at a time (issue 11, item 11), a clean stop fails
the running job with its reason (item 12), a damaged spinr.db is one line saying what to do (item 16)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from _server import ROOT, Server, env, free_port, png, poll, run_cli

from server.store import STOP_REASON, DataDirLock, Store, StoreError


def serve(data: Path) -> subprocess.CompletedProcess[str]:
    """``spinr serve`` expected to refuse at once (a server that started would outlive the timeout)."""
    port = str(free_port())
    return run_cli("serve", "--data-dir", str(data), "--port", port, "--device", "cpu", timeout=120)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spinr serve: error: "), result.stderr
    return lines[0]


def test_second_server_on_the_same_data_dir_is_refused_and_the_first_keeps_training(
    tmp_path: Path, photo_crop
) -> None:
    data = tmp_path / "data"
    first = Server(data)
    try:
        job = first.upload(png(photo_crop), steps=200000).json()["id"]
        poll(lambda: first.job(job)["step"] > 0, 60, "the long job to train")
        line = one_line_error(serve(data))
        assert repr(str(data)) in line and f"PID {first.proc.pid}" in line
        # The first server's job was not touched (the bug: the second server failed it on startup).
        step = first.job(job)["step"]
        poll(lambda: first.job(job)["step"] > step, 60, "the job to keep training")
        assert first.job(job)["state"] == "running" and first.job(job)["error"] is None
    finally:
        first.close()
    # Once the first server is gone its lock is too: the folder can be served again.
    second = Server(data)
    second.close()


def test_sigterm_during_training_fails_the_job_with_its_reason(tmp_path: Path, photo_crop, engine) -> None:
    data = tmp_path / "data"
    server = Server(data, *engine)
    try:
        job = server.upload(png(photo_crop), steps=200000).json()["id"]
        poll(lambda: server.job(job)["step"] > 0, 60, "the long job to train")
        server.proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells of it (on
        # Ray, whose driver handles SIGTERM with sys.exit(15): status 15)
        assert server.proc.wait(60) in (0, -signal.SIGTERM, signal.SIGTERM), server.output()
        assert "Application shutdown complete" in server.output()
    finally:
        server.close()
    store = Store(data)  # the real SQLite file the server left
    try:
        stopped = store.get_job(job)
    finally:
        store.close()
    assert stopped is not None
    assert (stopped["state"], stopped["error"]) == ("failed", STOP_REASON)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_damaged_database_is_one_line_with_what_to_do(tmp_path: Path, damage: str) -> None:
    data = tmp_path / "data"
    store = Store(data)
    for i in range(200):
        store.create_job(f"job{i}", "x" * 100, {"steps": 1}, 4, 3, b"png")
    store.close()
    db = data / "spinr.db"
    raw = db.read_bytes()
    if damage == "garbage":
        db.write_bytes(bytes(range(256)) * (len(raw) // 256))
    elif damage == "truncated":
        db.write_bytes(raw[: len(raw) // 2])
    else:  # an intact SQLite file of another program
        db.unlink()
        with sqlite3.connect(db) as other:
            other.execute("CREATE TABLE jobs (id TEXT, colour TEXT)")
    line = one_line_error(serve(data))
    assert repr(str(db)) in line and "damaged or not spinr's" in line
    assert "move spinr.db" in line and "restore it from a backup" in line
    with pytest.raises(StoreError, match="damaged or not spinr's"):
        Store(data)
    DataDirLock(data).acquire().release()  # the failed open let go of the lock


def lock_in_child(path: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from server.store import Store; Store(sys.argv[1])"
    return subprocess.run(
        [sys.executable, "-c", code, str(path)],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_refused_in_child(path: Path) -> None:
    refused = lock_in_child(path)
    assert refused.returncode != 0 and "DataDirBusy" in refused.stderr
    assert f"in use by another spinr server (PID {os.getpid()})" in refused.stderr


def test_lock_is_reentrant_in_a_process_and_exclusive_across_processes(tmp_path: Path) -> None:
    outer = DataDirLock(tmp_path).acquire()
    inner = Store(tmp_path)  # the same process (spinr serve, then the app's store): allowed
    assert (tmp_path / "spinr.lock").read_text() == f"{os.getpid()}\n"
    assert_refused_in_child(tmp_path)
    inner.close()
    assert_refused_in_child(tmp_path)  # `outer` still holds it
    outer.release()
    assert (tmp_path / "spinr.lock").read_text() == ""  # released and the PID cleared
    assert lock_in_child(tmp_path).returncode == 0

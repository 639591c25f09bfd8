"""Helpers for the end-to-end tests: a real ``spinr serve`` (and ``spinr netsim proxy``) in a subprocess."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from codec.bitstream import load_bitstream

ROOT = Path(__file__).resolve().parent.parent
SPINR = [sys.executable, "-c", "import sys; from client.cli import main; sys.exit(main(sys.argv[1:]))"]
TINY = {"preset": "tiny"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Call ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("OMP_NUM_THREADS", "2")
    e["PYTHONUNBUFFERED"] = "1"
    return e


class Process:
    """A spinr subprocess in its own process group (so kill -9 takes its workers too), stderr to a file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._log_file = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*SPINR, *args],
            cwd=ROOT,
            env=env(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log_file.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        if self.proc.poll() is None or _group_alive(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log_file.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


class Server(Process):
    def __init__(self, data_dir: Path, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            [
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
                "--preset",
                "tiny",
                "--device",
                "cpu",
                *extra,
            ],
            data_dir.parent / f"server-{self.port}.log",
        )
        self.http = httpx.Client(base_url=self.url, timeout=30)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()  # a server that never got ready must not outlive the failed test
            raise

    def wait_ready(self, timeout: float = 120.0) -> None:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                r = self.http.get("/health")
            except httpx.TransportError:
                return False
            return r.status_code == 200 and r.json()["workers"]["ready"] >= 1

        poll(ready, timeout, "the server's /health with a ready worker", 0.1)

    def upload(self, image: bytes, name: str = "crop.png", **fields: Any) -> httpx.Response:
        data = {**TINY, **{k: str(v) for k, v in fields.items()}}
        return self.http.post("/api/jobs", files={"file": (name, image, "image/png")}, data=data)

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.http.get(f"/api/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_state(self, job_id: str, states: tuple[str, ...], timeout: float = 60.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["state"] in states else None

        return poll(reached, timeout, f"job {job_id} to reach {states}", 0.05)

    def close(self) -> None:
        self.http.close()
        self.stop()


class Proxy(Process):
    def __init__(self, upstream: str, log_dir: Path, *channel: str) -> None:
        self.port = free_port()
        self.ws = f"ws://127.0.0.1:{self.port}"
        super().__init__(
            ["netsim", "proxy", "--listen", f"127.0.0.1:{self.port}", "--upstream", upstream, *channel],
            log_dir / f"proxy-{self.port}.log",
        )

        def listening() -> bool:
            if not self.alive():
                raise AssertionError(f"proxy exited with {self.proc.returncode}:\n{self.output()}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        poll(listening, 20, "the proxy to listen", 0.05)


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SPINR, *args], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout
    )


def serve(tmp_path_factory: Any, name: str, *extra: str) -> Iterator[Server]:
    """A module's ``spinr serve`` (flags ``extra``) on a fresh data folder, closed after the module's
    tests: ``yield from`` it in a module-scoped fixture."""
    srv = Server(tmp_path_factory.mktemp(name) / "data", *extra)
    try:
        yield srv
    finally:
        srv.close()


def finished(server: Server, image: bytes, name: str = "crop.png", **options: Any) -> str:
    """Upload ``image`` with the encode ``options`` and wait for its job to be done; its id."""
    r = server.upload(image, name=name, **options)
    assert r.status_code == 202, r.text
    job = server.wait_state(r.json()["id"], ("done", "failed"))
    assert job["state"] == "done", job
    return str(job["id"])


def streamed_image(server: Server, image: bytes, **options: Any) -> dict[str, Any]:
    """A finished image and its bitstream as the server sends it: ``{"id", "bitstream"}``."""
    job_id = finished(server, image, **options)
    bs, _ = load_bitstream(server.http.get(f"/api/images/{job_id}/bitstream.spnr").content, strict=True)
    return {"id": job_id, "bitstream": bs}

"""``spinr bench load``: N concurrent WebSocket stream clients against a real server.

Without ``--url`` it starts ``spinr serve`` on a loopback port with a fresh data folder, uploads a
small image and waits for its bitstream, so the run measures a real uvicorn process end to end. Every
client opens ``/ws/stream/{id}`` at the same moment, sends its start message and reads until the
``done`` message and close 1000. Measured per client: seconds from the connect call to the first
layer packet (the header packet comes before it) and to the close; anything else (a refused
connection, another close code, no ``done``, a timeout) is an error, counted by kind. The server's RSS
is read from ``/proc`` before the clients start and sampled every 20 ms while they run. The clients
share the machine with the server: their own CPU per stream is reported beside the server's, and
``reference`` runs them against a bare WebSocket app too, for the floor the machine allows. The load
generator (``client``: lean or full) is :mod:`benchmarks.load_clients`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.load_clients import CLIENTS, ClientResult, RunClients, event_loop, warm_up
from benchmarks.procstat import proc_stat

SPINR = [sys.executable, "-c", "import sys; from client.cli import main; sys.exit(main(sys.argv[1:]))"]


@dataclass
class LocalServer:
    """``spinr serve`` in a subprocess and process group of its own, stopped with SIGTERM (then SIGKILL)."""

    data_dir: Path
    port: int = 0
    streams: int = 64
    """Streams the server lets one client address open at once (every benchmark client is 127.0.0.1)."""
    process: subprocess.Popen[bytes] | None = None
    extra: tuple[str, ...] = ()
    """More ``spinr serve`` flags (e.g. ``--batch 10``)."""
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        self.log = self.data_dir.parent / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        import httpx

        args = ["serve", "--port", str(self.port), "--data-dir", str(self.data_dir), "--preset", "tiny"]
        args += ["--device", "cpu", "--log-level", "warning", *self.extra]
        args += ["--max-streams", str(max(1024, self.streams)), "--max-streams-per-client", str(self.streams)]
        # A process group of its own (stopped as one), in the benchmark's session: the scheduler groups
        # by session (autogroup), and a new session put the server at the default priority while the
        # clients and the reference app kept the benchmark's (docs/LOAD.md).
        group: dict[str, Any] = (
            {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
        )
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([*SPINR, *args], stdout=log, stderr=subprocess.STDOUT, **group)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"spinr serve exited with {self.process.returncode}: {self.log.read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.TransportError):
                health = httpx.get(f"{self.url}/health", timeout=5).json()
                if health["workers"]["ready"] >= 1:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"spinr serve did not become ready within {timeout:g} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (its own, not its children's)."""
    stat = proc_stat(pid)
    return None if stat is None else stat[0]


def small_image(size: int = 32) -> bytes:
    """A seeded gradient with noise, as PNG: small enough that the stream is a few kilobytes."""
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rgb = np.stack([x, y, (x + y) / 2], axis=-1) * 200 + np.random.default_rng(0).uniform(
        0, 55, (size, size, 3)
    )
    buf = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def prepare_stream(url: str, steps: int, timeout: float = 600.0) -> dict[str, Any]:
    """Upload the small image and wait until its bitstream is ready; the finished job."""
    import httpx

    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post(
            "/api/jobs", files={"file": ("load.png", small_image(), "image/png")}, data={"steps": str(steps)}
        )
        r.raise_for_status()
        job_id = r.json()["id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = http.get(f"/api/jobs/{job_id}").json()
            if job["state"] == "done":
                return job
            if job["state"] in ("failed", "cancelled"):
                raise RuntimeError(f"the load stream's job {job_id} {job['state']}: {job['error']}")
            time.sleep(0.2)
    raise RuntimeError(f"the load stream's job did not finish within {timeout:g} s")


async def _run_clients(
    run: RunClients, ws_url: str, start: dict[str, Any], clients: int, timeout: float, pid: int | None
) -> tuple[list[ClientResult], list[float]]:
    samples: list[float] = []

    async def sample() -> None:
        while True:
            value = rss_mb(pid) if pid else None
            if value is not None:
                samples.append(value)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        results = await run(ws_url, start, clients, timeout)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    return results, samples


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(values)
    return {
        "p50": round(float(np.percentile(a, 50)), 4),
        "p95": round(float(np.percentile(a, 95)), 4),
        "p99": round(float(np.percentile(a, 99)), 4),
        "max": round(float(a.max()), 4),
    }


def measure(
    ws_url: str, start: dict[str, Any], clients: int, timeout: float, pid: int | None, client: str = "lean"
) -> dict[str, Any]:
    """One round of ``clients`` concurrent streams from ``ws_url`` by the load generator ``client``
    (:data:`benchmarks.load_clients.CLIENTS`): their numbers, the serving process's RSS and CPU
    (``pid``), this process's CPU (the clients') and the machine's load."""
    warm_up()
    run = event_loop(client)
    load_start = os.getloadavg()[0]
    rss_start = rss_mb(pid) if pid else None
    cpu_start = cpu_seconds(pid) if pid else None
    # The generator's own heap (numpy, httpx, websockets) out of the collector's sight while the round
    # runs: a full collection traversing it paused every client at once (as server.app.settle_heap).
    gc.collect()
    gc.freeze()
    try:
        t0, own0 = time.perf_counter(), time.process_time()
        results, samples = run(_run_clients(CLIENTS[client], ws_url, start, clients, timeout, pid))
        wall, own = time.perf_counter() - t0, time.process_time() - own0
    finally:
        gc.unfreeze()
    rss_end = rss_mb(pid) if pid else None
    cpu_end = cpu_seconds(pid) if pid else None
    errors = Counter(r.error for r in results if r.error)
    ok = [r for r in results if not r.error]
    return {
        "layers_per_stream": max((r.layers for r in ok), default=0),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "first_layer_s": percentiles([r.first_layer for r in ok if r.first_layer is not None]),
        "complete_s": percentiles([r.complete for r in ok if r.complete is not None]),
        "wall_s": round(wall, 3),
        "streams_per_s": round(len(ok) / wall, 1) if wall > 0 else None,
        "server_rss_mb": {
            "start": None if rss_start is None else round(rss_start, 1),
            "peak": round(max(samples), 1) if samples else None,
            "end": None if rss_end is None else round(rss_end, 1),
            "peak_over_start": round(max(samples) / rss_start, 3) if samples and rss_start else None,
        },
        # CPU seconds spent while the clients ran, per stream: what the numbers above cost, whatever
        # else the machine was doing (the clients share it with the server).
        "server_cpu_ms_per_stream": None
        if cpu_start is None or cpu_end is None
        else round((cpu_end - cpu_start) * 1000 / clients, 2),
        "client_cpu_ms_per_stream": round(own * 1000 / clients, 2),
        # The machine's 1-minute load average before and after: what else was running meanwhile.
        "load_average_start": round(load_start, 2),
        "load_average": round(os.getloadavg()[0], 2),
    }


def bench_load(
    clients: int,
    url: str | None = None,
    job_id: str | None = None,
    channel: dict[str, Any] | None = None,
    steps: int = 30,
    timeout: float = 120.0,
    server_pid: int | None = None,
    reference: bool = False,
    client: Sequence[str] = ("lean",),
) -> dict[str, Any]:
    """Run ``clients`` concurrent streams; the numbers as a dict (see the module docstring). With
    ``reference``, the same clients against a bare WebSocket app right after
    (:mod:`benchmarks.load_reference`): the floor this machine allowed at that moment. ``client``:
    the load generators (:data:`benchmarks.load_clients.CLIENTS`), one after the other against the
    same server; the first one's numbers are the report's, each other's under ``other_clients``."""
    unknown = [c for c in client if c not in CLIENTS]
    if unknown or not client:
        raise ValueError(f"unknown load client(s) {unknown or list(client)}; allowed: {', '.join(CLIENTS)}")
    with contextlib.ExitStack() as stack:
        server = None
        if url is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="spinr-load-")))
            server = LocalServer(tmp / "data", streams=clients)
            stack.callback(server.stop)
            server.start()
            url, server_pid = server.url, server.process.pid if server.process else None
        url = url.rstrip("/")
        if job_id is None:
            job_id = prepare_stream(url, steps)["id"]
        ws_url = url.replace("http", "ws", 1) + f"/ws/stream/{job_id}"
        start: dict[str, Any] = {"type": "start", **({"channel": channel} if channel else {})}
        rounds = {}
        for name in client:
            run = functools.partial(measure, client=name)
            rounds[name] = {"client": name, **run(ws_url, start, clients, timeout, server_pid)}
            if reference:
                from benchmarks.load_reference import against_reference

                rounds[name].update(against_reference(rounds[name], ws_url, start, clients, timeout, run))
        first, *others = client
        report = {
            "url": url,
            "job": job_id,
            "clients": clients,
            "channel": channel or "perfect",
            **rounds[first],
            "cpus": os.cpu_count(),
            "started_server": server is not None,
        }
        if others:
            report["other_clients"] = {name: rounds[name] for name in others}
    return report

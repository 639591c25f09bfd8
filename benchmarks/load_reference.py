"""A reference for ``spinr bench load``: the same clients against a bare WebSocket app.

The app runs under uvicorn with the server's WebSocket protocol class and settings (no deflate, the
same message limit) and answers every connection with the very messages one real stream sent
(recorded first): no access checks, store, file check, plan or web framework. What it costs at that
moment (uvicorn, websockets, the kernel and the benchmark client, which shares the CPU) is the floor
under the real server's numbers on this machine; the report gives both and their ratios, which mean
more than seconds on a machine that others share.

``python -m server.reference_app MESSAGES.json PORT`` serves the app (the benchmark starts it in a
process of its own: benchmarks import nothing of the server).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Recorded = list[bytes | str]


def record(ws_url: str, start: dict[str, Any], timeout: float) -> Recorded:
    """Every message of one real stream, in order."""
    from websockets.asyncio.client import connect

    async def go() -> Recorded:
        async with connect(ws_url, max_size=None, proxy=None, ping_interval=None) as ws:
            await ws.send(json.dumps(start))
            return [m async for m in ws]

    return asyncio.run(asyncio.wait_for(go(), timeout))


def against_reference(
    report: dict[str, Any],
    ws_url: str,
    start: dict[str, Any],
    clients: int,
    timeout: float,
    measure: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """The reference's numbers for ``report`` (the real server's, just measured by ``measure``, which
    measures the reference the same way) and the ratios."""
    messages = record(ws_url, start, timeout)
    with tempfile.TemporaryDirectory(prefix="spinr-load-ref-") as tmp:
        path = Path(tmp) / "messages.json"
        path.write_text(json.dumps([_encode(m) for m in messages]))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, "-m", "server.reference_app", str(path), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_listening(port, process, timeout)
            ref = measure(f"ws://127.0.0.1:{port}/", start, clients, timeout, process.pid)
        finally:
            process.terminate()
            process.wait(30)
    ratio = {
        f"{what}_{p}_over_reference": _ratio(report[what][p], ref[what][p])
        for what in ("first_layer_s", "complete_s")
        for p in ("p50", "p99")
    }
    ratio["server_cpu_over_reference"] = _ratio(
        report["server_cpu_ms_per_stream"], ref["server_cpu_ms_per_stream"]
    )
    return {"reference": {"what": "bare uvicorn WebSocket app, same messages", **ref}, **ratio}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _encode(m: bytes | str) -> dict[str, str]:
    return {"bytes": base64.b64encode(m).decode()} if isinstance(m, bytes) else {"text": m}


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the reference app exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the reference app did not listen within {timeout:g} s")

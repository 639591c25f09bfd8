"""The garbage collector and latency: the server moves what startup left out of the collector's sight
(server.app.settle_heap), and the load generator does the same for its own heap while a round runs.
A full collection traversed every object of the process: 76-103 ms of the event loop (docs/LOAD.md)."""

from __future__ import annotations

import asyncio
import gc
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

import server.app as app_module
from benchmarks import load, load_clients
from server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # this test process's heap goes back under the collector


def test_settle_heap_collects_startups_garbage_then_freezes_the_rest() -> None:
    # In a process of its own: freezing this one would hide the other tests' garbage.
    code = """
import gc, weakref
from server.app import settle_heap
class Node: pass
a, b = Node(), Node()
a.other, b.other = b, a  # a reference cycle that only the collector frees
alive = Node()
dead, kept = weakref.ref(a), weakref.ref(alive)
del a, b
assert gc.get_freeze_count() == 0
settle_heap()
assert dead() is None, "the garbage of startup was frozen with the rest"
assert kept() is alive and gc.get_freeze_count() > 0
print("ok", gc.get_freeze_count())
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")


class Manager:
    """Stands in for the job manager (worker processes are not what this test is about)."""

    def __init__(self, *args: Any) -> None:
        pass

    def start(self) -> dict[str, int]:
        return {"failed": 0, "requeued": 0}

    def stop(self) -> None:
        pass


def test_the_servers_startup_settles_its_heap(tmp_path: Path, monkeypatch, unfrozen) -> None:
    monkeypatch.setattr(app_module, "JobManager", Manager)
    app = app_module.create_app(Settings(data_dir=tmp_path / "data"))
    gc.unfreeze()

    async def started() -> int:
        async with app_module.lifespan(app):
            return gc.get_freeze_count()

    assert asyncio.run(started()) > 0


def test_a_load_round_runs_with_the_generators_heap_frozen(monkeypatch) -> None:
    seen: list[int] = []

    async def runner(url: str, start: dict[str, Any], clients: int, timeout: float) -> list[Any]:
        seen.append(gc.get_freeze_count())
        return [load_clients.ClientResult(error="refused")] * clients

    monkeypatch.setitem(load_clients.CLIENTS, "lean", runner)
    monkeypatch.setattr(load, "CLIENTS", load_clients.CLIENTS)
    report = load.measure("ws://127.0.0.1:9/", {"type": "start"}, 2, 5.0, None)
    assert report["errors"] == 2 and report["error_kinds"] == {"refused": 2}
    assert seen and seen[0] > 0  # frozen while the clients ran
    assert gc.get_freeze_count() == 0  # and given back to the collector after


async def echo_once(scope: Any, receive: Any, send: Any) -> None:
    """A WebSocket app: accept, answer one message, close."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    message = await receive()
    await send({"type": "websocket.send", "text": message.get("text", "")})
    await send({"type": "websocket.close", "code": 1000})


@pytest.mark.parametrize("lets_go", [True, False])
def test_an_upgraded_connection_leaves_no_http_protocol_for_the_collector(lets_go: bool) -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from websockets.asyncio.client import connect

    from server.http_protocol import HttpProtocol
    from server.ws_protocol import WebSocketProtocol

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    http = HttpProtocol if lets_go else HttpToolsProtocol  # uvicorn's own, as the control
    config = uvicorn.Config(
        echo_once,
        host="127.0.0.1",
        port=port,
        http=http,
        ws=WebSocketProtocol,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)

    def alive() -> int:
        return sum(issubclass(type(o), HttpToolsProtocol) for o in gc.get_objects())  # no proxies

    async def streams(n: int) -> list[str]:
        answers = []
        for i in range(n):
            async with connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
                await ws.send(f"hello {i}")
                answers.append(str(await ws.recv()))
                await ws.wait_closed()
        return answers

    gc.collect()
    gc.disable()  # only reference counting frees anything from here on
    try:
        thread.start()
        for _ in range(500):  # until it listens
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started
        before = alive()
        assert asyncio.run(streams(10)) == [f"hello {i}" for i in range(10)]
        left = alive() - before
    finally:
        server.should_exit = True
        thread.join(10)
        gc.enable()
    assert left == (0 if lets_go else 10)

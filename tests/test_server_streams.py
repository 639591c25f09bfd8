"""Hostile stream requests against a real server (issue 11, items 1, 8 and 9): channel simulation off
the event loop and bounded, deeply nested start messages, abandoned streams, per-client limits and a
prompt shutdown with streams open. Real uvicorn on 127.0.0.1, real websockets clients."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from typing import Any

import httpx
import pytest
from _server import Server, png, poll
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from codec.bitstream import load_bitstream
from streaming.session import datagram_count, smallest_mtu

PER_CLIENT = 6
MAX_DATAGRAMS = 20_000  # Settings().max_stream_datagrams, the default this server runs with
CHAOS = {"loss": 0.1, "ber": 1e-4, "reorder": 0.2, "jitter_ms": 50}
SLOW = {"delay_ms": 300_000}
"""Every layer arrives 300 s after the header (which is sent at once): a stream that stays open."""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("streams") / "data", "--max-streams-per-client", str(PER_CLIENT))
    yield s
    s.close()


@pytest.fixture(scope="module")
def big(server, photo_crop) -> dict[str, Any]:
    """A ~250 KB stream (704 wide, 3 steps of training: the size matters here, not the picture): at mtu 16
    one copy of it fits the datagram bound, two (any duplication) do not."""
    job_id = server.upload(png(photo_crop), width=704, depth=3, steps=3).json()["id"]
    assert server.wait_state(job_id, ("done", "failed"), timeout=120)["state"] == "done"
    bs, _ = load_bitstream(server.http.get(f"/api/images/{job_id}/bitstream.spnr").content, strict=True)
    sizes = [len(p.to_bytes()) for p in bs.packets()[1:]]
    # The tests below need one copy at mtu 16 within the datagram bound and two copies over it.
    assert datagram_count(sizes, 16) <= MAX_DATAGRAMS < datagram_count(sizes, 16, 2), sizes
    return {"id": job_id, "sizes": sizes, "units": bs.header.num_units}


async def _closed(ws: ClientConnection) -> tuple[int | None, str]:
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason


def run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def open_streams(server: Server) -> int:
    return server.http.get("/health").json()["streams"]["open"]


def nested(depth: int) -> str:
    return '{"type": "start", "channel": ' + "[" * depth + "]" * depth + "}"


def test_deeply_nested_start_message_closes_1008_naming_the_nesting(server, big):
    async def go(text: str) -> tuple[int | None, str]:
        async with connect(f"{server.ws}/ws/stream/{big['id']}") as ws:
            await ws.send(text)
            return await _closed(ws)

    for depth in (9, 10_000):  # 10,000 deep: json.loads itself would raise RecursionError
        code, reason = run(go(nested(depth)))
        assert code == 1008 and "the first message nests lists and maps more than 8 deep" in reason
    # A message over the 64 KiB limit is refused by uvicorn before it is read whole: 1009 (too big).
    assert run(go(nested(40_000)))[0] == 1009
    assert "Exception in ASGI application" not in server.output()


def test_channel_work_is_bounded_naming_the_smallest_mtu(server, big):
    sizes = big["sizes"]
    fit = smallest_mtu(sizes, MAX_DATAGRAMS, copies=2)
    assert fit is not None and fit > 16
    assert datagram_count(sizes, fit, 2) <= MAX_DATAGRAMS < datagram_count(sizes, fit - 1, 2)

    async def go(mtu: int) -> tuple[int | None, str, int]:
        async with connect(f"{server.ws}/ws/stream/{big['id']}", max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "channel": {"mtu": mtu, "duplicate": 0.01}}))
            got = 0
            try:
                async for _ in ws:
                    got += 1
            except ConnectionClosed:
                pass
            return ws.close_code, ws.close_reason, got

    code, reason, got = run(go(fit - 1))
    expected = datagram_count(sizes, fit - 1, 2)
    assert (code, got) == (1008, 0)
    assert f"mtu {fit - 1} splits this stream into {expected} datagrams" in reason
    assert f"at most {MAX_DATAGRAMS} per stream: use mtu >= {fit}" in reason
    code, reason, got = run(go(fit))
    assert code == 1000 and got >= 2  # the header, some layers and the done message


def test_health_answers_while_hostile_channels_are_planned(server, big):
    """mtu 16 on a ~250 KB stream: ~16,000 fragments through loss, bit errors and reordering, about a
    second of work. The planner process runs it, so the event loop keeps answering /health while the
    simulation is in flight: some answer itself reports the plan running (``streams.planning``). Were
    the plan computed on the event loop, no request could be answered before it ended, and no answer
    could ever see one in flight. Proved by what the answers saw, not by comparing times."""
    assert datagram_count(big["sizes"], 16) <= MAX_DATAGRAMS  # accepted: this is the work allowed
    start = json.dumps({"type": "start", "channel": {"mtu": 16, **CHAOS}})
    headers = 0

    async def hostile() -> int | None:
        nonlocal headers
        async with connect(f"{server.ws}/ws/stream/{big['id']}", max_size=None) as ws:
            await ws.send(start)
            await ws.recv()
            headers += 1
            return (await _closed(ws))[0]

    async def go() -> tuple[list[int], list[int | None]]:
        planning = []
        tasks = [asyncio.create_task(hostile()) for _ in range(PER_CLIENT - 1)]
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            while headers < len(tasks):  # until every hostile stream is planned
                answer = await http.get("/health")
                assert answer.status_code == 200
                planning.append(answer.json()["streams"]["planning"])
        return planning, list(await asyncio.gather(*tasks))

    planning, codes = run(go(), timeout=120)
    assert codes == [1000] * len(codes)
    # One simulation for the five clients (same image, same seeded channel), seen running by /health.
    assert max(planning) == 1, planning


def test_abandoned_streams_are_stopped_and_their_slots_freed(server, big):
    async def go() -> None:
        clients = []
        for _ in range(PER_CLIENT):
            ws = await connect(f"{server.ws}/ws/stream/{big['id']}", max_size=None)
            await ws.send(json.dumps({"type": "start", "channel": SLOW}))
            await ws.recv()  # the header: the stream is planned and waiting for its next arrival
            clients.append(ws)
        assert open_streams(server) == PER_CLIENT
        # One more from this address is refused, naming the limit; the others are untouched.
        async with connect(f"{server.ws}/ws/stream/{big['id']}") as extra:
            code, reason = await _closed(extra)
        assert code == 1013 and f"{PER_CLIENT} streams open, the limit per client" in reason
        for ws in clients:
            ws.transport.abort()  # gone without a closing handshake, as a crashed client

    run(go())
    poll(lambda: open_streams(server) == 0, 30, "the abandoned streams to be stopped")
    assert "stream ended early" in server.output()


def test_a_stream_longer_than_the_limit_is_refused(server, big):
    async def go() -> tuple[int | None, str]:
        async with connect(f"{server.ws}/ws/stream/{big['id']}") as ws:
            await ws.send(json.dumps({"type": "start", "channel": {"delay_ms": 1e7}}))
            return await _closed(ws)

    code, reason = run(go())
    assert code == 1008 and "over 10000 s" in reason and "at most 600 s" in reason


def test_sigterm_with_open_streams_stops_promptly(tmp_path, photo_crop):
    server = Server(tmp_path / "data")
    try:
        job_id = server.upload(png(photo_crop), steps=5).json()["id"]
        assert server.wait_state(job_id, ("done", "failed"))["state"] == "done"

        async def go() -> list[tuple[int | None, str]]:
            clients = []
            for _ in range(10):
                ws = await connect(f"{server.ws}/ws/stream/{job_id}")
                await ws.send(json.dumps({"type": "start", "channel": SLOW}))
                await ws.recv()
                clients.append(ws)
            server.proc.send_signal(signal.SIGTERM)
            return list(await asyncio.gather(*(_closed(ws) for ws in clients)))

        closed = run(go(), timeout=30)  # the streams' next messages were due in 300 s
        assert all(code == 1012 for code, _ in closed), closed  # 1012: service restart
        assert server.proc.wait(30) in (0, -signal.SIGTERM), server.output()  # uvicorn re-raises it
    finally:
        server.close()


def raw_upgrade(server: Server, path: str, extra: str = "") -> bytes:
    """Everything the server sends to a WebSocket upgrade request until it closes the connection."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as s:
        s.sendall(request.encode())
        chunks = []
        while chunk := s.recv(65536):  # b"": the server closed the connection
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("path", "extra", "status"),
    [
        ("/ws/stream/" + "a" * 20_000, "", b"414 Request-URI Too Long"),
        ("/ws/stream/x", "X-Big: " + "b" * 20_000 + "\r\n", b"431 Request Header Fields Too Large"),
    ],
    ids=["path", "header"],
)
def test_oversized_upgrade_request_is_answered_and_closed(server, path, extra, status):
    answer = raw_upgrade(server, path, extra)
    assert answer.startswith(b"HTTP/1.1 " + status) and b"Failed to open a WebSocket connection" in answer
    assert server.http.get("/health").status_code == 200

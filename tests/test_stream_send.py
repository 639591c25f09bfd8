"""How the stream route sends a planned version-1 stream (server/routes/stream.py), in process with a
stand-in socket: everything due at once goes out without a reader task, bounded by SEND_GRACE; a
stream with channel delays is sent on schedule while a reader notices the client going away."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest
from _bitstreams import make_stream

import server.routes.stream as route
from streaming.session import StreamSession


class FakeSocket:
    """Records what is sent; ``stall``: sends never finish (a client that reads nothing);
    ``fail``: sends raise (a client that went away)."""

    def __init__(self, stall: bool = False, fail: bool = False, leave: bool = False) -> None:
        self.sent: list[Any] = []
        self.stall, self.fail, self.leave = stall, fail, leave
        # a connection without server.ws_protocol's SEND_MANY extension: messages go one by one
        self.scope: dict[str, Any] = {"type": "websocket", "extensions": {}}

    async def send_bytes(self, data: bytes) -> None:
        if self.fail:
            raise ConnectionError("client went away")
        if self.stall:
            await asyncio.Event().wait()
        self.sent.append(data)

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))

    async def receive(self) -> dict[str, Any]:
        if self.leave:
            return {"type": "websocket.disconnect", "code": 1001}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def planned(channel: dict[str, Any] | None = None) -> StreamSession:
    session = StreamSession(make_stream(0), channel)
    session.plan()
    return session


def test_a_stream_due_at_once_is_sent_without_a_reader():
    session = planned()
    assert session.duration == 0
    ws = FakeSocket()
    assert asyncio.run(route._send_now(ws, session)) is None
    assert ws.sent[:-1] == [m.data for m in session.plan()]
    assert ws.sent[-1] == session.summary.to_message()


def test_a_client_that_reads_nothing_is_stopped_after_the_grace(monkeypatch):
    monkeypatch.setattr(route, "SEND_GRACE", 0.05)
    assert asyncio.run(route._send_now(FakeSocket(stall=True), planned())) == ""
    delayed = planned({"delay_ms": 20})
    assert delayed.duration > 0
    assert asyncio.run(route._send_on_schedule(FakeSocket(stall=True), delayed)) == ""


def test_a_client_that_went_away_ends_the_stream_early_naming_why():
    assert "client went away" in (asyncio.run(route._send_now(FakeSocket(fail=True), planned())) or "")
    slow = planned({"delay_ms": 60_000})
    assert asyncio.run(route._send_on_schedule(FakeSocket(leave=True), slow)) == "client went away"


@pytest.mark.parametrize("channel", [None, {"delay_ms": 10, "loss": 0.2, "seed": 3}])
def test_both_ways_send_the_same_messages(channel):
    session = planned(channel)
    ws = FakeSocket()
    send = route._send_now if session.duration == 0 else route._send_on_schedule
    assert asyncio.run(send(ws, session)) is None
    assert ws.sent == [*(m.data for m in session.plan()), session.summary.to_message()]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is new in Python 3.11")
def test_the_start_message_is_awaited_in_the_routes_own_task_within_its_timeout():
    class Leaving(FakeSocket):
        async def receive(self) -> dict[str, Any]:
            self.task = asyncio.current_task()  # wait_for ran the receive in a task of its own
            return await super().receive()

    async def go() -> tuple[dict[str, Any], bool]:
        ws = Leaving(leave=True)
        message = await route._receive_within(ws, 5.0)
        with pytest.raises(asyncio.TimeoutError):
            await route._receive_within(FakeSocket(), 0.05)  # a client that sends nothing
        return message, ws.task is asyncio.current_task()

    message, same_task = asyncio.run(go())
    assert message == {"type": "websocket.disconnect", "code": 1001} and same_task

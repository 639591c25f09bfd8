"""The two load generators of ``spinr bench load`` (``--client``), which measure the same thing.

Each opens ``clients`` WebSocket connections at one moment, sends the start message on each, reads to
the ``done`` message and the close, and gives per client the seconds from its connect call to the
first layer packet and to the close, or an error by kind (a refused connection, a failed handshake,
a close code other than 1000, no ``done``, the round's timeout).

- ``lean`` (the default): a load generator, not a client. One asyncio Protocol per connection drives
  websockets' sans-I/O ``ClientProtocol`` (the same handshake checks, framing, masking and closing
  handshake as the full client) straight from the transport's callbacks: no task, reader, keepalive
  or message queue per connection. Under uvloop when it is installed (uvicorn[standard] brings it):
  the server runs on it too. wrk and k6 are load generators in this sense.
- ``full``: the project's ordinary async client, ``websockets.asyncio.client.connect``, one task per
  connection, on asyncio's own loop: what each stream cost the generator before, kept to compare.

The generator shares the machine with the server it measures, so its CPU per stream is part of every
latency; the lean one costs a fraction of the full one's (docs/LOAD.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

PACKET_TYPE_OFFSET = 5
"""Byte of the packet header holding its type (docs/FORMAT.md): 0 header, 1 layer."""
MAX_MESSAGE = 64 * 2**20
"""Largest message either client accepts."""


@dataclass
class ClientResult:
    first_layer: float | None = None
    complete: float | None = None
    layers: int = 0
    error: str | None = None


def _count(result: ClientResult, message: bytes | str, t0: float) -> bool:
    """Note one message of a stream; whether it was the ``done`` message."""
    if isinstance(message, str):
        return bool(json.loads(message).get("type") == "done")
    if len(message) > PACKET_TYPE_OFFSET and message[PACKET_TYPE_OFFSET] == 1:
        result.layers += 1
        if result.first_layer is None:
            result.first_layer = time.perf_counter() - t0
    return False


def _closed(result: ClientResult, code: int | None, done: bool, t0: float) -> None:
    if code != 1000:
        result.error = f"close {code}"
    elif not done:
        result.error = "no done message"
    result.complete = time.perf_counter() - t0


class _LeanStream(asyncio.Protocol):
    """One stream of the lean generator: websockets' sans-I/O client protocol on a transport."""

    def __init__(self, uri: Any, start: bytes, result: ClientResult, t0: float, ended: Callable[[], None]):
        from websockets.client import ClientProtocol

        self.ws = ClientProtocol(uri, max_size=MAX_MESSAGE)
        self.start, self.result, self.t0, self.ended = start, result, t0, ended
        self.transport: asyncio.Transport | None = None
        self.done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Frame, Opcode
        from websockets.protocol import OPEN

        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if not isinstance(event, Frame):  # the handshake's response
                if self.ws.state is OPEN:
                    self.ws.send_text(self.start)
                else:  # the handshake failed: name it as the full client does
                    self.result.error = type(self.ws.handshake_exc).__name__
            elif event.opcode is Opcode.BINARY:
                _count(self.result, bytes(event.data), self.t0)
            elif event.opcode is Opcode.TEXT:
                self.done = _count(self.result, bytes(event.data).decode(), self.t0) or self.done
        self._flush()

    def eof_received(self) -> bool:
        self.ws.receive_eof()
        self._flush()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        from websockets.protocol import CLOSED

        if self.result.error is None and self.result.complete is None:
            if self.ws.state is not CLOSED:
                self.ws.receive_eof()  # the connection was lost without a TCP close from the server
            _closed(self.result, self.ws.close_code, self.done, self.t0)
        self.ended()

    def _flush(self) -> None:
        transport = self.transport
        for data in self.ws.data_to_send():
            if not transport or transport.is_closing():
                return
            if data:
                transport.write(data)
            elif transport.can_write_eof():  # the protocol's end of stream: half-close
                transport.write_eof()

    def abort(self) -> None:
        """The round's time is up."""
        if self.result.complete is None and self.result.error is None:
            self.result.error = "timeout"
        if self.transport is not None:
            self.transport.abort()


async def run_lean(ws_url: str, start: dict[str, Any], clients: int, timeout: float) -> list[ClientResult]:
    """``clients`` lean streams at once (see the module docstring); each within ``timeout`` s."""
    from websockets.uri import parse_uri

    uri = parse_uri(ws_url)
    loop = asyncio.get_running_loop()
    message = json.dumps(start).encode()
    results = [ClientResult() for _ in range(clients)]
    streams: list[_LeanStream] = []
    left = clients
    all_ended = loop.create_future()

    def ended() -> None:
        nonlocal left
        left -= 1
        if left == 0 and not all_ended.done():
            all_ended.set_result(None)

    async def one(result: ClientResult) -> None:
        t0 = time.perf_counter()
        stream = _LeanStream(uri, message, result, t0, ended)
        streams.append(stream)
        try:
            await loop.create_connection(lambda: stream, uri.host, uri.port)
        except OSError as exc:
            result.error = type(exc).__name__
            ended()

    connects = [asyncio.ensure_future(one(r)) for r in results]
    try:
        await asyncio.wait_for(asyncio.shield(all_ended), timeout)
    except asyncio.TimeoutError:
        for stream in streams:
            stream.abort()
        for task in connects:
            task.cancel()
        for r in results:
            if r.error is None and r.complete is None:
                r.error = "timeout"
    await asyncio.gather(*connects, return_exceptions=True)
    return results


async def _full_one(ws_url: str, start: dict[str, Any], result: ClientResult, timeout: float) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    t0 = time.perf_counter()

    async def stream() -> tuple[int | None, bool]:
        done = False
        # No proxy lookup (websockets reads every environment variable on each connect: a tenth of
        # the client's CPU) and no keepalive task.
        async with connect(
            ws_url,
            max_size=MAX_MESSAGE,
            open_timeout=timeout,
            close_timeout=5,
            proxy=None,
            ping_interval=None,
        ) as ws:
            await ws.send(json.dumps(start))
            async for message in ws:
                done = _count(result, message, t0) or done
        return ws.close_code, done

    try:
        code, done = await asyncio.wait_for(stream(), timeout)
        _closed(result, code, done, t0)
    except asyncio.TimeoutError:
        result.error = "timeout"
    except ConnectionClosed as exc:
        result.error = f"close {exc.rcvd.code if exc.rcvd else 1006}"
    except (OSError, InvalidHandshake) as exc:
        result.error = type(exc).__name__


async def run_full(ws_url: str, start: dict[str, Any], clients: int, timeout: float) -> list[ClientResult]:
    """``clients`` streams of the full client at once, one task each."""
    results = [ClientResult() for _ in range(clients)]
    await asyncio.gather(*(_full_one(ws_url, start, r, timeout) for r in results))
    return results


RunClients = Callable[[str, dict[str, Any], int, float], Coroutine[Any, Any, list[ClientResult]]]
CLIENTS: dict[str, RunClients] = {"lean": run_lean, "full": run_full}
"""The load generators by ``--client`` name."""


def warm_up() -> None:
    """Import what either client uses before any clock starts: a first import inside a round cost
    every client of it ~40 ms (websockets' modules), charged to whichever server ran first."""
    import websockets.asyncio.client  # noqa: F401
    import websockets.client  # noqa: F401
    import websockets.frames  # noqa: F401
    import websockets.http11  # noqa: F401
    import websockets.uri  # noqa: F401


def event_loop(client: str) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """How to run a round of ``client``: the lean generator on uvloop where it is installed."""
    if client == "lean":
        try:
            import uvloop

            return uvloop.run
        except ImportError:
            pass
    return asyncio.run

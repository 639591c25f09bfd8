"""server.ws_protocol's SEND_MANY extension on uvicorn's real protocol class: offered in the scope,
every message framed by websockets as one WebSocket message each, all in one write to the socket, and
refused once the connection is closing. A websockets client protocol reads the bytes back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.server import ServerState
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.uri import parse_uri

from server.ws_protocol import SEND_MANY, SEND_MANY_BYTES, WebSocketProtocol


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


MESSAGES: list[bytes | str] = [b"\x00header", b"\x01" * 300, '{"type": "done"}']


def serve(app: Any, protocols: list[WebSocketProtocol] | None = None) -> tuple[Transport, ClientProtocol]:
    """Run ``app`` on one connection of the protocol (appended to ``protocols``); (its transport, a
    client that sent the upgrade)."""

    async def go() -> tuple[Transport, ClientProtocol]:
        config = Config(app, ws=WebSocketProtocol, ws_per_message_deflate=False, log_level="warning")
        config.load()
        state = ServerState()
        protocol = WebSocketProtocol(config, state, {})
        (protocols if protocols is not None else []).append(protocol)
        transport = Transport()
        protocol.connection_made(transport)
        client = ClientProtocol(parse_uri("ws://127.0.0.1:8000/ws/stream/x"))
        client.send_request(client.connect())
        protocol.data_received(b"".join(client.data_to_send()))
        await asyncio.gather(*state.tasks)
        return transport, client

    return asyncio.run(go())


def test_send_many_is_one_write_of_one_websocket_message_each() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["extensions"] = scope["extensions"]
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", SEND_MANY: MESSAGES})
        await send({"type": "websocket.close", "code": 1000})
        with pytest.raises(RuntimeError, match="not closing"):
            await send({"type": "websocket.send", SEND_MANY: MESSAGES})
        seen["done"] = True

    transport, client = serve(app)
    assert SEND_MANY in seen["extensions"] and seen["done"]
    response, data, close = transport.writes  # the handshake's answer, the messages, the close frame
    assert response.startswith(b"HTTP/1.1 101")
    client.receive_data(b"".join(transport.writes))
    events = client.events_received()
    frames = events[1:]  # after the handshake's response
    assert [f.opcode for f in frames] == [Opcode.BINARY, Opcode.BINARY, Opcode.TEXT, Opcode.CLOSE]
    assert [f.data for f in frames[:3]] == [MESSAGES[0], MESSAGES[1], MESSAGES[2].encode()]  # type: ignore[union-attr]
    assert close.startswith(b"\x88")  # the close frame on its own, from uvicorn's close path


def test_send_many_to_a_client_that_left_is_a_disconnect() -> None:
    protocols: list[WebSocketProtocol] = []
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        protocols[0].connection_lost(None)
        with pytest.raises(ClientDisconnected):
            await send({"type": "websocket.send", SEND_MANY: MESSAGES})
        seen.append("refused")

    transport, _ = serve(app, protocols)
    assert seen == ["refused"] and len(transport.writes) == 1  # the handshake's answer only


def test_send_many_over_its_bound_is_refused_before_anything_is_written() -> None:
    """A write of more than the transport's high-water mark would buffer more per connection than
    the per-message path, which waits for a paused transport (the route sends such streams that way)."""
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        with pytest.raises(ValueError, match=f"at most {SEND_MANY_BYTES} bytes"):
            await send({"type": "websocket.send", SEND_MANY: [b"x" * SEND_MANY_BYTES, b"y"]})
        seen.append("refused")

    transport, _ = serve(app)
    assert seen == ["refused"] and len(transport.writes) == 1  # the handshake's answer only

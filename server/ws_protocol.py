"""uvicorn's websockets (sans-I/O) protocol, answering a handshake that websockets refuses, and sending
several messages in one write.

websockets parses the upgrade request again and answers a request line over 8 KiB with 414, header
fields too large with 431, and a request it cannot parse with a plain close; uvicorn's protocol
(0.54) only sends what a parsed request produced, so those answers stayed in a buffer and the
connection stayed open until the client gave up (40 s and more, issue 11 item 14). Here they are
sent and the connection closed at once.

``SEND_MANY``, an ASGI extension this protocol offers in ``scope["extensions"]``: a
``websocket.send`` event carrying ``{SEND_MANY: [bytes | str, ...]}`` sends each item as its own
WebSocket message (binary or text, framed by websockets as usual) in one write to the socket. A
stream whose messages are all due at once was one write, one system call and one TCP segment per
message, each paid by the server and again by the client that reads it. Without the extension in
the scope (another server, a test client), send the messages one by one. The messages of one such
event are at most ``SEND_MANY_BYTES`` and are written without waiting for a paused transport: the
per-message path waits whenever the transport holds more than its high-water mark, so a write of
more would buffer more per connection than it does.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request

SEND_MANY = "spinr.websocket.send_many"
SEND_MANY_BYTES = 64 * 1024
"""Most bytes one SEND_MANY event may carry: asyncio's default high-water mark of a transport."""


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # none when the handshake was refused
        if scope is not None:
            scope["extensions"][SEND_MANY] = {}

    async def send(self, message: Any) -> None:
        many = message.get(SEND_MANY) if message["type"] == "websocket.send" else None
        if many is None:
            await super().send(message)
            return
        if sum(len(item) for item in many) > SEND_MANY_BYTES:
            raise ValueError(f"{SEND_MANY} carries at most {SEND_MANY_BYTES} bytes")
        if self.disconnected:
            raise ClientDisconnected()
        if not self.handshake_complete or self.close_sent or self.initial_response is not None:
            raise RuntimeError(f"{SEND_MANY} needs an accepted WebSocket that is not closing")
        try:
            for item in many:
                if isinstance(item, str):
                    self.conn.send_text(item.encode())
                else:
                    self.conn.send_binary(item)
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))

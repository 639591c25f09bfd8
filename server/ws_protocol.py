"""uvicorn's websockets (sans-I/O) protocol, answering a handshake that websockets refuses.

websockets parses the upgrade request again and answers a request line over 8 KiB with 414, header
fields too large with 431, and a request it cannot parse with a plain close; uvicorn's protocol
(0.54) only sends what a parsed request produced, so those answers stayed in a buffer and the
connection stayed open until the client gave up (40 s and more, issue 11 item 14). Here they are
sent and the connection closed at once.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

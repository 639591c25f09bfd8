"""uvicorn's httptools HTTP protocol, letting go of its parser once it has handed a connection over to
the WebSocket protocol.

The parser holds the protocol's bound methods as its callbacks and the protocol holds the parser: a
reference cycle, so every WebSocket connection left its HTTP protocol, parser, flow control, event
and, through them, its transport for the garbage collector (16 objects and more each). At 400 streams
a round that made a full collection of ~10,000 objects, 18-30 ms of the event loop, about every other
round (docs/LOAD.md). Without the parser the protocol is freed as soon as the hand-over returns.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HttpProtocol(HttpToolsProtocol):
    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        # The transport now talks to the WebSocket protocol; this one reads nothing more.
        self.parser = None  # type: ignore[assignment]

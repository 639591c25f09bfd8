"""The bare WebSocket app under the server's uvicorn settings: the floor ``spinr bench load --reference``
measures the real server against (benchmarks/load_reference.py records the messages and starts this).

It answers every connection with the very messages one real stream sent: no access checks, store,
file check, plan or web framework. It lives here because it must run under the server's own protocol
class and message limit, and benchmarks import nothing of the server.

``python -m server.reference_app MESSAGES.json PORT``
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.types import Receive, Scope, Send

Recorded = list[bytes | str]


def bare_app(messages: Recorded) -> Any:
    """An ASGI app that accepts a WebSocket, reads one message, sends ``messages`` and closes (1000)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        if (await receive())["type"] != "websocket.receive":
            return
        for m in messages:
            await send({"type": "websocket.send", "bytes" if isinstance(m, bytes) else "text": m})
        await send({"type": "websocket.close", "code": 1000})

    return app


def main(argv: Sequence[str]) -> int:
    import uvicorn

    from server.cli import WS_MAX_MESSAGE
    from server.http_protocol import HttpProtocol
    from server.ws_protocol import WebSocketProtocol

    items = json.loads(Path(argv[0]).read_text())
    messages: Recorded = [base64.b64decode(i["bytes"]) if "bytes" in i else i["text"] for i in items]
    uvicorn.run(
        bare_app(messages),
        host="127.0.0.1",
        port=int(argv[1]),
        log_level="warning",
        lifespan="off",
        http=HttpProtocol,
        ws=WebSocketProtocol,
        ws_max_size=WS_MAX_MESSAGE,
        ws_per_message_deflate=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The load generators of ``spinr bench load`` (benchmarks/load_clients.py) against a real uvicorn on
127.0.0.1: the lean one (websockets' sans-I/O protocol on plain transports) and the full one
(``websockets.connect``) count the same layers and name the same errors for every way a stream can
end."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from benchmarks.load_clients import CLIENTS, ClientResult, event_loop, warm_up
from server.ws_protocol import WebSocketProtocol

HEADER = b"\x53\x50\x4e\x52\x01\x00" + b"h" * 20  # byte 5 (the packet type) is 0: a header packet
LAYER = b"\x53\x50\x4e\x52\x01\x01" + b"l" * 200  # type 1: a layer packet
DONE = '{"type": "done", "layers": 2}'


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Each path ends its stream another way (the path names how)."""
    if scope["type"] != "websocket":
        return
    path = scope["path"]
    await receive()  # websocket.connect
    if path == "/refused":
        await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
        return
    await send({"type": "websocket.accept"})
    start = await receive()
    if start.get("text") != '{"type": "start"}':
        await send({"type": "websocket.close", "code": 1003})
        return
    if path == "/unknown":
        await send({"type": "websocket.close", "code": 4404, "reason": "no image"})
        return
    for message in (HEADER, LAYER, LAYER):
        await send({"type": "websocket.send", "bytes": message})
    if path == "/ok":
        await send({"type": "websocket.send", "text": DONE})
    await send({"type": "websocket.close", "code": 1000})


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws=WebSocketProtocol, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(500):  # until it listens (server.started is set once it does)
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def run(client: str, url: str, clients: int = 5, timeout: float = 30.0) -> list[ClientResult]:
    warm_up()
    return list(event_loop(client)(CLIENTS[client](url, {"type": "start"}, clients, timeout)))


@pytest.mark.parametrize("client", list(CLIENTS))
def test_whole_streams_count_their_layers_and_time_the_first(url: str, client: str) -> None:
    results = run(client, url + "/ok", clients=20)
    assert len(results) == 20
    for r in results:
        assert r.error is None and r.layers == 2
        assert r.first_layer is not None and r.complete is not None
        assert 0 < r.first_layer <= r.complete < 30


@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize(
    "path, error",
    [("/no-done", "no done message"), ("/unknown", "close 4404"), ("/refused", "InvalidStatus")],
)
def test_every_way_a_stream_fails_is_named_alike(url: str, client: str, path: str, error: str) -> None:
    results = run(client, url + path)
    assert [r.error for r in results] == [error] * 5
    assert all(r.first_layer is None for r in results if error != "no done message")


@pytest.mark.parametrize("client", list(CLIENTS))
def test_a_refused_connection_is_an_error_not_an_exception(client: str) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = run(client, f"ws://127.0.0.1:{port}/ok", clients=3)
    assert [r.error for r in results] == ["ConnectionRefusedError"] * 3


@pytest.mark.parametrize("client", list(CLIENTS))
def test_a_stream_that_never_ends_is_a_timeout_and_its_connection_is_closed(client: str) -> None:
    accepted: list[socket.socket] = []
    with socket.socket() as listener:  # accepts TCP, never answers the upgrade
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]

        def accept() -> None:
            for _ in range(2):
                accepted.append(listener.accept()[0])

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        results = run(client, f"ws://127.0.0.1:{port}/ok", clients=2, timeout=0.5)
        thread.join(10)
        assert [r.error for r in results] == ["timeout"] * 2
        for conn in accepted:  # the generator dropped its end: the server's reads see the close
            conn.settimeout(10)
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
            assert data.startswith(b"GET /ok HTTP/1.1\r\n")
            conn.close()


def test_unknown_load_client_is_refused_by_name() -> None:
    from benchmarks.load import bench_load

    with pytest.raises(ValueError, match=r"unknown load client\(s\) \['wrk'\]; allowed: lean, full"):
        bench_load(1, url="http://127.0.0.1:9", job_id="x", client=("wrk",))


@pytest.mark.parametrize("client", list(CLIENTS))
def test_a_connection_dropped_without_a_close_frame_is_close_1006(client: str) -> None:
    from websockets.frames import Frame, Opcode
    from websockets.utils import accept_key

    with socket.socket() as listener:  # answers the upgrade, sends one layer, then drops the TCP connection
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]

        def serve() -> None:
            for _ in range(2):
                conn, _ = listener.accept()
                with conn:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        request += conn.recv(4096)
                    key = next(
                        line.split(b":", 1)[1].strip().decode()
                        for line in request.split(b"\r\n")
                        if line.lower().startswith(b"sec-websocket-key:")
                    )
                    conn.sendall(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        + f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
                    )
                    frame = Frame(Opcode.BINARY, LAYER)
                    conn.sendall(frame.serialize(mask=False, extensions=[]))

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        results = run(client, f"ws://127.0.0.1:{port}/ok", clients=2)
        thread.join(10)
    assert [r.error for r in results] == ["close 1006"] * 2

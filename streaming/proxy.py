"""``spinr netsim proxy``: a WebSocket relay that puts a simulated channel between a server and its clients.

Every client connection opens a connection to the same path upstream. Client -> upstream messages are
relayed unchanged. Upstream -> client binary messages are opaque datagrams handed to a
:class:`netsim.channel.Channel` session, which drops, corrupts, duplicates, delays and reorders them;
each delivery is sent to the client when it is due. Text messages pass unharmed and keep their place
after every datagram sent before them. The first ``--reliable-first`` binary messages of a connection
(the stream's header packet, which a spinr server always sends first) bypass the channel, as the
server's own channel does: a real sender retransmits the header until it gets through.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import logging
import signal
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from codec.errors import ConfigError
from netsim.channel import Channel, ChannelConfig

log = logging.getLogger("spinr.proxy")


@dataclass
class ProxyConfig:
    upstream: str
    """Base URL of the server, ``ws://host:port``; the client's path is appended."""
    channel: ChannelConfig | None = None
    """None: a perfect link (a plain relay)."""
    reliable_first: int = 1
    """Binary messages at the start of each connection that bypass the channel."""
    disconnect_after: int = 0
    """Cut each client connection abruptly after this many binary messages (0: never); tests resume."""
    stats: dict[str, int] = field(default_factory=lambda: {"connections": 0, "forwarded": 0})


class _Outbox:
    """Messages for one client ordered by due time; a text message never overtakes earlier datagrams."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str | bytes | None]] = []
        self._order = itertools.count()
        self._changed = asyncio.Event()
        self.last_due = 0.0

    def put(self, due: float, message: str | bytes | None) -> None:
        heapq.heappush(self._heap, (due, next(self._order), message))
        self.last_due = max(self.last_due, due)
        self._changed.set()

    async def get(self, loop: asyncio.AbstractEventLoop) -> str | bytes | None:
        while True:
            if not self._heap:
                self._changed.clear()
                await self._changed.wait()
                continue
            due = self._heap[0][0]
            wait = due - loop.time()
            if wait <= 0:
                return heapq.heappop(self._heap)[2]
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)


async def relay(client: Any, config: ProxyConfig, connection_number: int) -> None:
    """Serve one client connection (a websockets server connection)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    loop = asyncio.get_running_loop()
    path = client.request.path
    target = config.upstream.rstrip("/") + path
    try:
        # The client's token (spinr stream --token) goes on to a server that needs one.
        auth = client.request.headers.get("Authorization")
        headers = {"Authorization": auth} if auth else {}
        upstream = await connect(target, max_size=None, open_timeout=10, additional_headers=headers)
    except Exception as exc:
        await client.close(1011, f"upstream {target} is unreachable: {exc}"[:120])
        return
    config.stats["connections"] += 1
    session = None
    if config.channel is not None:
        seed = (config.channel.seed or 0) + connection_number
        session = Channel(config.channel).session(seed)
    outbox = _Outbox()
    start = loop.time()

    async def upstream_to_outbox() -> None:
        binaries = 0
        try:
            async for message in upstream:
                now = loop.time()
                if isinstance(message, str):
                    release(now)  # a control message closes a batch: what the channel holds back comes first
                    outbox.put(max(now, outbox.last_due), message)
                    continue
                binaries += 1
                if session is None or binaries <= config.reliable_first:
                    outbox.put(max(now, outbox.last_due), message)
                    continue
                schedule(session.send(message, send_time=now - start), now)
        except ConnectionClosed:
            pass
        release(loop.time())
        outbox.put(max(loop.time(), outbox.last_due), None)  # end: close like upstream did

    def schedule(deliveries: list[Any], now: float) -> None:
        for d in deliveries:
            outbox.put(max(now, start + float(d.arrival_time)), bytes(d.data))

    def release(now: float) -> None:
        if session is not None:
            schedule(session.flush(), now)

    async def outbox_to_client() -> None:
        sent_binary = 0
        while True:
            message = await outbox.get(loop)
            if message is None:
                code = upstream.close_code or 1000
                reason = upstream.close_reason or ""
                if code in (1005, 1006):
                    code, reason = 1011, "upstream connection was lost"
                await client.close(code, reason)
                return
            await client.send(message)
            if isinstance(message, bytes):
                config.stats["forwarded"] += 1
                sent_binary += 1
                if config.disconnect_after and sent_binary >= config.disconnect_after:
                    client.transport.abort()  # an abrupt loss of the connection, as a dropped link
                    return

    async def client_to_upstream() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in client:
                await upstream.send(message)
        await upstream.close()

    tasks = [asyncio.create_task(c) for c in (upstream_to_outbox(), outbox_to_client(), client_to_upstream())]
    try:
        # The client side decides: when it is done (closed or cut), everything else stops.
        await asyncio.wait([tasks[1], tasks[2]], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen {text!r} must be HOST:PORT with a port 0..65535, e.g. 127.0.0.1:8001")
    return host or "127.0.0.1", int(port)


def check_upstream(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        url = url.replace(parts.scheme, "ws" if parts.scheme == "http" else "wss", 1)
        parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ConfigError(f"--upstream {url!r} must be a ws:// or wss:// URL, e.g. ws://127.0.0.1:8000")
    return url


async def serve(host: str, port: int, config: ProxyConfig, ready: Any = None) -> None:
    from websockets.asyncio.server import serve as ws_serve

    numbers = itertools.count()

    async def handler(connection: Any) -> None:
        await relay(connection, config, next(numbers))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with ws_serve(handler, host, port, max_size=None) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(
            f"spinr netsim proxy: listening on ws://{host}:{bound}, upstream {config.upstream}",
            file=sys.stderr,
            flush=True,
        )
        if ready is not None:
            ready(bound)
        await stop.wait()


def add_arguments(p: argparse.ArgumentParser) -> None:
    from netsim.cli import add_channel_arguments

    p.add_argument(
        "--listen", default="127.0.0.1:8001", help="HOST:PORT to accept clients on (default 127.0.0.1:8001)"
    )
    p.add_argument(
        "--upstream", default="ws://127.0.0.1:8000", help="server base URL (default ws://127.0.0.1:8000)"
    )
    p.add_argument(
        "--reliable-first",
        type=int,
        default=1,
        help="binary messages per connection that bypass the channel (default 1: the header)",
    )
    p.add_argument(
        "--disconnect-after",
        type=int,
        default=0,
        help="cut each connection after N binary messages (0: never)",
    )
    add_channel_arguments(p)


def run(args: argparse.Namespace) -> int:
    from netsim.cli import channel_config_from_args

    host, port = parse_listen(args.listen)
    upstream = check_upstream(args.upstream)
    if args.reliable_first < 0 or args.disconnect_after < 0:
        raise ConfigError("--reliable-first and --disconnect-after must be >= 0")
    try:
        channel = channel_config_from_args(args)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"bad channel option: {exc}") from None
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    config = ProxyConfig(upstream, channel, args.reliable_first, args.disconnect_after)
    try:
        asyncio.run(serve(host, port, config))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return 0

"""Talking to a spinr server from the command line: URLs, HTTP errors as one-line SpinrErrors."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from codec.errors import SpinrError

DEFAULT_SERVER = os.environ.get("SPINR_SERVER", "http://127.0.0.1:8000")


class ServerError(SpinrError):
    """The server refused a request or could not be reached; the message says which and why."""


def http_base(server: str) -> str:
    parts = urlsplit(server)
    if parts.scheme in ("ws", "wss"):
        server = ("http" if parts.scheme == "ws" else "https") + server[len(parts.scheme) :]
        parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ServerError(f"--server {server!r} must be an http(s):// URL, e.g. http://127.0.0.1:8000")
    return server.rstrip("/")


def ws_base(server: str) -> str:
    base = http_base(server)
    return "ws" + base[4:] if base.startswith("http") else base


def detail(response: Any) -> str:
    try:
        body = response.json()
        text = body.get("detail") if isinstance(body, dict) else None
    except ValueError:
        text = None
    return str(text or response.text.strip() or response.reason_phrase)


def check(response: Any, what: str) -> Any:
    """The response's JSON, or ServerError naming the status and the server's reason."""
    if response.status_code >= 400:
        extra = ""
        if response.status_code == 429 and "retry-after" in response.headers:
            extra = f" (retry after {response.headers['retry-after']} s)"
        raise ServerError(f"{what}: server answered {response.status_code}: {detail(response)}{extra}")
    from streaming.session import SessionError, load_message

    try:  # bounded: a hostile server's deeply nested JSON is an error line, not a RecursionError
        return load_message(response.text, "server's answer")
    except SessionError as exc:
        raise ServerError(f"{what}: {exc}") from None


def client(server: str, timeout: float = 30.0) -> Any:
    import httpx

    return httpx.Client(base_url=http_base(server), timeout=timeout)


def unreachable(server: str, exc: Exception) -> ServerError:
    return ServerError(f"cannot reach the server at {server}: {exc}")

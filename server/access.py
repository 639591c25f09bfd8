"""Access control (docs/API.md, "Threat model"): which Host names the server answers to, which web
pages (Origins) may use it from a browser, and an optional token for everything that writes or streams.

- Host: a request whose ``Host`` header names another host is refused (400). This defeats DNS
  rebinding, where a web page's own name is made to resolve to this server's address.
- Origin: a browser sends ``Origin`` with cross-site requests and with every WebSocket; one that is
  neither this server's own origin nor allowed is refused (403 / close 4403). This stops any page
  the user visits from uploading or streaming through the user's browser.
- Token: with ``--token`` (or ``SPINR_TOKEN``), requests other than GET/HEAD/OPTIONS and every WebSocket
  need it: ``Authorization: Bearer TOKEN``, or from a browser's WebSocket (which cannot set headers)
  the subprotocol ``spinr-token.TOKEN`` (kept out of URLs, so out of access logs).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from codec.errors import ConfigError

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""The Host names a server answers to by default."""
TOKEN_PROTOCOL = "spinr-token."
"""Prefix of the WebSocket subprotocol that carries the token from a browser."""
TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~+-]{16,256}")
"""A token: 16..256 characters that may stand in a header and a subprotocol name unquoted."""
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
WS_UNAUTHORIZED = 4401
WS_FORBIDDEN = 4403


def check_token(token: str | None) -> str | None:
    """The token, None when empty; ConfigError unless it is 16..256 of ``[A-Za-z0-9._~+-]``."""
    if not token:
        return None
    if not TOKEN_CHARS.fullmatch(token):
        raise ConfigError(
            f"token of {len(token)} characters is not allowed: use 16..256 of A-Z a-z 0-9 . _ ~ + - "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    return token


def host_name(host: str) -> str:
    """A Host header (``name``, ``name:port``, ``[v6]:port``) -> the lower-case name."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}


def offered_token(scope: Scope) -> tuple[str | None, str | None]:
    """(token, the subprotocol that carried it or None) of a request."""
    headers = _headers(scope)
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip(), None
    for proto in headers.get("sec-websocket-protocol", "").split(","):
        proto = proto.strip()
        if proto.startswith(TOKEN_PROTOCOL):
            return proto[len(TOKEN_PROTOCOL) :], proto
    return None, None


def token_subprotocol(scope: Scope) -> str | None:
    """The subprotocol a WebSocket must be accepted with (the token's, when it came that way)."""
    return offered_token(scope)[1]


@dataclass(frozen=True)
class AccessPolicy:
    allowed_hosts: tuple[str, ...]
    allowed_origins: tuple[str, ...] = ()
    token: str | None = None

    def refusal(self, scope: Scope) -> tuple[int, int, str] | None:
        """(HTTP status, WebSocket close code, reason) when the request is refused, else None."""
        headers = _headers(scope)
        host = headers.get("host", "")
        hosts = [h.lower() for h in self.allowed_hosts]
        if "*" not in hosts and host_name(host) not in hosts:
            return (
                400,
                WS_FORBIDDEN,
                (
                    f"host {host!r} is not one this server answers to ({', '.join(self.allowed_hosts)}); "
                    "start it with --allowed-hosts NAME[,NAME...] to add names"
                ),
            )
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, host, scope):
            return (
                403,
                WS_FORBIDDEN,
                (
                    f"origin {origin!r} may not use this server; allowed: its own pages"
                    + (f" and {', '.join(self.allowed_origins)}" if self.allowed_origins else "")
                    + " (--allowed-origins)"
                ),
            )
        if self.token is None or (scope["type"] == "http" and scope.get("method") in SAFE_METHODS):
            return None
        given, _ = offered_token(scope)
        what = "streams" if scope["type"] == "websocket" else f"{scope.get('method')} requests"
        if not given:
            return (
                401,
                WS_UNAUTHORIZED,
                (
                    f"this server needs a token for {what}: send Authorization: Bearer TOKEN "
                    "(spinr --token / SPINR_TOKEN)"
                ),
            )
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return 403, WS_UNAUTHORIZED, "the token is not this server's"
        return None

    def _origin_allowed(self, origin: str, host: str, scope: Scope) -> bool:
        origin = origin.strip().lower().rstrip("/")
        allowed = [o.lower().rstrip("/") for o in self.allowed_origins]
        if "*" in allowed or origin in allowed:
            return True
        parts = urlsplit(origin)
        own = {"http": ("http", "ws"), "https": ("https", "wss")}.get(parts.scheme, ())
        return bool(own) and scope.get("scheme", "http") in own and parts.netloc == host.strip().lower()


class AccessControl:
    """ASGI middleware applying an :class:`AccessPolicy` to every HTTP request and WebSocket."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.policy.refusal(scope)
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, code, reason = refused
        if scope["type"] == "http":
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
            await JSONResponse({"detail": reason}, status_code=status, headers=headers)(scope, receive, send)
            return
        # Accepted, then closed with a code and a reason a browser can show (a refused handshake
        # reaches a page as a bare 1006).
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept", "subprotocol": token_subprotocol(scope)})
        await send({"type": "websocket.close", "code": code, "reason": reason[:120]})

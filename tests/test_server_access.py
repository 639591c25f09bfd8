"""Access control (issue 11 item 13; docs/API.md "Threat model"): a token for writes and streams, Host
and Origin allow-lists. Real server on 127.0.0.1, real websockets, the real CLI and netsim proxy."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from _server import Proxy, Server, png, run_cli
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from codec.errors import ConfigError
from server.access import AccessPolicy
from server.settings import Settings

TOKEN = "s3cret-token_for.tests~0123"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("access") / "data", "--token", TOKEN)
    yield s
    s.close()


@pytest.fixture(scope="module")
def image(server, photo_crop) -> str:
    r = server.http.post(
        "/api/jobs",
        files={"file": ("crop.png", png(photo_crop), "image/png")},
        data={"preset": "tiny", "steps": "5"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 202, r.text
    assert server.wait_state(r.json()["id"], ("done", "failed"))["state"] == "done"
    return r.json()["id"]


def post(server: Server, photo_crop: Any, **headers: str) -> Any:
    files = {"file": ("crop.png", png(photo_crop), "image/png")}
    return server.http.post("/api/jobs", files=files, data={"preset": "tiny", "steps": "5"}, headers=headers)


async def _ws(url: str, **kw: Any) -> tuple[int | None, str, int, str | None]:
    got = 0
    async with connect(url, max_size=None, **kw) as ws:
        try:
            await ws.send(json.dumps({"type": "start"}))  # a refused stream may be closed already
            async for _ in ws:
                got += 1
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason, got, ws.subprotocol


def ws(server: Server, image: str, **kw: Any) -> tuple[int | None, str, int, str | None]:
    return asyncio.run(asyncio.wait_for(_ws(f"{server.ws}/ws/stream/{image}", **kw), 30))


def test_reads_are_open_writes_need_the_token(server, image, photo_crop):
    for path in ("/health", "/api/config", "/api/jobs", f"/api/images/{image}/header"):
        assert server.http.get(path).status_code == 200, path
    before = len(server.http.get("/api/jobs").json()["jobs"])
    r = post(server, photo_crop)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["detail"].startswith("this server needs a token for POST requests: send Authorization")
    r = post(server, photo_crop, Authorization="Bearer wrong-token-of-enough-length")
    assert (r.status_code, r.json()["detail"]) == (403, "the token is not this server's")
    assert len(server.http.get("/api/jobs").json()["jobs"]) == before  # nothing was written
    assert server.http.delete(f"/api/jobs/{image}").status_code == 401
    r = server.http.delete(f"/api/jobs/{image}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 409  # past the token: a finished job cannot be cancelled


def test_streams_need_the_token_as_a_header_or_a_subprotocol(server, image):
    code, reason, got, _ = ws(server, image)
    assert (code, got) == (4401, 0) and "this server needs a token for streams" in reason
    code, reason, got, _ = ws(
        server, image, additional_headers={"Authorization": "Bearer nope-nope-nope-nope"}
    )
    assert (code, reason, got) == (4401, "the token is not this server's", 0)
    code, _, got, proto = ws(server, image, additional_headers={"Authorization": f"Bearer {TOKEN}"})
    assert code == 1000 and got >= 3 and proto is None
    # A browser cannot set headers on a WebSocket: the token travels as a subprotocol, accepted back.
    code, _, got, proto = ws(server, image, subprotocols=[f"spinr-token.{TOKEN}"])
    assert code == 1000 and got >= 3 and proto == f"spinr-token.{TOKEN}"
    assert TOKEN not in server.output()  # never in a log line


def test_foreign_host_and_origin_are_refused(server, image, photo_crop):
    r = server.http.get("/api/jobs", headers={"Host": "rebound.example:8000"})
    assert r.status_code == 400 and r.json()["detail"].startswith(
        "host 'rebound.example:8000' is not one this server answers to (localhost, 127.0.0.1, ::1)"
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = post(server, photo_crop, Origin="https://evil.example", **auth)
    assert (
        r.status_code == 403 and "origin 'https://evil.example' may not use this server" in r.json()["detail"]
    )
    code, reason, _, _ = ws(server, image, origin="https://evil.example", additional_headers=auth)
    assert code == 4403 and "origin 'https://evil.example'" in reason
    # The server's own pages: same scheme, host and port.
    assert post(server, photo_crop, Origin=server.url, **auth).status_code == 202
    assert ws(server, image, origin=server.url, additional_headers=auth)[0] == 1000


def test_cli_and_proxy_send_the_token(server, image, tmp_path, monkeypatch):
    out = run_cli("stream", image, "--server", server.url, "--out", str(tmp_path / "a"), "-q")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "the server needs its token (--token or SPINR_TOKEN) (close 4401)" in out.stderr
    out = run_cli(
        "stream", image, "--server", server.url, "--token", TOKEN, "--out", str(tmp_path / "b"), "-q"
    )
    assert out.returncode == 0, out.stderr
    proxy = Proxy(server.ws, tmp_path, "--loss", "0")
    try:
        monkeypatch.setenv("SPINR_TOKEN", TOKEN)  # the environment's token, through the proxy
        out = run_cli(
            "stream", image, "--server", server.url, "--via", proxy.ws, "--out", str(tmp_path / "c")
        )
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "c" / "final.png").is_file()
    finally:
        proxy.stop()


def test_upload_cli_without_token_is_one_line(server, tmp_path, photo_crop):
    path = tmp_path / "crop.png"
    path.write_bytes(png(photo_crop))
    out = run_cli("upload", str(path), "--server", server.url)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "upload: server answered 401: this server needs a token for POST requests" in out.stderr
    out = run_cli("upload", str(path), "--server", server.url, "--token", TOKEN, "--preset", "tiny")
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    ("policy", "headers", "refused"),
    [
        (AccessPolicy(("*",)), {"host": "anything.example"}, None),
        (AccessPolicy(("localhost",)), {"host": "LOCALHOST:9"}, None),
        (AccessPolicy(("::1",)), {"host": "[::1]:8000"}, None),
        (AccessPolicy(("localhost",)), {"host": "localhost.evil.example"}, 400),
        (AccessPolicy(("h",), ("https://ok.example",)), {"host": "h", "origin": "https://ok.example"}, None),
        (AccessPolicy(("h",), ("*",)), {"host": "h", "origin": "null"}, None),
        (AccessPolicy(("h",)), {"host": "h", "origin": "null"}, 403),
        (AccessPolicy(("h",)), {"host": "h", "origin": "https://h"}, 403),  # another scheme
        (AccessPolicy(("h",)), {"host": "h:1", "origin": "http://h:2"}, 403),  # another port
    ],
)
def test_policy_hosts_and_origins(policy, headers, refused):
    scope = {
        "type": "http",
        "scheme": "http",
        "method": "GET",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    result = policy.refusal(scope)
    assert (result[0] if result else None) == refused, result


@pytest.mark.parametrize("token", ["short", "has space in the middle!", "x" * 257])
def test_a_token_that_cannot_travel_in_a_header_is_refused(token):
    with pytest.raises(ConfigError, match="token of .* is not allowed: use 16..256"):
        Settings(token=token).validate()
    assert Settings(token="").validate().token is None

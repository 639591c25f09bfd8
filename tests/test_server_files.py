"""A file damaged on disk after the server cached it (issue 11 item 15): every route that uses it
refuses it alike, naming the file. Real server, real SQLite, real websockets."""

from __future__ import annotations

import asyncio
import json

from _server import Server, png
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def _stream(url: str) -> tuple[int, int | None, str]:
    got = 0
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start"}))
        try:
            async for _ in ws:
                got += 1
        except ConnectionClosed:
            pass
    return got, ws.close_code, ws.close_reason


def stream(server: Server, job_id: str) -> tuple[int, int | None, str]:
    return asyncio.run(asyncio.wait_for(_stream(f"{server.ws}/ws/stream/{job_id}"), 30))


def test_damaged_after_caching_is_refused_by_every_route(tmp_path, photo_crop):
    server = Server(tmp_path / "data")
    try:
        job_id = server.upload(png(photo_crop), steps=5).json()["id"]
        assert server.wait_state(job_id, ("done", "failed"))["state"] == "done"
        routes = ["bitstream.spnr", "header", "preview.png", "original.png", "jpeg?bytes=100000"]
        for route in routes:  # every route works, and the bitstream is parsed and cached
            assert server.http.get(f"/api/images/{job_id}/{route}").status_code == 200, route
        got, code, _ = stream(server, job_id)
        assert code == 1000 and got >= 3

        for kind, name in (("bitstream", "bitstream.spnr"), ("original", "original.png")):
            path = tmp_path / "data" / "images" / job_id / name
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0x01  # one bit, same size: only the checksum can tell
            path.write_bytes(bytes(data))
            message = f"{kind} file of image {job_id} is damaged: its SHA-256 does not match the record"
            uses = [
                r for r in routes if (r == "original.png" or r.startswith("jpeg")) == (kind == "original")
            ]
            for route in uses:
                r = server.http.get(f"/api/images/{job_id}/{route}")
                assert (r.status_code, r.json()) == (500, {"detail": message}), route
            if kind == "bitstream":
                assert stream(server, job_id) == (0, 1011, message)
        assert "Traceback" not in server.output()
    finally:
        server.close()

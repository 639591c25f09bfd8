"""The WebSocket stream end to end: real server, real client, seeded channels, resume, protocol errors."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import numpy as np
import pytest
from _server import Server, png, serve, streamed_image
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from codec.decoder import ProgressiveDecoder
from streaming.receiver import Receiver
from streaming.session import StreamSession


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve(tmp_path_factory, "ws")


@pytest.fixture(scope="module")
def image(server, photo_crop) -> dict[str, Any]:
    # width 32: a stream well over the channel's 1500-byte burst, so bandwidth shows in the timing
    return streamed_image(server, png(photo_crop), depth=4, width=32, steps=30)


async def _stream(url: str, start: Any) -> tuple[list[bytes], list[dict], int, str]:
    binaries, texts = [], []
    async with connect(url, max_size=None) as ws:
        try:
            await ws.send(start if isinstance(start, (str, bytes)) else json.dumps(start))
            async for m in ws:
                (binaries if isinstance(m, bytes) else texts).append(
                    m if isinstance(m, bytes) else json.loads(m)
                )
        except ConnectionClosed:
            pass
    return binaries, texts, ws.close_code, ws.close_reason


def stream(server: Server, job_id: str, start: Any) -> tuple[list[bytes], list[dict], int, str]:
    return asyncio.run(asyncio.wait_for(_stream(f"{server.ws}/ws/stream/{job_id}", start), 30))


def test_the_server_declines_per_message_deflate(server, image):
    """Packets are entropy-coded: the server turns down the compression a client (websockets, every
    browser) offers, which cost a zlib state per connection and ~1 ms per stream for nothing."""

    async def go() -> tuple[str | None, int]:
        async with connect(f"{server.ws}/ws/stream/{image['id']}", max_size=None) as ws:
            offered = ws.request.headers.get("Sec-WebSocket-Extensions") if ws.request else None
            assert offered is not None and "permessage-deflate" in offered  # the client did offer it
            await ws.send(json.dumps({"type": "start"}))
            got = [m async for m in ws]
            return (ws.response.headers.get("Sec-WebSocket-Extensions") if ws.response else "?"), len(got)

    accepted, count = asyncio.run(asyncio.wait_for(go(), 30))
    assert accepted is None and count == image["bitstream"].header.num_units + 2  # header, layers, done


def decode_units(bs, units) -> np.ndarray:
    dec = ProgressiveDecoder(bs.header, bs.stream_id)
    for u in units:
        dec.add_unit(bs.units[u])
    return dec.decode().rgb


def test_perfect_stream_equals_the_downloaded_bitstream(server, image):
    bs = image["bitstream"]
    binaries, texts, code, _ = stream(server, image["id"], {"type": "start"})
    assert code == 1000 and len(texts) == 1
    n = bs.header.num_units
    done = texts[0]
    assert done == {
        "type": "done",
        "sent": n + 1,
        "delivered": n + 1,
        "dropped": [],
        "corrupted": [],
        "skipped": [],
        "bytes": sum(map(len, binaries)),
    }
    rx = Receiver()
    for b in binaries:
        rx.feed(b)
    assert rx.complete
    np.testing.assert_array_equal(rx.picture().rgb, ProgressiveDecoder.from_bitstream(bs).decode().rgb)
    stages = [e.layers for e in rx.timeline if e.new_picture]
    assert stages == list(range(1, n + 1))  # one more stage per layer packet


def test_lossy_stream_decodes_exactly_the_delivered_units(server, image):
    bs = image["bitstream"]
    start = {"type": "start", "channel": {"loss": 0.2, "seed": 7}}
    binaries, texts, code, _ = stream(server, image["id"], start)
    done = texts[0]
    rx = Receiver()
    for b in binaries:
        rx.feed(b)
    assert code == 1000 and done["dropped"] == rx.missing() and done["dropped"]  # seed 7 drops something
    assert done["delivered"] == len(binaries) == done["sent"] - len(done["dropped"])
    if rx.picture() is not None:
        np.testing.assert_array_equal(rx.picture().rgb, decode_units(bs, rx.have))
    again, texts2, _, _ = stream(server, image["id"], start)
    assert again == binaries and texts2 == texts  # a fixed channel seed replays the same losses

    # Resume: ask again with what we hold; the rest arrives and the picture is complete.
    more, texts3, code3, _ = stream(server, image["id"], {"type": "start", "have": sorted(rx.have)})
    assert code3 == 1000 and texts3[0]["skipped"] == sorted(rx.have)
    assert len(more) == 1 + len(done["dropped"])  # the header again, and only the missing units
    for b in more:
        rx.feed(b)
    assert rx.complete
    np.testing.assert_array_equal(rx.picture().rgb, ProgressiveDecoder.from_bitstream(bs).decode().rgb)


def test_bandwidth_is_paced_in_real_time(server, image):
    bs = image["bitstream"]
    channel = {"bandwidth_kbps": 16}  # 2 bytes per ms, after a 1500-byte burst
    expected = StreamSession(bs, channel).plan()[-1].at  # when the channel says the last packet arrives
    assert expected > 0.2
    t0 = time.monotonic()
    binaries, texts, code, _ = stream(server, image["id"], {"type": "start", "channel": channel})
    elapsed = time.monotonic() - t0
    assert code == 1000 and not texts[0]["dropped"] and len(binaries) == bs.header.num_units + 1
    assert elapsed >= 0.9 * expected, (elapsed, expected)


@pytest.mark.parametrize(
    ("start", "needle"),
    [
        ("not json", "not valid JSON"),
        (b"\x00\x01", "binary"),
        ({"type": "stop"}, "unknown message type 'stop'"),
        ([1, 2], "JSON object"),
        ({"type": "start", "channel": {"loss": 3}}, "channel"),
        ({"type": "start", "channel": "lossy"}, "channel must be a JSON object"),
        ({"type": "start", "have": [99]}, "have contains 99"),
        ({"type": "start", "have": "all"}, "have must be a list"),
        ({"type": "start", "speed": 2}, "unknown field(s) speed"),
    ],
)
def test_malformed_start_closes_1008_naming_the_problem(server, image, start, needle):
    binaries, _, code, reason = stream(server, image["id"], start)
    assert code == 1008 and needle in reason and binaries == []


def test_unknown_and_unfinished_ids(server, photo_crop):
    _, _, code, reason = stream(server, "nope", {"type": "start"})
    assert code == 4404 and "nope" in reason
    job = server.upload(png(photo_crop), steps=200000).json()["id"]
    try:
        _, _, code, reason = stream(server, job, {"type": "start"})
        assert code == 4409 and "not finished" in reason
    finally:
        assert server.http.delete(f"/api/jobs/{job}").json()["state"] == "cancelled"

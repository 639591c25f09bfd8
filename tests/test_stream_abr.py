"""WebSocket protocol version 2 end to end: a real server, real sockets, receiver reports, the ABR
controller on a bandwidth trace, v1 clients beside it, and bad reports refused with 1008."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
from _server import Server, png, run_cli, serve, streamed_image
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from streaming.feedback import Reporter, receive_reporting
from streaming.receiver import Receiver


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve(tmp_path_factory, "abr")


@pytest.fixture(scope="module")
def image(server, photo_crop) -> dict[str, Any]:
    return streamed_image(server, png(photo_crop), depth=6, width=32, steps=30)


async def _session(url: str, start: dict, report: bool, extra: list[Any] | None = None) -> dict[str, Any]:
    """One connection: feed a Receiver, report like the CLI does (or not), collect everything."""
    rx = Receiver()
    texts: list[dict] = []
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps(start))
        for m in extra or []:
            await ws.send(m)
        try:
            async for m in receive_reporting(ws, Reporter() if report else None):  # the CLI's own loop
                if isinstance(m, str):
                    texts.append(json.loads(m))
                else:
                    rx.feed(m)
        except ConnectionClosed:
            pass
    return {"rx": rx, "texts": texts, "code": ws.close_code, "reason": ws.close_reason}


def session(server: Server, job_id: str, start: dict, report: bool = True, **kw: Any) -> dict[str, Any]:
    return asyncio.run(asyncio.wait_for(_session(f"{server.ws}/ws/stream/{job_id}", start, report, **kw), 60))


def units_by(rx: Receiver, t: float) -> set[int]:
    return {e.unit for e in rx.timeline if e.kind == "unit" and e.arrival <= t and e.unit is not None}


def prefix(units: set[int]) -> int:
    k = 0
    while k in units:
        k += 1
    return k


def test_abr_on_a_slow_lossy_link_beats_send_everything(server, image):
    """10 kbit/s, 20 % loss with a seed that loses the first packet: version 1 sends everything and its
    receiver never decodes anything; version 2 sees the gap in the receiver's report, resends that
    packet and stops sending what cannot arrive by the deadline: a picture, for fewer bytes."""
    bs = image["bitstream"]
    channel = {"trace": "constant:10", "loss": 0.2, "seed": 4, "mtu": 0, "delay_ms": 10}
    deadline = 2.5
    v1 = session(server, image["id"], {"type": "start", "channel": channel}, report=False)
    v2 = session(server, image["id"], {"type": "start", "channel": channel, "abr": {"deadline_s": deadline}})
    assert v1["code"] == v2["code"] == 1000
    done1, done2 = v1["texts"][-1], v2["texts"][-1]
    assert "version" not in done1 and done2["version"] == 2 and done2["abr"]["deadline_s"] == deadline
    assert done2["abr"]["reports"] > 0 and done2["abr"]["feedback"] is True
    total = sum(len(p.to_bytes()) for p in bs.packets())
    assert 0 in done1["dropped"] and prefix(units_by(v1["rx"], deadline)) == 0  # no picture at all
    assert done2["resent"] >= 1 and prefix(units_by(v2["rx"], deadline)) >= 2  # a picture
    assert done2["bytes"] < total


def test_byte_budget_buys_the_best_prefix_that_fits(server, image):
    bs = image["bitstream"]
    sizes = [len(p.to_bytes()) for p in bs.packets()]
    budget = sum(sizes[:4]) + 10  # the header and three unit packets, not a fourth
    out = session(
        server, image["id"], {"type": "start", "abr": {"byte_budget": budget}, "channel": {"delay_ms": 5}}
    )
    done = out["texts"][-1]
    assert out["code"] == 1000 and done["abr"]["byte_budget"] == budget
    assert done["bytes"] <= budget and out["rx"].have == {0, 1, 2}
    assert done["not_sent"] == list(range(3, bs.header.num_units))


def test_v2_client_that_never_reports_still_gets_the_whole_stream(server, image):
    bs = image["bitstream"]
    out = session(server, image["id"], {"type": "start", "version": 2}, report=False)
    done = out["texts"][-1]
    assert out["code"] == 1000 and out["rx"].complete
    assert done["abr"]["reports"] == 0 and done["sent"] == bs.header.num_units + 1


def test_v2_perfect_link_with_reports_is_complete_and_exact(server, image):
    bs = image["bitstream"]
    out = session(server, image["id"], {"type": "start", "version": 2, "channel": {"delay_ms": 10}})
    done = out["texts"][-1]
    assert out["code"] == 1000 and out["rx"].complete and done["resent"] == 0
    assert done["bytes"] == sum(len(p.to_bytes()) for p in bs.packets())
    assert [e.kind for e in out["rx"].timeline] == ["header"] + ["unit"] * bs.header.num_units


@pytest.mark.parametrize(
    ("start", "extra", "needle"),
    [
        ({"type": "start", "abr": {"deadline_s": 0}}, [], "abr deadline_s=0 is out of range"),
        ({"type": "start", "abr": {"deadline_s": 1, "speed": 2}}, [], "unknown field(s) speed in abr"),
        ({"type": "start", "abr": {"byte_budget": True}}, [], "abr byte_budget=True is out of range"),
        ({"type": "start", "version": 3}, [], "unknown protocol version 3; allowed: 1, 2"),
        ({"type": "start", "version": 1, "abr": {}}, [], "abr needs protocol version 2"),
        ({"type": "start", "version": 2}, ["{bad"], "report is not valid JSON"),
        ({"type": "start", "version": 2}, [b"\x01"], "JSON text reports, not binary"),
        (
            {"type": "start", "version": 2},
            ['{"type": "report", "at": 5, "lost": [999]}'],
            "lost[0] must be an integer",
        ),
        (
            {"type": "start", "version": 2},
            ['{"type": "report", "at": 1}'] * 80,
            "more than 50 messages per second",
        ),
    ],
)
def test_bad_v2_requests_close_1008_with_a_reason(server, image, start, extra, needle):
    # a slow link keeps the stream open while the bad messages arrive
    start = {**start, "channel": {"bandwidth_kbps": 2}}
    out = session(server, image["id"], start, report=False, extra=extra)
    assert out["code"] == 1008 and needle in out["reason"], out["reason"]


def test_cli_abr_timeline_with_a_trace_file(server, image, tmp_path, photo_crop):
    trace = tmp_path / "trace.csv"
    trace.write_text("time_s,kbps\n0,40\n0.5,4\n")
    ref = tmp_path / "ref.png"
    ref.write_bytes(png(photo_crop))
    r = run_cli("stream", image["id"], "--server", server.url, "--out", str(tmp_path / "out"), "--abr",
                "--deadline", "1.5", "--trace", str(trace), "--ref", str(ref), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    timeline = result["timeline"]
    assert timeline[0]["kind"] == "header" and all(e["kind"] in ("unit", "duplicate") for e in timeline[1:])
    assert all(e["size"] > 0 and e["arrival"] >= 0 for e in timeline)
    assert [e["arrival"] for e in timeline] == sorted(e["arrival"] for e in timeline)
    pictures = [e["psnr"] for e in timeline if e["new_picture"]]
    assert pictures and all(10 < p < 60 for p in pictures)
    done = result["server"][-1]
    assert done["version"] == 2 and done["abr"]["deadline_s"] == 1.5 and done["abr"]["reports"] > 0
    assert done["bytes"] >= sum(e["size"] for e in timeline if e["kind"] == "unit")
    bad = run_cli(
        "stream", image["id"], "--server", server.url, "--out", str(tmp_path / "o2"), "--deadline", "2"
    )
    assert bad.returncode != 0 and "--deadline and --budget need --abr" in bad.stderr


@pytest.fixture(scope="module")
def refined_image(server, photo_crop) -> dict[str, Any]:
    image = streamed_image(server, png(photo_crop), depth=3, width=16, steps=300, refinements=1)
    assert image["bitstream"].levels == 1
    return image


def test_refined_stream_over_a_real_server(server, refined_image):
    """A stream with refinement packets: on a generous link the controller sends each unit whole in a
    direct packet (the one-shot bytes plus one each); on a tight byte budget it sends coarse bases of
    more units rather than fewer units at full precision when that is the better picture."""
    from codec.decoder import ProgressiveDecoder

    bs = refined_image["bitstream"]
    n = bs.header.num_units
    ladder = bs.header.ladder
    assert ladder is not None and ladder.rungs[-1].psnr > ladder.rungs[n - 1].psnr + 0.3  # refining pays
    out = session(server, refined_image["id"], {"type": "start", "version": 2, "channel": {"delay_ms": 5}})
    done = out["texts"][-1]
    assert out["code"] == 1000 and done["resent"] == 0
    assert sorted(s[1] for s in done["sends"]) == [2 * n + u for u in range(n)]  # direct packets
    dec = out["rx"].decoder
    assert dec.levels == {u: 1 for u in range(n)}
    assert np.array_equal(out["rx"].picture().rgb, ProgressiveDecoder.from_bitstream(bs).decode().rgb)
    base_bytes = sum(r.bytes for r in ladder.rungs if r.level == 0)
    budget = len(bs.packets()[0].to_bytes()) + base_bytes + 5
    out = session(server, refined_image["id"], {"type": "start", "abr": {"byte_budget": budget}})
    done = out["texts"][-1]
    assert done["bytes"] <= budget
    got = out["rx"].decoder.levels
    best = max((r.psnr for r in ladder.rungs if r.psnr is not None and r.level == 0), default=None)
    assert got and done["abr"]["ladder_psnr"] is not None and best is not None
    assert done["abr"]["ladder_psnr"] >= best - 1e-9  # at least the all-base picture the budget allows

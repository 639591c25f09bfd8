"""StreamSession and Receiver in memory: seeded channels, no sockets."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from codec.config import preset
from codec.decoder import ProgressiveDecoder
from codec.encode import encode_image
from netsim.channel import ChannelConfig
from streaming.receiver import Receiver
from streaming.session import SessionError, StreamSession, packet_bytes, parse_have


@pytest.fixture(scope="module")
def bitstream(photo_crop: np.ndarray):
    cfg = preset("tiny")
    cfg.model.hidden_layers = 4  # 5 stages: room for losses in the middle
    cfg.model.width = 32  # ~3.5 KB: well over a bandwidth-limited channel's 1500-byte burst
    cfg.train.steps = 30
    return encode_image(photo_crop, cfg).bitstream


def receive(session: StreamSession, reference: np.ndarray | None = None) -> Receiver:
    rx = Receiver(reference)
    for message in session:
        rx.feed(message.data)
    return rx


def decode_units(bitstream, units: set[int]) -> np.ndarray:
    dec = ProgressiveDecoder(bitstream.header, bitstream.stream_id)
    for u in units:
        dec.add_unit(bitstream.units[u])
    return dec.decode().rgb


def test_perfect_link_delivers_everything_in_order(bitstream, photo_crop):
    session = StreamSession(bitstream)
    plan = session.plan()
    n = bitstream.header.num_units
    assert [m.unit for m in plan] == [None, *range(n)]
    assert [m.data for m in plan] == [packet_bytes(p)[0] for p in bitstream.packets()]
    rx = receive(session, photo_crop)
    assert rx.complete and rx.missing() == []
    np.testing.assert_array_equal(rx.picture().rgb, ProgressiveDecoder.from_bitstream(bitstream).decode().rgb)
    s = session.summary
    assert (s.sent, s.delivered, s.dropped, s.bytes) == (
        n + 1,
        n + 1,
        [],
        len(b"".join(m.data for m in plan)),
    )
    psnrs = [e.psnr for e in rx.timeline if e.new_picture]
    assert len(psnrs) == ProgressiveDecoder.from_bitstream(bitstream).depths
    assert psnrs[-1] > psnrs[0]  # progressive: the last stage beats the first


def test_lossy_channel_picture_is_the_decode_of_the_delivered_units(bitstream):
    session = StreamSession(bitstream, {"loss": 0.4, "seed": 5})
    rx = receive(session)
    s = session.summary
    delivered = {m.unit for m in session.plan()[1:]}
    assert s.dropped and delivered  # this seed drops some and keeps some
    assert sorted(set(range(bitstream.header.num_units)) - delivered) == s.dropped == rx.missing()
    assert rx.have == delivered
    if rx.picture() is not None:
        np.testing.assert_array_equal(rx.picture().rgb, decode_units(bitstream, delivered))
    again = StreamSession(bitstream, ChannelConfig.from_dict({"loss": 0.4, "seed": 5}))
    assert [m.data for m in again] == [m.data for m in session.plan()]  # same seed, same stream


def test_have_skips_units_and_resume_completes(bitstream):
    session = StreamSession(bitstream, have=[0, 2])
    assert [m.unit for m in session.plan()] == [
        None,
        *(u for u in range(bitstream.header.num_units) if u not in (0, 2)),
    ]
    assert session.summary.skipped == [0, 2]
    first = StreamSession(bitstream, {"loss": 0.5, "seed": 1})
    rx = receive(first)
    assert rx.missing()
    for message in StreamSession(bitstream, have=rx.have):
        rx.feed(message.data)
    assert rx.complete


@pytest.mark.parametrize(
    ("have", "needle"), [([99], "99"), ([-1], "-1"), (["0"], "'0'"), ([True], "True"), ({"a": 1}, "dict")]
)
def test_bad_have_names_the_value(have, needle):
    with pytest.raises(SessionError, match=needle):
        parse_have(have, 4)


def test_session_checks_have_against_the_stream(bitstream):
    n = bitstream.header.num_units
    with pytest.raises(SessionError, match=f"0..{n - 1}"):
        StreamSession(bitstream, have=[n])


def test_bad_channel_is_a_session_error(bitstream):
    with pytest.raises(SessionError, match="channel"):
        StreamSession(bitstream, {"loss": 7})
    with pytest.raises(SessionError, match="object"):
        StreamSession(bitstream, [1, 2])


def test_pacing_waits_until_each_arrival_without_real_sleeps(bitstream):
    session = StreamSession(bitstream, {"bandwidth_kbps": 8, "seed": 0})  # 1 byte per ms
    plan = session.plan()
    assert plan[-1].at > 0.1 and [m.at for m in plan] == sorted(m.at for m in plan)
    now = [0.0]
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    async def collect(pace: bool) -> list[float]:
        out = []
        async for m in session.messages(pace=pace, clock=lambda: now[0], sleep=fake_sleep):
            out.append(now[0])
            assert now[0] >= m.at - 1e-9
        return out

    times = asyncio.run(collect(True))
    assert times == pytest.approx([m.at for m in plan])
    waits.clear()
    asyncio.run(collect(False))
    assert waits == []


def test_packets_serialised_elsewhere_plan_the_same_stream(bitstream):
    """A server hands every stream of an image the packets it serialised once: same plan, same bytes."""
    packets = tuple(packet_bytes(p) for p in bitstream.packets())
    for channel in (None, {"loss": 0.3, "duplicate": 0.2, "seed": 3}):
        for have in ([], [1]):
            mine = StreamSession(bitstream, channel, have, packets)
            own = StreamSession(bitstream, channel, have)
            assert mine.plan() == own.plan() and mine.summary == own.summary, (channel, have)
            assert all(m.data is packets[m.unit + 1][0] for m in mine.plan()[1:] if channel is None)

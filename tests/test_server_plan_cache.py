"""Channel simulations shared by the clients of one image over one channel (server/plan_cache.py,
server/streams.py), in process: the same plan as a session's own, one simulation per (image,
channel, units held), one flight for a large plan many clients ask for at once, bounded memory."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from _bitstreams import make_stream

import server.streams as streams
from server.plan_cache import ChannelCache
from server.streams import StreamLimits
from streaming.session import StreamSession, packet_bytes, simulate

IMAGE = ("a1", "sha")
LOSSY = {"loss": 0.3, "duplicate": 0.2, "reorder": 0.2, "seed": 4}


@pytest.fixture(scope="module")
def bitstream():
    return make_stream(seed=1, width=8, hidden=4)


def session(bs, channel=LOSSY, have=()) -> StreamSession:
    return StreamSession(bs, channel, list(have), tuple(packet_bytes(p) for p in bs.packets()))


def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def counted(packets, channel):
        calls.append(len(packets))
        return simulate(packets, channel)

    monkeypatch.setattr(streams, "simulate", counted)
    return calls


def test_keys_name_what_a_simulation_depends_on(bitstream) -> None:
    key = ChannelCache.key
    assert key(IMAGE, session(bitstream, None)) is None  # a perfect link: nothing to simulate
    assert key(IMAGE, session(bitstream)) == key(IMAGE, session(bitstream, dict(LOSSY)))
    assert key(IMAGE, session(bitstream)) != key(IMAGE, session(bitstream, {**LOSSY, "seed": 5}))
    assert key(IMAGE, session(bitstream)) != key(IMAGE, session(bitstream, have=[1]))
    assert key(IMAGE, session(bitstream)) != key(("a1", "other"), session(bitstream))


def test_clients_of_one_image_and_channel_share_one_simulation(bitstream, monkeypatch) -> None:
    calls = counting(monkeypatch)
    limits = StreamLimits(10, 10, 10_000, 60.0)
    plans = []
    for _ in range(3):
        s = session(bitstream)
        assert limits.plan_small(s, ChannelCache.key(IMAGE, s))
        plans.append((s.plan(), s.summary))
    assert len(calls) == 1 and len(limits.channels) == 1
    own = StreamSession(bitstream, LOSSY)  # planned by itself, as before the cache
    assert all(p == own.plan() and summary == own.summary for p, summary in plans)
    other = session(bitstream, {**LOSSY, "seed": 9})
    assert limits.plan_small(other, ChannelCache.key(IMAGE, other)) and len(calls) == 2


def test_a_large_plan_runs_once_for_the_clients_waiting_on_it(bitstream, monkeypatch) -> None:
    calls = counting(monkeypatch)
    monkeypatch.setattr(streams, "INLINE_DATAGRAMS", 0)  # every simulation goes to the planner
    limits = StreamLimits(10, 10, 10_000, 60.0)
    pool = ThreadPoolExecutor(1)
    monkeypatch.setattr(limits, "_planner", lambda: pool)

    async def go() -> list[StreamSession]:
        sessions = [session(bitstream) for _ in range(5)]
        assert not any(limits.plan_small(s, ChannelCache.key(IMAGE, s)) for s in sessions)
        return list(await asyncio.gather(*(limits.plan(s, ChannelCache.key(IMAGE, s)) for s in sessions)))

    planned = asyncio.run(go())
    pool.shutdown()
    assert len(calls) == 1 and not limits.channels.flights
    assert all(s.plan() == StreamSession(bitstream, LOSSY).plan() for s in planned)
    again = session(bitstream)
    assert limits.plan_small(again, ChannelCache.key(IMAGE, again)) and len(calls) == 1  # cached


def test_the_cache_is_bounded_by_entries_and_bytes(bitstream) -> None:
    channel_input = session(bitstream).channel_input()
    assert channel_input is not None
    sim = simulate(*channel_input)
    size = sum(len(d) for _, d, _, _ in sim)
    cache = ChannelCache(max_entries=2, max_bytes=2 * size)
    for i in range(3):
        cache.put(("k", i), sim)
    assert len(cache) == 2 and cache.get(("k", 0)) is None and cache.get(("k", 2)) is sim
    assert cache.nbytes == 2 * size
    small = ChannelCache(max_bytes=size - 1)
    small.put("big", sim)  # larger than the whole cache: not kept
    assert len(small) == 0 and small.nbytes == 0
    cache.put(None, sim)  # a perfect link has no key
    assert len(cache) == 2


def test_streams_asking_for_one_job_at_once_share_one_read() -> None:
    """400 clients of a new image asked the database 400 times; now one read answers the clients
    that ask meanwhile, and a done job is remembered (done is final), any other state is not."""
    import threading

    limits = StreamLimits(10, 10, 10_000, 60.0)
    states = {"d1": "done", "r1": "running"}
    reads: list[str] = []
    gate = threading.Event()

    def read(job_id: str) -> dict[str, str] | None:
        reads.append(job_id)
        assert gate.wait(10)  # every asker is waiting before the first read ends
        return {"state": states[job_id]} if job_id in states else None

    async def go(ids: list[str]) -> list[str | None]:
        tasks = [asyncio.ensure_future(limits.job_state(j, read)) for j in ids]
        await asyncio.sleep(0)  # each task runs to its first await: all are waiting on a read
        gate.set()
        return list(await asyncio.gather(*tasks))

    assert (
        asyncio.run(go(["d1"] * 5 + ["r1"] * 3 + ["zz"] * 2)) == ["done"] * 5 + ["running"] * 3 + [None] * 2
    )
    assert sorted(reads) == ["d1", "r1", "zz"] and not limits._lookups
    assert asyncio.run(go(["d1", "r1", "zz"])) == ["done", "running", None]
    assert sorted(reads) == ["d1", "r1", "r1", "zz", "zz"]  # done remembered; the others read again
    limits.close()

"""Stream starts in batches (server.streams.StreamLimits.start): the starts that arrive while a batch
runs go in one trip to the thread pool, each caller gets its own result or error, and the streams of
one image in one batch share one read and check of its file, made after all of them asked; a later
batch reads it again, so a file damaged in between is refused."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from _bitstreams import make_stream

from server.cache import BitstreamCache
from server.routes.stream import _start
from server.states import JobState
from server.store import Store, StoreError
from server.streams import START_BATCHES, StreamLimits
from streaming.session import StreamSession


def test_starts_waiting_meanwhile_go_in_one_batch_each_with_its_own_outcome() -> None:
    limits = StreamLimits(100, 100, 10_000, 60.0)
    gate = threading.Event()
    calls: list[tuple[int, int]] = []  # (id of the batch's shared dict, argument)

    def work(shared: dict[Any, Any], n: int) -> int:
        calls.append((id(shared), n))
        if n < START_BATCHES:
            assert gate.wait(10)  # the first batches are held until every other start waits
        if n == 7:
            raise ValueError("seven")
        return n * 10

    async def go() -> list[Any]:
        tasks = [asyncio.ensure_future(limits.start(work, n)) for n in range(12)]
        await asyncio.sleep(0)  # each task runs to its first await
        assert limits._batches == START_BATCHES and len(limits._waiting) == 12 - START_BATCHES
        tasks[5].cancel()  # its client went away while it waited: never run
        await asyncio.sleep(0)
        gate.set()
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    results = asyncio.run(go())
    assert results[:5] == [0, 10, 20, 30, 40] and isinstance(results[5], asyncio.CancelledError)
    assert isinstance(results[7], ValueError) and str(results[7]) == "seven"
    assert results[8:] == [80, 90, 100, 110] and results[6] == 60
    ran = [n for _, n in calls]
    assert sorted(ran) == [n for n in range(12) if n != 5]
    batches = {shared for shared, n in calls if n >= START_BATCHES}
    assert len(batches) == 1  # the ten that waited: one trip, one shared dict
    assert limits._batches == 0 and not limits._waiting
    limits.close()


def test_a_stopped_pool_fails_the_start_with_an_error() -> None:
    limits = StreamLimits(100, 100, 10_000, 60.0)
    limits._threads = ThreadPoolExecutor(1)
    limits._threads.shutdown()  # as the server's shutdown leaves it

    async def go() -> None:
        with pytest.raises(RuntimeError, match="shutdown"):
            await limits.start(lambda shared: 1)
        assert limits._batches == 0 and not limits._waiting

    asyncio.run(go())


def finished(store: Store, job_id: str) -> None:
    store.create_job(job_id, job_id, {}, 12, 9, b"png")
    store.transition(job_id, JobState.RUNNING)
    store.finish(job_id, make_stream(0).to_bytes(), {})


def test_one_read_per_image_per_batch_and_a_damaged_file_is_refused_by_the_next(tmp_path, monkeypatch):
    store = Store(tmp_path)
    finished(store, "a1")
    svc = SimpleNamespace(store=store, cache=BitstreamCache(), streams=StreamLimits(100, 100, 10_000, 60.0))
    reads: list[str] = []
    read_file = store.read_file
    monkeypatch.setattr(store, "read_file", lambda job, *a: reads.append(job) or read_file(job, *a))
    start = {"type": "websocket.receive", "text": '{"type": "start"}'}

    shared: dict[Any, Any] = {}
    sessions = [_start(shared, svc, "a1", start)[0] for _ in range(5)]  # one batch of five streams
    assert reads == ["a1"] and all(isinstance(s, StreamSession) for s in sessions)
    assert [m.data for m in sessions[0].plan()] == [m.data for m in sessions[4].plan()]

    path = store.file_path("a1", "bitstream")
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # damaged between two batches
    shared = {}
    for _ in range(3):  # every stream of the next batch is refused; the file was read once for them
        with pytest.raises(StoreError, match="a1 is damaged"):
            _start(shared, svc, "a1", start)
    assert reads == ["a1", "a1"]
    store.close()

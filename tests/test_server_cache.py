"""The server's bitstream cache in process: packets serialised once per image, the file checked on
every read, and what it says about a job (its bitstream is cached only once the job is done)."""

from __future__ import annotations

import threading

import pytest
from _bitstreams import make_stream
from _server import poll

from server.cache import BitstreamCache
from server.states import JobState
from server.store import Store, StoreError
from streaming.session import packet_bytes


def finished(store: Store, job_id: str, seed: int) -> bytes:
    store.create_job(job_id, job_id, {}, 12, 9, b"png")
    store.transition(job_id, JobState.RUNNING)
    data = make_stream(seed).to_bytes()
    store.finish(job_id, data, {})
    return data


def test_stream_packets_are_serialised_once_and_the_file_is_checked_on_every_get(tmp_path):
    store = Store(tmp_path)
    finished(store, "a1", 0)
    cache = BitstreamCache(size=2)
    assert not cache.holds("a1")
    first = cache.get_stream(store, "a1")
    assert cache.holds("a1") and cache.get_stream(store, "a1") is first  # parsed and serialised once
    assert first.packets == tuple(packet_bytes(p) for p in first.bitstream.packets())
    assert cache.get(store, "a1") is first.bitstream
    path = store.file_path("a1", "bitstream")
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # damaged after it was cached
    with pytest.raises(StoreError, match="a1 is damaged"):
        cache.get_stream(store, "a1")
    store.close()


def test_holds_follows_the_least_recently_used_entries(tmp_path):
    store = Store(tmp_path)
    for i, job in enumerate(("a1", "b2", "c3")):
        finished(store, job, i)
    cache = BitstreamCache(size=2)
    for job in ("a1", "b2", "c3"):
        cache.get_stream(store, job)
    assert [cache.holds(j) for j in ("a1", "b2", "c3", "zz")] == [False, True, True, False]
    store.create_job("q1", "queued", {}, 12, 9, b"png")
    with pytest.raises(StoreError, match="no bitstream is recorded for image q1"):
        cache.get_stream(store, "q1")
    assert not cache.holds("q1")
    store.close()


def test_holds_answers_the_event_loop_while_a_start_thread_holds_the_cache_lock(tmp_path):
    store = Store(tmp_path)
    finished(store, "a1", 0)
    cache = BitstreamCache()
    cache.get_stream(store, "a1")
    answers: list[bool] = []
    with cache._lock:  # as a start thread preempted inside get_stream
        asker = threading.Thread(target=lambda: answers.extend([cache.holds("a1"), cache.holds("zz")]))
        asker.start()
        asker.join(10)  # with the lock taken by holds, this thread would wait until the block ends
        assert answers == [True, False]
    store.close()


def test_clients_of_a_new_image_wait_for_one_parse(tmp_path, monkeypatch):
    """400 clients of a new image arrive before its first parse ends: one thread parses, the others
    wait for it (each still reads and checks the file)."""
    import threading

    import server.cache as cache_module

    store = Store(tmp_path)
    finished(store, "a1", 0)
    cache = BitstreamCache()
    parses, reads = [], []
    started, release = threading.Event(), threading.Event()
    real_load, real_read = cache_module.load_bitstream, store.read_file

    def slow_load(*args, **kwargs):
        parses.append(1)
        started.set()
        assert release.wait(10)
        return real_load(*args, **kwargs)

    def counted_read(*args, **kwargs):
        reads.append(1)
        return real_read(*args, **kwargs)

    monkeypatch.setattr(cache_module, "load_bitstream", slow_load)
    monkeypatch.setattr(store, "read_file", counted_read)
    results: list[object] = []
    first = threading.Thread(target=lambda: results.append(cache.get_stream(store, "a1")))
    first.start()
    assert started.wait(10)
    others = [
        threading.Thread(target=lambda: results.append(cache.get_stream(store, "a1"))) for _ in range(8)
    ]
    for t in others:
        t.start()
    poll(lambda: len(reads) == 9, 10, "every client to read the file")  # all past the cache lookup
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert len(parses) == 1 and len(reads) == 9 and len(results) == 9
    assert all(r is results[0] for r in results)
    assert not cache._parsing  # nothing left behind
    store.close()


def test_version_2_streams_share_the_packets_and_ladder_of_the_cached_image(tmp_path):
    from streaming.abr import Goal
    from streaming.abr_session import AbrSession, AbrStream

    store = Store(tmp_path)
    finished(store, "a1", 0)
    stored = BitstreamCache().get_stream(store, "a1")
    assert stored.abr is stored.abr  # made once per image
    assert stored.abr == AbrStream.of(stored.bitstream)  # as a session makes it for itself
    assert stored.abr.packets[: len(stored.packets)] == tuple(data for data, _ in stored.packets)
    one, two = (AbrSession(stored.bitstream, None, Goal(), (), stored.abr) for _ in range(2))
    assert one.packets is two.packets is stored.abr.packets and one.rungs == list(stored.abr.rungs)
    assert one.rungs is not two.rungs  # each session's own list
    store.close()

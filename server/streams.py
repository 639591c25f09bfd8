"""Bounds on the WebSocket streams: how many run at once (per server and per client address), how
much channel simulation one may ask for, how long one may last, and how many are planned at once.

The counters change on the event loop only (one thread), so they need no lock.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

from netsim.channel import ChannelConfig
from server.plan_cache import ChannelCache
from server.states import JobState
from streaming.session import SessionError, Simulated, StreamSession, simulate

INLINE_DATAGRAMS = 1000
"""Sessions of at most this many datagrams are planned in the thread pool (milliseconds); larger
ones in one planner process, one at a time: hostile channel settings cost queueing time, not the
event loop or every core."""


STARTER_THREADS = min(8, (os.cpu_count() or 1) + 4)
"""Threads that start streams (file check, start message, plan): Python's default pool size, not
anyio's 40, which only contend for the GIL."""
START_BATCHES = 2
"""Batches of stream starts in the thread pool at once (:meth:`StreamLimits.start`): the starts that
arrive meanwhile wait for the next batch; two, so that one slow start (the first parse of a large
image) does not hold up every other."""
T = TypeVar("T")


class PlanFailed(Exception):
    """The planner process stopped (close code 1011)."""


class StreamsBusy(Exception):
    """A new stream would go over a limit; the message names it (close code 1013, try again later)."""


@dataclass
class StreamLimits:
    max_streams: int
    """Streams open at once on this server."""
    max_per_client: int
    """Streams open at once from one client address."""
    max_datagrams: int
    """Datagrams the channel simulation of one stream may handle (fragments included)."""
    max_seconds: float
    """Longest a stream may take to deliver (delay, jitter and bandwidth of its channel)."""
    open: Counter[str] = field(default_factory=Counter)
    """Open streams per client address."""
    total: int = 0
    """Open streams (an int, so that a thread such as /health's may read it)."""
    channels: ChannelCache = field(default_factory=ChannelCache)
    """Channel simulations shared by the clients asking for the same image over the same channel."""
    done: set[str] = field(default_factory=set)
    """Images known to be finished: done is a final state (a finished image is never changed or
    removed), so at most one entry per finished job of the store."""
    _lookups: dict[str, asyncio.Future[dict[str, Any] | None]] = field(default_factory=dict)
    """Job reads under way, shared by the streams that ask for the same id meanwhile."""
    _pool: ProcessPoolExecutor | None = None
    _threads: ThreadPoolExecutor | None = None
    _waiting: list[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]] = field(
        default_factory=list
    )
    """Stream starts waiting for the next batch (touched on the event loop only)."""
    _batches: int = 0
    """Batches of stream starts in the thread pool now."""

    async def job_state(self, job_id: str, read: Callable[[str], dict[str, Any] | None]) -> str | None:
        """The state of the job ``job_id`` (None: there is none), read by ``read`` off the event loop
        once for all the streams that ask meanwhile: 400 clients of a new image asked 400 times."""
        if job_id in self.done:
            return JobState.DONE.value
        future = self._lookups.get(job_id)
        if future is None:
            future = asyncio.ensure_future(self.off_loop(read, job_id))
            self._lookups[job_id] = future
            future.add_done_callback(lambda f: self._lookups.pop(job_id, None))
        # Shielded: one client going away does not cancel the read the others wait for.
        job = await asyncio.shield(future)
        state = None if job is None else str(job["state"])
        if state == JobState.DONE.value:
            self.done.add(job_id)
        return state

    async def off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the streams' own thread pool. A hop through the event loop's executor costs
        the server a third of anyio's (``run_in_threadpool``: 25-40 us against 60-140 us of CPU on
        this machine), and every stream makes one or two."""
        return await asyncio.get_running_loop().run_in_executor(self._starters(), fn, *args)

    def _starters(self) -> ThreadPoolExecutor:
        """The streams' thread pool, made on first use."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(STARTER_THREADS, thread_name_prefix="spinr-stream")
        return self._threads

    async def start(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(shared, *args)`` in the streams' thread pool, in one trip with the other stream starts
        that wait meanwhile (at most ``START_BATCHES`` trips at once). ``shared`` is a dict the calls of
        one batch share (the image files read and checked for them: every call of a batch was asked
        for before its batch began). Each trip costs the event loop a hand-over, a wake-up and the GIL
        twice: 400 clients at once made 400 of them for 50 us of work each."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append((fn, args, future))
        if self._batches < START_BATCHES:
            self._launch(loop)
        return await future

    def _launch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._waiting = self._waiting, []
        self._batches += 1
        try:
            self._starters().submit(self._run_batch, loop, batch)
        except RuntimeError as exc:  # the pool is shut down: the server is stopping
            self._batch_landed(loop, batch, [(None, exc)] * len(batch))

    def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[Any]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        shared: dict[Hashable, Any] = {}
        try:
            for fn, args, future in batch:
                if future.cancelled():  # its client went away meanwhile
                    outcomes.append((None, None))
                    continue
                try:
                    outcomes.append((fn(shared, *args), None))
                except Exception as exc:
                    outcomes.append((None, exc))
        finally:
            # A stopping server may have closed its loop: nobody waits for these any more.
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(self._batch_landed, loop, batch, outcomes)

    def _batch_landed(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[Any],
        outcomes: list[tuple[Any, BaseException | None]],
    ) -> None:
        self._batches -= 1
        for i, (_, _, future) in enumerate(batch):
            if future.done():
                continue
            value, exc = (
                outcomes[i] if i < len(outcomes) else (None, RuntimeError("the stream start stopped"))
            )
            if exc is None:
                future.set_result(value)
            else:
                future.set_exception(exc)
        if self._waiting and self._batches < START_BATCHES:
            self._launch(loop)

    @contextmanager
    def slot(self, client: str) -> Iterator[None]:
        """Hold one stream slot for ``client``; StreamsBusy when none is free."""
        if self.total >= self.max_streams:
            raise StreamsBusy(f"this server has {self.total} streams open, its limit; try again later")
        if self.open[client] >= self.max_per_client:
            raise StreamsBusy(
                f"client {client} has {self.open[client]} streams open, the limit per client; "
                "close one or try again later"
            )
        self.open[client] += 1
        self.total += 1
        try:
            yield
        finally:
            self.total -= 1
            self.open[client] -= 1
            if self.open[client] <= 0:
                del self.open[client]

    def plan_small(self, session: StreamSession, key: Hashable | None = None) -> bool:
        """Check the session's work and, unless its channel simulation is large and not cached, plan
        it here (the caller's thread: one hop off the event loop for the whole start of a stream).
        False: for :meth:`plan` to hand to the planner process. ``key``: :meth:`ChannelCache.key` of
        the session. SessionError names a bound it goes over."""
        large = self._check(session) > INLINE_DATAGRAMS
        channel_input = session.channel_input()
        simulated = self.channels.get(key) if channel_input is not None else None
        if simulated is None and channel_input is not None:
            if large:
                return False
            simulated = simulate(*channel_input)
            self.channels.put(key, simulated)
        self._within_seconds(self._finish(session, simulated))
        return True

    async def plan(self, session: StreamSession, key: Hashable | None = None) -> StreamSession:
        """Check the session's work, then plan it off the event loop: a small plan in the thread pool,
        a large channel simulation in the planner process (a thread would hold the GIL the event loop
        needs for every request), once for all the clients that ask for it at the same time.
        SessionError names a bound it goes over; PlanFailed when the planner process died."""
        count = await self.off_loop(self._check, session)
        simulated = self.channels.get(key)
        channel_input = session.channel_input() if count > INLINE_DATAGRAMS else None
        if simulated is None and channel_input is not None:
            simulated = await self._simulate_once(key, channel_input)
        self._within_seconds(await self.off_loop(self._finish, session, simulated))
        return session

    async def _simulate_once(
        self, key: Hashable | None, channel_input: tuple[list[bytes], ChannelConfig]
    ) -> Simulated:
        flights = self.channels.flights
        future = flights.get(key) if key is not None else None
        try:
            if future is None:
                future = asyncio.get_running_loop().run_in_executor(self._planner(), simulate, *channel_input)
                if key is not None:
                    flights[key] = future
                    future.add_done_callback(lambda f: self._landed(key, f))
            # Shielded: one client going away does not cancel the simulation the others wait for.
            return await asyncio.shield(future)
        except BrokenProcessPool:
            self._pool = None  # the next stream starts a new one
            raise PlanFailed("the stream planner process stopped; try again") from None

    def _landed(self, key: Hashable, future: asyncio.Future[Simulated]) -> None:
        if self.channels.flights.get(key) is future:
            del self.channels.flights[key]
        if not future.cancelled() and future.exception() is None:
            self.channels.put(key, future.result())

    def _within_seconds(self, duration: float) -> None:
        if duration > self.max_seconds:
            raise SessionError(
                f"this channel delivers the stream over {duration:.0f} s (its delay, jitter and bandwidth); "
                f"this server streams for at most {self.max_seconds:g} s"
            )

    def _check(self, session: StreamSession) -> int:
        session.check_work(self.max_datagrams)  # before the channel runs: bounded work
        return session.datagrams()

    @staticmethod
    def _finish(session: StreamSession, simulated: Simulated | None) -> float:
        session.plan(simulated)
        return session.duration

    def _planner(self) -> ProcessPoolExecutor:
        if self._pool is None:  # started on first need: most servers never see a large plan
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        """Stop the planner process (a plan it is running is bounded by ``max_datagrams``)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None

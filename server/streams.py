"""Bounds on the WebSocket streams: how many run at once (per server and per client address), how
much channel simulation one may ask for, how long one may last, and how many are planned at once.

The counters change on the event loop only (one thread), so they need no lock.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from streaming.session import SessionError, Simulated, StreamSession, simulate

INLINE_DATAGRAMS = 1000
"""Sessions of at most this many datagrams are planned in the thread pool (milliseconds); larger
ones in one planner process, one at a time: hostile channel settings cost queueing time, not the
event loop or every core."""


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
    _pool: ProcessPoolExecutor | None = None

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

    def plan_small(self, session: StreamSession) -> bool:
        """Check the session's work and, unless its channel simulation is large, plan it here (the
        caller's thread: one hop off the event loop for the whole start of a stream). False: large,
        for :meth:`plan` to hand to the planner process. SessionError names a bound it goes over."""
        if self._check(session) > INLINE_DATAGRAMS and session.channel_input() is not None:
            return False
        self._within_seconds(self._finish(session, None))
        return True

    async def plan(self, session: StreamSession) -> StreamSession:
        """Check the session's work, then plan it off the event loop: a small plan in the thread pool,
        a large channel simulation in the planner process (a thread would hold the GIL the event loop
        needs for every request). SessionError names a bound it goes over; PlanFailed when the
        planner process died."""
        count = await run_in_threadpool(self._check, session)
        simulated = None
        channel_input = session.channel_input() if count > INLINE_DATAGRAMS else None
        if channel_input is not None:
            loop = asyncio.get_running_loop()
            try:
                simulated = await loop.run_in_executor(self._planner(), simulate, *channel_input)
            except BrokenProcessPool:
                self._pool = None  # the next stream starts a new one
                raise PlanFailed("the stream planner process stopped; try again") from None
        self._within_seconds(await run_in_threadpool(self._finish, session, simulated))
        return session

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

"""Server side of a protocol-version-2 stream: the ABR controller in real time over a simulated channel.

The header packet goes out at once (reliably, as in version 1). Then the loop asks
:func:`streaming.abr.decide` what to do: a packet it sends goes through the session's netsim channel,
which says when (and whether) each copy reaches the client, and a single pump hands copies to the
socket when they are due; a wait lasts until the next receiver report or the controller's timeout;
a stop ends the stream once everything in the pipe is delivered. Reports come in through
:meth:`AbrSession.report` (the route parses and bounds them). A client that sends no report within
:data:`FEEDBACK_TIMEOUT` s of the first packet is served open loop, so it still gets the stream.
Nothing here blocks the event loop, and a session never sends more than :data:`MAX_SEND_FACTOR` times
the stream's bytes nor runs longer than :data:`MAX_SESSION_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from codec.bitstream import Bitstream
from netsim.channel import Channel, ChannelConfig
from streaming.abr import Decision, Goal, Rung, decide, picture_psnr
from streaming.feedback import Report, SenderBook, stream_rungs
from streaming.session import SessionError, damaged

FEEDBACK_TIMEOUT = 1.0
MAX_SEND_FACTOR = 4
MAX_SESSION_S = 600.0
MAX_DEADLINE_S = 600.0
LATE_GRACE_S = 0.5
"""With a deadline, the stream ends this long after it: copies due later are not delivered (the client
asked for the best picture by then), only counted as ``late``."""
ABR_FIELDS = {"deadline_s", "byte_budget"}


def parse_goal(value: Any) -> Goal:
    """The start message's ``abr`` object -> a :class:`Goal`; SessionError names what is wrong."""
    if value is None:
        return Goal()
    if not isinstance(value, dict):
        raise SessionError(
            f'abr must be a JSON object such as {{"deadline_s": 2.0}}, got {type(value).__name__}'
        )
    unknown = sorted(set(value) - ABR_FIELDS)
    if unknown:
        raise SessionError(
            f"unknown field(s) {', '.join(unknown)[:60]} in abr; allowed: byte_budget, deadline_s"
        )
    deadline, budget = value.get("deadline_s"), value.get("byte_budget")
    if deadline is not None and (
        isinstance(deadline, bool)
        or not isinstance(deadline, (int, float))
        or not 0 < deadline <= MAX_DEADLINE_S
        or math.isnan(deadline)
    ):
        raise SessionError(
            f"abr deadline_s={deadline!r:.30} is out of range; allowed seconds in (0, {MAX_DEADLINE_S:g}]"
        )
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= 2**31
    ):
        raise SessionError(f"abr byte_budget={budget!r:.30} is out of range; allowed an integer 1..{2**31}")
    return Goal(None if deadline is None else float(deadline), budget)


@dataclass
class AbrSummary:
    sends: list[list[Any]] = field(default_factory=list)
    """[time s, unit, bytes, resend] of every unit packet handed to the channel."""
    delivered: int = 0
    delivered_units: set[int] = field(default_factory=set)
    corrupted_copies: int = 0
    late: int = 0
    """Copies the channel would deliver after the deadline's grace: not sent to the client."""
    bytes: int = 0
    """Bytes handed to the channel, the header included."""
    stopped: str = ""
    last: Decision | None = None


@dataclass(frozen=True)
class AbrStream:
    """What every version-2 stream of one bitstream plans with and sends: the controller's ladder and
    each packet's bytes (every packet by number, then the direct packets, as :func:`stream_rungs`
    lists them). The same for every client, so a server makes it once per image."""

    rungs: tuple[Rung, ...]
    packets: tuple[bytes, ...]

    @classmethod
    def of(cls, bitstream: Bitstream, packets: Sequence[bytes] | None = None) -> AbrStream:
        """``packets``: the bytes of ``bitstream.packets()``, if serialised already. SessionError when
        the stream cannot be sent (units missing, refinements its ladder does not list)."""
        try:
            rungs = stream_rungs(bitstream)
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        out = list(packets) if packets is not None else [p.to_bytes() for p in bitstream.packets()]
        if bitstream.levels:  # numbered after the refinements, as stream_rungs lists them
            from codec.refined import direct_packets

            out += [p.to_bytes() for p in direct_packets(bitstream)]
        return cls(tuple(rungs), tuple(out))


class AbrSession:
    """One version-2 stream of ``bitstream`` to a client holding ``have``."""

    def __init__(
        self,
        bitstream: Bitstream,
        channel: ChannelConfig | None,
        goal: Goal,
        have: Iterable[int] = (),
        prepared: AbrStream | None = None,
    ) -> None:
        """``prepared``: :meth:`AbrStream.of` the bitstream, as a server keeps it for every stream of
        an image (made here otherwise)."""
        prepared = prepared or AbrStream.of(bitstream)
        self.rungs = list(prepared.rungs)
        self.packets = prepared.packets
        self.goal = goal
        self.have = sorted(set(have))
        self.book = SenderBook(self.rungs, self._budget_for_units(goal))
        self.book.delivered.update(self.have)
        self.channel = channel
        self.summary = AbrSummary()
        self._reports: asyncio.Queue[Report] = asyncio.Queue()

    def _budget_for_units(self, goal: Goal) -> Goal:
        """The client's byte budget covers the header too; the controller counts unit packets."""
        if goal.byte_budget is None:
            return goal
        return Goal(goal.deadline_s, max(0, goal.byte_budget - len(self.packets[0])))

    def report(self, report: Report) -> None:
        self._reports.put_nowait(report)

    async def run(
        self,
        send: Callable[[bytes], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
        max_seconds: float = MAX_SESSION_S,
    ) -> None:
        """Stream until the controller stops and every copy in the pipe is delivered; never sends for
        longer than ``max_seconds`` (the server's stream limit), and nothing due after it."""
        start = clock()
        link = Channel(self.channel).session() if self.channel is not None else None
        due: list[tuple[float, int, bytes]] = []
        tick = itertools.count()
        wake = asyncio.Event()
        finished = False
        s = self.summary
        total = sum(len(p) for p in self.packets)

        async def pump() -> None:
            while True:
                if not due:
                    if finished:
                        return
                    wake.clear()
                    await wake.wait()
                    continue
                wait = start + due[0][0] - clock()
                if wait > 0:
                    wake.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(wake.wait(), wait)
                    continue
                _, _, data = heapq.heappop(due)
                await send(data)

        order: list[int] = []  # unit of each packet handed to the channel (a delivery's index)

        cutoff = (
            max_seconds
            if self.goal.deadline_s is None
            else min(max_seconds, self.goal.deadline_s + LATE_GRACE_S)
        )

        def arrive(c: Any) -> None:
            if c.arrival_time > cutoff:
                s.late += 1
                return
            if damaged(c):
                s.corrupted_copies += 1
            else:
                s.delivered_units.add(order[c.index])
            s.delivered += 1
            heapq.heappush(due, (c.arrival_time, next(tick), bytes(c.data)))

        s.bytes = len(self.packets[0])
        await send(self.packets[0])
        pumping = asyncio.create_task(pump())
        try:
            while True:
                now = clock() - start
                while not self._reports.empty():
                    self.book.on_report(self._reports.get_nowait(), now)
                if self.book.reports == 0 and self.book.sends and now > FEEDBACK_TIMEOUT:
                    self.book.feedback = False  # a receiver that does not report: open loop
                if now > max_seconds or s.bytes > MAX_SEND_FACTOR * total:
                    s.stopped = "session limit reached"
                    break
                d = decide(self.book.state(now))
                s.last = d
                if d.action == "stop":
                    s.stopped = d.reason
                    break
                if d.action == "wait":
                    try:
                        r = await asyncio.wait_for(self._reports.get(), d.wait_s or 0.05)
                        self.book.on_report(r, clock() - start)
                    except asyncio.TimeoutError:
                        pass
                    continue
                assert d.unit is not None
                data = self.packets[d.unit + 1]
                self.book.record_send(d.unit, now)
                s.sends.append([round(now, 4), d.unit, len(data), d.resend])
                s.bytes += len(data)
                order.append(d.unit)
                if link is None and now <= cutoff:
                    heapq.heappush(due, (now, next(tick), data))
                    s.delivered += 1
                    s.delivered_units.add(d.unit)
                for c in link.send(data, now) if link is not None else []:
                    arrive(c)
                wake.set()
                await asyncio.sleep(0)  # let the pump and the report reader run between sends
            for c in link.flush() if link is not None else []:  # datagrams a reorder stage still held
                arrive(c)
            finished = True
            wake.set()
            await pumping
        finally:
            pumping.cancel()

    def done_message(self) -> dict[str, Any]:
        s, link = self.summary, self.book.estimator
        units = len(self.rungs)
        got = s.delivered_units | set(self.have)
        reached = picture_psnr(self.rungs, got)
        return {
            "type": "done",
            "version": 2,
            "sent": 1 + len(s.sends),
            "resent": sum(1 for x in s.sends if x[3]),
            "delivered": 1 + s.delivered,
            "dropped": sorted(u for u in {x[1] for x in s.sends} if u not in got),
            "not_sent": sorted(u for u in range(units) if u not in got and u not in {x[1] for x in s.sends}),
            "skipped": self.have,
            "late": s.late,
            "bytes": s.bytes,
            "abr": {
                "deadline_s": self.goal.deadline_s,
                "byte_budget": self.goal.byte_budget,
                "stopped": s.stopped,
                "target": s.last.target if s.last else None,
                "ladder_psnr": reached if reached is None or math.isfinite(reached) else "inf",
                "reports": self.book.reports,
                "feedback": self.book.feedback,
                "throughput_kbps": None if link.throughput is None else round(link.throughput * 8 / 1000, 2),
                "rtt_ms": None if link.rtt is None else round(link.rtt * 1000, 1),
                "loss": round(link.loss, 4),
            },
            "sends": s.sends,
        }

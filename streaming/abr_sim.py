"""A stream through a netsim channel on a virtual clock: the ABR controller against fixed policies.

Event-driven and deterministic (no sleeping): the sender decides at time 0, whenever a receiver report
reaches it and when its controller asks to wait; the channel (:class:`netsim.ChannelSession`) says when
each packet arrives; the receiver reports every arrival (and the gaps below the highest packet it holds)
over a lossless return path of ``feedback_delay_s``. Policies:

- ``abr``: :func:`streaming.abr.decide` on the :class:`~streaming.feedback.SenderBook` the reports fill;
- ``all``: every packet in order at time 0, as protocol version 1 sends (today's behaviour);
- ``fixed-K``: the first K packets at time 0 (a fixed rung of the ladder);
- ``fixed-base``, ``fixed-base+L`` (a stream with refinements): every unit at level 0 (up to L) at time 0.

The quality the receiver sees at any time is the ladder's PSNR of the deepest prefix that arrived,
which is what decoding those packets gives (tests/test_ladder.py checks the two agree).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from netsim import Channel, ChannelConfig
from streaming.abr import Goal, Rung, decide, picture_psnr
from streaming.feedback import Arrival, Report, SenderBook

MAX_EVENTS = 1_000_000


@dataclass
class SimResult:
    policy: str
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Each send: time, unit, bytes, resend."""
    arrivals: list[dict[str, Any]] = field(default_factory=list)
    """Each intact arrival of a new unit: time, unit, bytes, psnr (of the prefix held after it)."""
    bytes_sent: int = 0
    decide_seconds: list[float] = field(default_factory=list)
    decide_cpu_seconds: list[float] = field(default_factory=list)
    """CPU time of each controller call (this thread's): wall time without the machine's preemptions."""
    """Wall time of each controller call (``abr`` only)."""

    def psnr_at(self, t: float) -> float | None:
        """The receiver's PSNR at time ``t`` (None: no picture yet)."""
        best = None
        for a in self.arrivals:
            if a["time"] > t:
                break
            if a["psnr"] is not None:
                best = a["psnr"]
        return best

    def first_picture_s(self) -> float | None:
        return next((a["time"] for a in self.arrivals if a["psnr"] is not None), None)

    def stalls(self, deadline: float, gap_s: float = 0.5) -> int:
        """Times the picture did not improve for more than ``gap_s`` before the deadline while the
        stream was not complete."""
        times = [0.0] + [a["time"] for a in self.arrivals if a["psnr"] is not None and a["time"] <= deadline]
        gaps = sum(1 for a, b in itertools.pairwise(times) if b - a > gap_s)
        return gaps


def prefix_psnr(rungs: Sequence[Rung], have: set[int]) -> float | None:
    """The receiver's picture (:func:`streaming.abr.picture_psnr`)."""
    return picture_psnr(rungs, have)


def simulate(
    rungs: Sequence[Rung],
    channel: ChannelConfig,
    policy: str,
    goal: Goal = Goal(),
    header_bytes: int = 0,
    feedback_delay_s: float | None = None,
    horizon_s: float = 120.0,
) -> SimResult:
    """Run one policy; ``packets`` are sized as ``rungs`` (payload bytes are irrelevant to a channel)."""
    if feedback_delay_s is None:
        feedback_delay_s = channel.delay_ms / 1000
    link = Channel(channel).session()
    res = SimResult(policy, bytes_sent=header_bytes)
    book = SenderBook(list(rungs), goal)
    events: list[tuple[float, int, str, Any]] = []  # (time, tiebreak, kind, data)
    tick = itertools.count()
    have: set[int] = set()
    highest = 0

    def send(unit: int, now: float, resend: bool = False) -> None:
        size = rungs[unit].bytes
        res.sent.append({"time": round(now, 6), "unit": unit, "bytes": size, "resend": resend})
        res.bytes_sent += size
        for d in link.send(bytes(size), now):
            heapq.heappush(events, (d.arrival_time, next(tick), "arrive", (unit_of[d.index], d)))

    unit_of: list[int] = []
    if policy == "abr":
        heapq.heappush(events, (0.0, next(tick), "decide", None))
    else:
        for u in fixed_packets(rungs, policy):
            unit_of.append(u)
            send(u, 0.0)
    wake_at = None
    for _ in range(MAX_EVENTS):
        if not events:
            break
        now, _, kind, data = heapq.heappop(events)
        if now > horizon_s:
            break
        if kind == "arrive":
            unit, d = data
            if d.corrupted or d.truncated or unit in have:
                continue  # the receiver's CRC check drops a damaged copy; a duplicate changes nothing
            have.add(unit)
            highest = max(highest, unit + 1)
            res.arrivals.append(
                {"time": round(now, 6), "unit": unit, "bytes": len(d.data), "psnr": prefix_psnr(rungs, have)}
            )
            if policy == "abr":
                lost = tuple(s for s in range(1, highest + 1) if s - 1 not in have)
                report = Report(now, (Arrival(unit + 1, len(d.data), now),), lost)
                heapq.heappush(events, (now + feedback_delay_s, next(tick), "report", report))
            continue
        if kind == "report":
            book.on_report(data, now)
        elif kind == "decide" and wake_at is not None and now < wake_at:
            continue  # superseded by an earlier decision
        while True:
            t0, c0 = time.perf_counter(), time.thread_time()
            decision = decide(book.state(now))
            res.decide_seconds.append(time.perf_counter() - t0)
            res.decide_cpu_seconds.append(time.thread_time() - c0)
            if decision.action != "send":
                break
            assert decision.unit is not None
            unit_of.append(decision.unit)
            book.record_send(decision.unit, now)
            send(decision.unit, now, decision.resend)
        if decision.action == "wait":
            wake_at = now + (decision.wait_s or 0.05)
            heapq.heappush(events, (wake_at, next(tick), "decide", None))
        else:
            wake_at = None
    return res


def fixed_packets(rungs: Sequence[Rung], policy: str) -> list[int]:
    """The packets a fixed policy sends at time 0, in packet-number order."""
    if policy == "all":
        return [p for p, r in enumerate(rungs) if not r.direct]
    name = policy.removeprefix("fixed-")
    if name == "base" or name.startswith("base+"):
        top = 0 if name == "base" else int(name.removeprefix("base+"))
        return [p for p, r in enumerate(rungs) if r.level <= top and not r.direct]
    count = int(name)
    return [p for p in range(len(rungs)) if rungs[p].level == 0][:count]


def policy_names(n_units: int, levels: int = 0) -> list[str]:
    """``all``, ``abr`` and a few fixed rungs (a quarter, half and three quarters of the packets);
    for a stream with ``levels`` refinement levels also ``fixed-base`` .. ``fixed-base+levels`` (every
    unit at level 0, up to every packet of the refined stream)."""
    fixed = sorted({max(1, round(n_units * f)) for f in (0.25, 0.5, 0.75)} - {n_units})
    refined = [f"fixed-base+{k}" if k else "fixed-base" for k in range(levels + 1)] if levels else []
    return ["all", "abr"] + [f"fixed-{k}" for k in fixed] + refined

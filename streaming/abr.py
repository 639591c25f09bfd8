"""The ABR controller: a small pure function from what the sender knows to what it sends next.

:func:`decide` takes an :class:`AbrState` (the stream's rate-quality ladder, which packets were
delivered, are in flight or were lost, the link estimate and the goal: a deadline or a byte budget)
and returns a :class:`Decision`: send (or resend) one packet, wait, or stop. It keeps no state and
does no I/O, so the server (:mod:`streaming.abr_session`), the simulator the experiment runs
(:mod:`streaming.abr_sim`) and the tests all drive the same function.

The rules, in order:

1. **Repair first.** Packets decode as a prefix (SPINR's depths; the other families need them all), so
   the next packet worth sending is the lowest one neither delivered nor in flight: a lost packet is
   resent before anything newer.
2. **Only what pays by the goal.** The target is the rung of the ladder with the best picture that
   can still arrive: by the deadline at the estimated goodput (measured on intact arrivals, after the
   bytes already in flight and the one-way delay), or within the byte budget counting the
   bytes already spent. A packet beyond the target is never sent: it could not improve the picture the
   receiver has at the deadline, so sending it would only spend bytes.
3. **Pace.** A packet leaves only while fewer than a window of bytes are in flight (twice the
   bandwidth-delay product on the path's smallest round trip, at least :data:`MIN_WINDOW`), so a slowing link does not fill a queue the sender cannot take back and a
   lost packet is noticed, and repaired, while there is still time. Before the first estimate the
   window is :data:`INITIAL_WINDOW`; a receiver that does not report at all is served open-loop
   (no window), like protocol version 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

MIN_WINDOW = 1_500
"""Bytes in flight the window never goes below; nor below two of the next packet, so the link does
not idle while a report travels, and a lost packet shows as a gap before the next one."""
INITIAL_WINDOW = 3_000
"""Bytes sent (all of them, not only in flight) before the first throughput estimate. Small, because an image stream is small: a
TCP-sized initial window (ten segments) would queue a whole stream on a slow link before the first
report, leaving nothing for the controller to decide."""
SAFETY = 1.0
"""Fraction of the estimated throughput the deadline rule plans with. The estimate counts only packets
that arrived intact, so it already is the goodput; a packet planned a little late costs only bytes."""


@dataclass(frozen=True)
class Rung:
    """One packet of the ladder: its size and the PSNR once it and all before it arrived (None: no
    picture yet)."""

    bytes: int
    psnr: float | None


@dataclass(frozen=True)
class Link:
    """What the sender believes about the link (from :class:`streaming.feedback.LinkEstimator`)."""

    throughput: float | None = None
    """Bytes per second the link delivers; None before the first estimate."""
    loss: float = 0.0
    """Fraction of packets lost, [0, 1)."""
    rtt: float | None = None
    """Smoothed round-trip time, seconds (queueing included); None before the first sample."""
    min_rtt: float | None = None
    """Smallest round trip seen: the path's own delay, without the queue."""


@dataclass(frozen=True)
class Goal:
    deadline_s: float | None = None
    """The best picture by this many seconds after the stream started."""
    byte_budget: int | None = None
    """The best picture for at most this many bytes of unit packets sent (resends included)."""


@dataclass(frozen=True)
class AbrState:
    ladder: Sequence[Rung]
    now: float
    """Seconds since the stream started."""
    delivered: frozenset[int] = frozenset()
    """Packets the receiver acknowledged."""
    in_flight: Mapping[int, float] = field(default_factory=dict)
    """Packets sent, neither acknowledged nor known lost -> when they were (last) sent."""
    lost: frozenset[int] = frozenset()
    """Packets known lost (and not resent since)."""
    bytes_sent: int = 0
    """Bytes of unit packets sent so far, resends included."""
    link: Link = Link()
    goal: Goal = Goal()
    feedback: bool = True
    """The receiver reports; False: open loop (no window, nothing is ever acknowledged)."""


@dataclass(frozen=True)
class Decision:
    action: Literal["send", "wait", "stop"]
    unit: int | None = None
    """The packet to send."""
    resend: bool = False
    """It was sent before and lost."""
    wait_s: float | None = None
    """For ``wait``: when to decide again at the latest (a report may come sooner)."""
    target: int | None = None
    """The deepest rung the controller aims for (None: none reachable)."""
    reason: str = ""


def decide(s: AbrState) -> Decision:
    """The next step for the sender; see the module docstring for the rules."""
    n = len(s.ladder)
    missing = [u for u in range(n) if u not in s.delivered and u not in s.in_flight]
    if not missing:
        if s.in_flight and s.feedback:
            return Decision("wait", wait_s=_ack_wait(s), reason="every packet is delivered or in flight")
        return Decision("stop", reason="every packet is delivered" if not s.in_flight else "all sent")
    target = _target(s)
    nxt = missing[0]
    if target is None or nxt > target:
        if s.in_flight and s.feedback and target is not None:
            return Decision("wait", wait_s=_ack_wait(s), target=target, reason="the target is in flight")
        why = "no picture beyond this one can arrive by the deadline" if s.goal.deadline_s is not None else ""
        if s.goal.byte_budget is not None and s.goal.deadline_s is None:
            why = "the byte budget buys no better picture"
        return Decision("stop", target=target, reason=why or "nothing more improves the picture")
    inflight = _in_flight_bytes(s)
    window = max(_window(s), 2 * s.ladder[nxt].bytes)  # two packets at least: a loss shows at once
    if s.feedback and s.link.throughput is None and inflight > 0 and s.bytes_sent >= INITIAL_WINDOW:
        # No rate measured yet: what went out is the probe; more waits for its reports. Once all of it
        # is acknowledged (a link too fast for arrivals to give a rate) another probe goes.
        return Decision("wait", wait_s=_ack_wait(s), target=target, reason="waiting for a first estimate")
    if inflight >= window:
        return Decision(
            "wait", wait_s=_ack_wait(s), target=target, reason=f"window of {window:.0f} bytes is full"
        )
    return Decision(
        "send", nxt, resend=nxt in s.lost, target=target, reason="next packet of the target prefix"
    )


def _in_flight_bytes(s: AbrState) -> int:
    return sum(s.ladder[u].bytes for u in s.in_flight)


def _window(s: AbrState) -> float:
    if not s.feedback:
        return math.inf
    if s.link.throughput is None:
        return INITIAL_WINDOW
    # The path's delay, not the smoothed RTT: that one includes the queue the window itself builds,
    # and a window sized on it would grow the queue without end (bufferbloat).
    rtt = s.link.min_rtt if s.link.min_rtt is not None else 0.1
    return max(MIN_WINDOW, 2.0 * s.link.throughput * rtt)


def _ack_wait(s: AbrState) -> float:
    """How long to wait for feedback at most before deciding again."""
    rtt = s.link.rtt if s.link.rtt is not None else 0.1
    return min(max(rtt / 2, 0.01), 0.25)


def _target(s: AbrState) -> int | None:
    """The rung with the best picture that can still be delivered within the goal (None if none): the
    deepest one unless a deeper one measured worse (quantization can cost a last stage a little, and
    the receiver shows the deepest prefix it holds)."""
    best, best_psnr = None, -math.inf
    goodput = None
    if s.link.throughput is not None:
        goodput = SAFETY * s.link.throughput
    owd = (s.link.min_rtt or 0.0) / 2  # the queue is counted by the bytes in flight
    queued = _in_flight_bytes(s)
    need = 0  # bytes still to send (missing packets up to the rung)
    for r, rung in enumerate(s.ladder):
        if r not in s.delivered and r not in s.in_flight:
            need += rung.bytes
        if rung.psnr is None:
            continue
        if s.goal.byte_budget is not None and s.bytes_sent + need > s.goal.byte_budget:
            break
        if s.goal.deadline_s is not None and goodput is not None:
            arrive = s.now + (queued + need) / goodput + owd
            if arrive > s.goal.deadline_s:
                break
        if s.goal.deadline_s is not None and s.now >= s.goal.deadline_s:
            break
        if rung.psnr >= best_psnr:
            best, best_psnr = r, rung.psnr
    return best

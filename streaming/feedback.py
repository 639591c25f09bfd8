"""Receiver feedback (WebSocket protocol version 2) and what a sender learns from it.

- :class:`Report`: the receiver's small text message, ``{"type": "report", "at": ms, "arrived":
  [[seq, bytes, ms], ...], "lost": [seq, ...]}``, parsed with bounds and errors that name the bad field.
- :class:`LinkEstimator`: throughput (from the receiver's own arrival times, so no clock is shared),
  round-trip time (send time to report, minus how long the receiver held the news) and loss rate.
- :class:`Reporter` and :func:`receive_reporting`: the receiver's side, batching arrivals into reports
  and sending them when due while it reads the stream (the CLI, the pull client and the tests use it).
- :class:`SenderBook`: which packet is delivered, in flight or lost, and the :class:`~streaming.abr.AbrState`
  the controller decides on. A packet counts as lost when the receiver reports it missing after a
  packet sent later arrived, or when it has been in flight far longer than a round trip.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from codec.errors import SpinrError
from streaming.abr import AbrState, Goal, Link, Rung
from streaming.session import SessionError, load_message

MAX_REPORT_BYTES = 4096
"""A report is at most this many bytes of UTF-8 (a few dozen arrivals fit)."""
MAX_ARRIVALS = 64
MAX_LOST = 256
TIMEOUT_S = 2.0
"""Least time without any acknowledgement before copies in flight are given up (a fallback: losses
normally show as gaps; a slow link may take a second per packet, and a resend in vain costs bytes)."""
MIN_SPAN_S = 0.05
"""Arrivals closer together than this say nothing of the rate (a link's burst delivers them at once)."""
MAX_HELD_ARRIVALS = 4096
"""Arrivals the estimator keeps at most (more within MIN_SPAN_S only shorten the stretch measured)."""
MAX_MS = 1e9
"""Receiver timestamps are milliseconds since it started, below this (11 days)."""


class FeedbackError(SpinrError, ValueError):
    """A receiver's message is malformed; the message names the field and what is allowed."""


@dataclass(frozen=True)
class Arrival:
    seq: int
    bytes: int
    t: float
    """Receiver's clock, seconds."""


@dataclass(frozen=True)
class Report:
    at: float
    """When the receiver sent the report, its clock, seconds."""
    arrived: tuple[Arrival, ...] = ()
    lost: tuple[int, ...] = ()

    def to_message(self) -> str:
        return json.dumps(
            {
                "type": "report",
                "at": round(self.at * 1000, 3),
                "arrived": [[a.seq, a.bytes, round(a.t * 1000, 3)] for a in self.arrived],
                "lost": list(self.lost),
            },
            separators=(",", ":"),
        )


def _ms(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= MAX_MS:
        raise FeedbackError(f"report {name} must be milliseconds in 0..{MAX_MS:g}, got {v!r:.40}")
    return float(v) / 1000


def _int(name: str, v: Any, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
        raise FeedbackError(f"report {name} must be an integer in 0..{hi}, got {v!r:.40}")
    return v


def parse_report(text: str | bytes, max_seq: int) -> Report:
    """A report message -> :class:`Report`; ``max_seq`` is the stream's last sequence number."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > MAX_REPORT_BYTES:
        raise FeedbackError(f"report of {size} bytes; at most {MAX_REPORT_BYTES}")
    try:
        msg = load_message(text if isinstance(text, str) else text.decode("utf-8", "replace"), "report")
    except SessionError as exc:
        raise FeedbackError(str(exc)) from None
    if not isinstance(msg, dict) or msg.get("type") != "report":
        got = msg.get("type") if isinstance(msg, dict) else type(msg).__name__
        raise FeedbackError(f"unknown message type {got!r:.40}; expected 'report'")
    unknown = sorted(set(msg) - {"type", "at", "arrived", "lost"})
    if unknown:
        raise FeedbackError(
            f"unknown field(s) {', '.join(unknown)[:60]} in report; allowed: at, arrived, lost"
        )
    at = _ms("at", msg.get("at"))
    arrived_raw, lost_raw = msg.get("arrived", []), msg.get("lost", [])
    if not isinstance(arrived_raw, list) or len(arrived_raw) > MAX_ARRIVALS:
        raise FeedbackError(
            f"report arrived must be a list of at most {MAX_ARRIVALS} [seq, bytes, ms] triples"
        )
    if not isinstance(lost_raw, list) or len(lost_raw) > MAX_LOST:
        raise FeedbackError(f"report lost must be a list of at most {MAX_LOST} sequence numbers")
    arrived = []
    for i, a in enumerate(arrived_raw):
        if not isinstance(a, list) or len(a) != 3:
            raise FeedbackError(f"report arrived[{i}] must be [seq, bytes, ms], got {a!r:.40}")
        t = _ms(f"arrived[{i}] time", a[2])
        if t > at:
            raise FeedbackError(f"report arrived[{i}] time {a[2]} ms is after the report's at {msg['at']} ms")
        arrived.append(
            Arrival(_int(f"arrived[{i}] seq", a[0], max_seq), _int(f"arrived[{i}] bytes", a[1], 1 << 30), t)
        )
    lost = tuple(_int(f"lost[{i}]", s, max_seq) for i, s in enumerate(lost_raw))
    return Report(at, tuple(arrived), lost)


class LinkEstimator:
    """Throughput from the receiver's arrival times, a smoothed round-trip time (RFC 6298's 1/8 gain),
    the smallest round trip, and an exponentially weighted loss rate.

    Each arrival gives a rate sample: the bytes that arrived over the last stretch of at least
    :data:`MIN_SPAN_S`. A stretch that includes an idle link (the sender waiting, a lost packet) gives
    a low sample, a stretch of back-to-back packets the link's rate, so the estimate is the largest
    sample of the last ``window_s`` seconds (the latest one if none is that recent): it follows a
    falling link within ``window_s``, and gaps do not drag it down."""

    def __init__(self, window_s: float = 0.5, loss_gain: float = 0.1) -> None:
        self.window_s = window_s
        self.loss_gain = loss_gain
        # Both bounded: a hostile receiver's reports cost the sender a fixed amount of memory and CPU.
        self._arrivals: deque[tuple[float, int]] = deque()
        self._inside = 0  # bytes of every arrival after the first one held
        self._samples: deque[tuple[float, float]] = deque(maxlen=64)
        self.throughput: float | None = None
        self.rtt: float | None = None
        self.min_rtt: float | None = None
        self.loss = 0.0

    def on_arrival(self, t: float, nbytes: int) -> None:
        a = self._arrivals
        if a:
            self._inside += nbytes
        a.append((t, nbytes))
        # Keep the shortest stretch of at least MIN_SPAN_S that ends now (amortised O(1) per arrival).
        while len(a) > 2 and (t - a[1][0] >= MIN_SPAN_S or len(a) > MAX_HELD_ARRIVALS):
            a.popleft()
            self._inside -= a[0][1]
        span = t - a[0][0]
        if len(a) >= 2 and span >= MIN_SPAN_S:
            self._samples.append((t, self._inside / span))
        while len(self._samples) > 1 and t - self._samples[0][0] > self.window_s:
            self._samples.popleft()
        if self._samples:
            self.throughput = max(r for _, r in self._samples)

    def on_rtt(self, sample: float) -> None:
        sample = max(sample, 0.0)
        self.min_rtt = sample if self.min_rtt is None else min(self.min_rtt, sample)
        self.rtt = sample if self.rtt is None else 0.875 * self.rtt + 0.125 * sample

    def on_outcome(self, lost: bool) -> None:
        self.loss += self.loss_gain * (float(lost) - self.loss)

    def link(self) -> Link:
        return Link(self.throughput, self.loss, self.rtt, self.min_rtt)


@dataclass
class _Copy:
    sent: float
    order: int


@dataclass
class SenderBook:
    """The sender's ledger of one stream's packets by number (seq ``i + 1``; unit ``i`` without
    refinements, ``level * units + unit`` with them: codec/refine.py)."""

    ladder: Sequence[Rung]
    goal: Goal = Goal()
    estimator: LinkEstimator = field(default_factory=LinkEstimator)
    delivered: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)
    in_flight: dict[int, _Copy] = field(default_factory=dict)
    bytes_sent: int = 0
    sends: int = 0
    reports: int = 0
    feedback: bool = True
    last_ack: float = 0.0
    """When the last report that acknowledged something arrived (sender's clock)."""

    def state(self, now: float) -> AbrState:
        self._timeouts(now)
        return AbrState(
            self.ladder,
            now,
            frozenset(self.delivered),
            {u: c.sent for u, c in self.in_flight.items()},
            frozenset(self.lost),
            self.bytes_sent,
            self.estimator.link(),
            self.goal,
            self.feedback,
        )

    def record_send(self, unit: int, now: float) -> None:
        self.in_flight[unit] = _Copy(now, self.sends)
        self.lost.discard(unit)
        self.sends += 1
        self.bytes_sent += self.ladder[unit].bytes

    def on_report(self, report: Report, now: float) -> None:
        """Take a receiver report that reached the sender at ``now`` (sender's clock)."""
        self.reports += 1
        newest = -1
        for a in sorted(report.arrived, key=lambda a: a.t):
            self.estimator.on_arrival(a.t, a.bytes)
            unit = a.seq - 1
            if unit < 0 or unit >= len(self.ladder):
                continue  # the header (seq 0) is sent reliably and not tracked
            copy = self.in_flight.pop(unit, None)
            if copy is not None:
                self.estimator.on_rtt(now - copy.sent - (report.at - a.t))
                self.estimator.on_outcome(False)
                newest = max(newest, copy.order)
            elif unit in self.lost:  # a copy we had given up on arrived after all
                self.lost.discard(unit)
            self.delivered.add(unit)
        if newest >= 0:
            self.last_ack = now
        for seq in report.lost:
            unit = seq - 1
            copy = self.in_flight.get(unit)
            if copy is not None and copy.order < newest:  # a later packet made it: this copy is gone
                self._lose(unit)

    def _lose(self, unit: int) -> None:
        del self.in_flight[unit]
        self.lost.add(unit)
        self.estimator.on_outcome(True)

    def _timeouts(self, now: float) -> None:
        """Give up on copies when nothing at all was acknowledged for a while since they left: while
        acknowledgements keep coming, a copy still in flight is queued, not lost (FIFO link)."""
        if not self.feedback:
            return
        rtt = self.estimator.rtt
        limit = max(TIMEOUT_S, 3 * rtt) if rtt is not None else TIMEOUT_S
        for unit, copy in list(self.in_flight.items()):
            if now - max(copy.sent, self.last_ack) > limit:
                self._lose(unit)


def stream_rungs(bs: Any) -> list[Rung]:
    """The controller's ladder for a whole bitstream (with refinements: every packet by number, then
    the direct packets, :func:`codec.refined.direct_packets`): its packets' sizes as sent, the PSNRs of its
    rate-quality ladder, or, for a stream without one (format 1, early format 2), the header's stage
    PSNRs placed where each depth becomes decodable (rank order when even those are missing)."""
    from codec.arch import decoder_for
    from codec.ladder import measure

    sizes = [len(p.to_bytes()) for p in bs.packets()[1:]]
    if bs.missing():
        raise ValueError(f"stream lacks units {bs.missing()}: a sender needs all of them")
    ladder = bs.header.ladder
    if ladder is not None and len(ladder.rungs) == len(sizes):
        rungs = [Rung(b, r.psnr, r.level) for b, r in zip(sizes, ladder.rungs, strict=True)]
        if bs.levels:  # the direct packets a sender may choose instead of base and refinements
            from codec.refined import direct_packets

            top = rungs[bs.levels * bs.header.num_units :]
            rungs += [
                Rung(len(p.to_bytes()), r.psnr, r.level, True)
                for p, r in zip(direct_packets(bs), top, strict=True)
            ]
        return rungs
    if bs.refinements:
        raise ValueError("stream has refinement packets its ladder does not list: a sender cannot plan them")
    arch = decoder_for(bs.header.model, bs.header.arch)
    depths = arch.depths if arch.progressive else 1
    stage = list(bs.header.stage_psnr)
    if len(stage) != depths:
        stage = [float(d) for d in range(depths)]
    return [Rung(b, r.psnr) for b, r in zip(sizes, measure(arch.plan, stage, sizes).rungs, strict=True)]


class Reporter:
    """A version-2 receiver's reports: arrivals batched at most every ``interval`` s, with the sequence
    numbers still missing below the highest one seen."""

    def __init__(self, interval: float = 0.025) -> None:
        self.clock = time.monotonic
        self.start = self.clock()
        self.interval = interval
        self.pending: list[Arrival] = []
        self.seen: set[int] = set()
        self.last = -1.0

    def arrived(self, data: bytes) -> None:
        from codec.errors import BitstreamError
        from codec.packets import Packet

        try:
            seq = Packet.peek(data).seq
        except BitstreamError:
            return  # a damaged packet header: nothing to report (the sender notices the gap)
        self.seen.add(seq)
        self.pending.append(Arrival(seq, len(data), self.clock() - self.start))

    def due(self) -> float | None:
        """Seconds until the next report should go (None: nothing to report)."""
        if not self.pending:
            return None
        return max(0.0, self.last + self.interval - (self.clock() - self.start))

    def report(self) -> str:
        now = self.clock() - self.start
        batch, self.pending = self.pending[:MAX_ARRIVALS], self.pending[MAX_ARRIVALS:]
        top = max(self.seen, default=0)
        lost = tuple(s for s in range(1, top) if s not in self.seen)[:MAX_LOST]
        self.last = now
        return Report(now, tuple(batch), lost).to_message()


def _is_done(text: str) -> bool:
    try:
        msg = load_message(text, "server's text message")
    except SessionError:
        return False
    return isinstance(msg, dict) and msg.get("type") == "done"


async def receive_reporting(ws: Any, reporter: Reporter | None) -> AsyncIterator[bytes | str]:
    """Every message of a WebSocket stream until the server closes it normally, sending ``reporter``'s
    reports (None: a version-1 receiver, no reports) whenever they are due while waiting. The reporter
    sees every binary message; the server's ``done`` message ends the reports (it closes next). A
    close other than a normal one raises ``ConnectionClosed`` for the caller to judge."""
    from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

    while True:
        wait = reporter.due() if reporter is not None else None
        try:
            message = await (asyncio.wait_for(ws.recv(), wait) if wait is not None else ws.recv())
        except asyncio.TimeoutError:
            assert reporter is not None
            try:
                await ws.send(reporter.report())
            except ConnectionClosed:  # the server finished: read what it sent before closing
                reporter = None
            continue
        except ConnectionClosedOK:
            return
        if isinstance(message, bytes):
            if reporter is not None:
                reporter.arrived(message)
        elif reporter is not None and _is_done(message):
            reporter = None
        yield message

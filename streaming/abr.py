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
Streams with precision refinements (:mod:`codec.refine`) are planned on the depth x precision grid
their ladder describes: a grid point (d, L) is units 0..d-1 at level L, and its PSNR is the ladder's.
The target is the best point that can arrive by the goal; the way there is walked greedily from the
empty picture, at each point taking the move, a **new layer** (d + 1, L) or a **refinement** (d, L + 1),
that buys the most dB per byte still to send; the next packet is the first one of that move that is
neither delivered nor in flight (so a lost packet of the way is repaired first). **Nothing** is sent
when the target is delivered or in flight. A stream without refinements is the grid's one row: the
rules above, unchanged.

3. **Pace.** A packet leaves only while fewer than a window of bytes are in flight (twice the
   bandwidth-delay product on the path's smallest round trip, at least :data:`MIN_WINDOW`), so a slowing link does not fill a queue the sender cannot take back and a
   lost packet is noticed, and repaired, while there is still time. Before the first estimate the
   window is :data:`INITIAL_WINDOW`; a receiver that does not report at all is served open-loop
   (no window), like protocol version 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Set
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
    picture yet). A ladder lists packets by number (level 0 of every unit, then level 1, ...); for a
    refinement level the PSNR is that of units 0..unit all at that level (a grid point)."""

    bytes: int
    psnr: float | None
    level: int = 0
    """Refinement level the packet carries (0: a unit packet)."""
    direct: bool = False
    """A direct packet: the unit whole at ``level`` (listed after every regular packet)."""


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
    """The packet to send, by number (``level * units + unit``; the unit itself without refinements)."""
    resend: bool = False
    """It was sent before and lost."""
    level: int = 0
    """Refinement level of the packet to send (0: a unit packet)."""
    wait_s: float | None = None
    """For ``wait``: when to decide again at the latest (a report may come sooner)."""
    target: int | None = None
    """The packet whose grid point the controller aims for (the deepest rung without refinements;
    None: none reachable)."""
    reason: str = ""


def decide(s: AbrState) -> Decision:
    """The next step for the sender; see the module docstring for the rules."""
    grid = _Grid(s)
    if not grid.missing_any():
        if s.in_flight and s.feedback:
            return Decision("wait", wait_s=_ack_wait(s), reason="every packet is delivered or in flight")
        return Decision("stop", reason="every packet is delivered" if not s.in_flight else "all sent")
    point = _target(s, grid)
    target = None if point is None else grid.packet(point[0] - 1, point[1])
    nxt, move = (None, "") if point is None else grid.next_packet(point)
    if point is None or nxt is None:
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
    reason = "next packet of the target prefix" if grid.levels == 0 else f"next packet of the target ({move})"
    return Decision(
        "send", nxt, resend=nxt in s.lost, target=target, reason=reason, level=s.ladder[nxt].level
    )


class _Grid:
    """The ladder as a depth x precision grid: packet ``level * units + unit``, and after the last
    level (when the sender has them) the direct packets ``(levels + 1) * units + unit``."""

    def __init__(self, s: AbrState) -> None:
        self.s = s
        self.levels = max((r.level for r in s.ladder if not r.direct), default=0)
        regular = sum(1 for r in s.ladder if not r.direct)
        self.units = regular // (self.levels + 1)
        self.has_direct = len(s.ladder) > regular
        self.have = s.delivered | s.in_flight.keys()
        self._cost: dict[tuple[int, int], tuple[int, int | None]] = {}
        # Per unit and level: bytes of its base and refinements up to the level still to send, and the
        # first of them (one pass over the packets; everything else is a lookup).
        self._regular: list[list[tuple[int, int | None]]] = []
        ladder, n, have = s.ladder, self.units, self.have
        for u in range(n):
            cost, first, row = 0, None, []
            for k in range(self.levels + 1):
                p = k * n + u
                if p not in have:
                    cost += ladder[p].bytes
                    first = p if first is None else first
                row.append((cost, first))
            self._regular.append(row)
        self._prefix: dict[int, tuple[list[int], list[int | None]]] = {}

    def packet(self, unit: int, level: int) -> int:
        return level * self.units + unit

    def psnr(self, depth: int, level: int) -> float | None:
        return None if depth == 0 else self.s.ladder[self.packet(depth - 1, level)].psnr

    def missing_any(self) -> bool:
        """Whether some unit is not yet delivered or in flight at the top level."""
        return any(self.unit_cost(u, self.levels)[0] for u in range(self.units))

    def unit_cost(self, unit: int, level: int) -> tuple[int, int | None]:
        """Bytes still to send for ``unit`` to reach ``level`` and the first packet to send: its base
        and refinements in order, or its direct packet when that is cheaper (0, None: it has it)."""
        key = (unit, level)
        got = self._cost.get(key)
        if got is None:
            cost, first = self._regular[unit][level]
            if self.has_direct and cost:
                d = (self.levels + 1) * self.units + unit
                if d in self.have:
                    cost, first = 0, None
                elif self.s.ladder[d].bytes < cost:
                    cost, first = self.s.ladder[d].bytes, d
            got = self._cost[key] = (cost, first)
        return got

    def _move(self, units: range, level: int) -> tuple[int, int | None]:
        """Bytes for ``units`` (a prefix or one unit) to reach ``level``, and the first packet."""
        if len(units) == 1:
            return self.unit_cost(units[0], level)
        if level not in self._prefix:  # running sums over the units, so each move costs O(1)
            sums: list[int] = [0]
            firsts: list[int | None] = [None]
            total, first = 0, None
            for u in range(self.units):
                c, f = self.unit_cost(u, level)
                total += c
                first = f if first is None else first
                sums.append(total)
                firsts.append(first)
            self._prefix[level] = (sums, firsts)
        run, runs = self._prefix[level]
        return run[units.stop] - run[units.start], runs[units.stop] if units.start == 0 else None

    def next_packet(self, target: tuple[int, int]) -> tuple[int | None, str]:
        """The first packet not yet delivered or in flight on the way to ``target``: unit by unit when
        direct packets make that way cheaper, else the greedy walk over the grid."""
        units = range(target[0])
        cheapest = sum(self.unit_cost(u, target[1])[0] for u in units)
        regular = sum(self._regular[u][target[1]][0] for u in units)
        if cheapest < regular:
            for u in units:
                cost, first = self.unit_cost(u, target[1])
                if cost:
                    return first, "new layer, whole" if first is not None and self.s.ladder[
                        first
                    ].direct else "new layer"
        depth, level = 0, 0
        while (depth, level) != target:
            moves = []
            if depth < target[0]:
                moves.append(("new layer", (depth + 1, level), *self._move(range(depth, depth + 1), level)))
            if level < target[1] and depth > 0:
                moves.append(("refinement", (depth, level + 1), *self._move(range(depth), level + 1)))
            here = self.psnr(depth, level) or 0.0
            best = None
            for name, point, cost, first in moves:
                if cost == 0:  # delivered or in flight already: take it
                    best = (math.inf, name, point, first)
                    break
                gain = (self.psnr(*point) or 0.0) - here
                if best is None or gain / cost > best[0]:
                    best = (gain / cost, name, point, first)
            assert best is not None
            _, name, point, first = best
            if first is not None:
                return first, name
            depth, level = point
        return None, ""


def picture_psnr(ladder: Sequence[Rung], have: Set[int]) -> float | None:
    """The PSNR a receiver holding packets ``have`` shows, as the ladder knows it: the best grid point
    (units 0..d-1 all at level L or finer) it holds whole, the deepest picture along each level (None:
    no picture). A mixed state (some units refined further) is counted at that point: a lower bound."""
    regular = [r for r in ladder if not r.direct]
    levels = max((r.level for r in regular), default=0)
    n = len(regular) // (levels + 1)
    direct = len(ladder) > len(regular)
    best = None
    for level in range(levels + 1):
        at = None
        for u in range(n):
            whole = all(k * n + u in have for k in range(level + 1))
            if not whole and not (direct and (levels + 1) * n + u in have):
                break
            if ladder[level * n + u].psnr is not None:
                at = ladder[level * n + u].psnr
        if at is not None and (best is None or at > best):
            best = at
    return best


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


def _target(s: AbrState, grid: _Grid) -> tuple[int, int] | None:
    """The grid point (depth, level) with the best picture that can still be delivered within the
    goal (None if none): along each level the deepest one unless a deeper one measured worse
    (quantization can cost a last stage a little, and the receiver shows the deepest prefix it holds),
    and on a tie the finer level."""
    best, best_psnr = None, -math.inf
    goodput = None
    if s.link.throughput is not None:
        goodput = SAFETY * s.link.throughput
    owd = (s.link.min_rtt or 0.0) / 2  # the queue is counted by the bytes in flight
    queued = _in_flight_bytes(s)
    for level in range(grid.levels + 1):
        need = 0  # bytes still to send for units 0..d-1 at this level
        for d in range(1, grid.units + 1):
            need += grid.unit_cost(d - 1, level)[0]
            psnr = grid.psnr(d, level)
            if psnr is None:
                continue
            if s.goal.byte_budget is not None and s.bytes_sent + need > s.goal.byte_budget:
                break
            if s.goal.deadline_s is not None and goodput is not None:
                arrive = s.now + (queued + need) / goodput + owd
                if arrive > s.goal.deadline_s:
                    break
            if s.goal.deadline_s is not None and s.now >= s.goal.deadline_s:
                break
            if psnr >= best_psnr:
                best, best_psnr = (d, level), psnr
    return best

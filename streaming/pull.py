"""Client-driven (pull) streaming: the receiver runs the ABR controller and asks for packets.

Like a DASH client, the receiver first fetches the stream's packet index (every packet's number,
unit, level, size and the PSNR the ladder promises; docs/API.md "Pull mode") and the header packet,
then asks for one packet at a time, choosing with the same pure controller a server uses
(:func:`streaming.abr.decide`): each request is a send, each response an arrival whose bytes and
time feed the link estimator. So the client decides refinement vs new layer vs nothing itself, for
its own deadline or byte budget, over any plain HTTP server that serves ``GET .../packets/{seq}``.

:func:`packet_index` builds the index a server publishes; :class:`PullPlanner` is the client's loop
without I/O (the CLI's ``spinr stream --pull`` and the tests drive it with real HTTP).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streaming.abr import Decision, Goal, Rung, decide, picture_psnr
from streaming.feedback import Arrival, Report, SenderBook

MAX_PULLS_FACTOR = 4
"""A pull client never asks for more than this many times the stream's packets (resends included)."""


def packet_index(bs: Any) -> dict[str, Any]:
    """The JSON a server publishes for pull clients: the header packet's size and, for every packet a
    client may ask for (by sequence number), its unit, level, whether it is direct, its bytes, the
    PSNR of its grid point and its offset in the ``.spnr`` file (None for a direct packet, which files
    do not hold)."""
    from streaming.feedback import stream_rungs

    packets = bs.packets()
    rungs = stream_rungs(bs)
    n = bs.header.num_units
    levels = bs.levels
    offset = len(packets[0].to_bytes())
    rows = []
    for i, r in enumerate(rungs):
        rows.append(
            {
                "seq": i + 1,
                "unit": i % n,
                "level": r.level,
                "direct": r.direct,
                "bytes": r.bytes,
                "psnr": None if r.psnr is None else (r.psnr if math.isfinite(r.psnr) else "inf"),
                "offset": None if r.direct else offset,
            }
        )
        if not r.direct:
            offset += r.bytes
    return {
        "stream_id": bs.stream_id,
        "header_bytes": len(packets[0].to_bytes()),
        "units": n,
        "levels": levels,
        "file_bytes": offset,
        "packets": rows,
    }


def rungs_of_index(index: dict[str, Any]) -> list[Rung]:
    """The controller's ladder from a packet index (checked: numbered 1.. in order)."""
    rows = index.get("packets")
    if not isinstance(rows, list) or not rows:
        raise ValueError("packet index has no packets")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or row.get("seq") != i + 1:
            raise ValueError(f"packet index row {i} is not packet seq {i + 1}")
        psnr = row.get("psnr")
        value = math.inf if psnr == "inf" else (None if psnr is None else float(psnr))
        bytes_ = row.get("bytes")
        if isinstance(bytes_, bool) or not isinstance(bytes_, int) or not 0 < bytes_ <= 1 << 30:
            raise ValueError(f"packet index row {i} has bytes {bytes_!r:.30}")
        out.append(Rung(bytes_, value, int(row.get("level", 0)), bool(row.get("direct", False))))
    return out


@dataclass
class PullPlanner:
    """The pull client's controller loop: ask :meth:`next` for a packet number (or None: done),
    report each response with :meth:`arrived` (or :meth:`failed`)."""

    rungs: list[Rung]
    goal: Goal = Goal()
    clock: Callable[[], float] = time.monotonic
    book: SenderBook = field(init=False)
    start: float = field(init=False)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    last: Decision | None = None

    def __post_init__(self) -> None:
        self.book = SenderBook(self.rungs, self.goal)
        self.start = self.clock()

    def now(self) -> float:
        return self.clock() - self.start

    def next(self) -> int | None:
        """The next packet to pull (its number; seq is one more), or None when nothing more pays."""
        if len(self.pulls) >= MAX_PULLS_FACTOR * len(self.rungs):
            return None
        d = decide(self.book.state(self.now()))
        self.last = d
        if d.action != "send":  # one request at a time: nothing is in flight, so this is a stop
            return None
        assert d.unit is not None
        self.book.record_send(d.unit, self.now())
        self.pulls.append(
            {"time": round(self.now(), 4), "packet": d.unit, "level": d.level, "resend": d.resend}
        )
        return d.unit

    def arrived(self, packet: int, nbytes: int) -> None:
        t = self.now()
        self.book.on_report(Report(t, (Arrival(packet + 1, nbytes, t),), ()), t)
        self.pulls[-1].update(bytes=nbytes, arrived=round(t, 4))

    def failed(self, packet: int) -> None:
        """The request failed (timeout, error): the packet counts as lost and may be asked again."""
        if packet in self.book.in_flight:
            self.book._lose(packet)
        self.pulls[-1].update(failed=True)

    def psnr(self) -> float | None:
        """What the ladder promises for the packets pulled so far."""
        return picture_psnr(self.rungs, self.book.delivered)

"""Client side of a stream: packets in, a picture after each, and a per-packet timeline.

Transport-free: whoever reads the socket calls :meth:`Receiver.feed` with each binary message. The
receiver survives reconnects (its :attr:`have` is what a resumed stream asks not to be sent again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from codec.decoder import Decoded, ProgressiveDecoder
from codec.errors import ImageError
from codec.metrics import psnr


@dataclass
class TimelineEntry:
    """What one received message changed."""

    unit: int | None
    """Unit index of the layer packet; None for the header; None too for a rejected packet."""
    arrival: float
    """Seconds since the receiver started."""
    bytes: int
    """Bytes received so far, this message included (rejected ones too: they crossed the link)."""
    accepted: bool
    error: str | None
    layers: int
    """Prefix stages decodable now (0 until the indispensable units are in)."""
    units_used: list[int]
    psnr: float | None
    """PSNR (dB) of the current picture against the reference, when one was given."""
    new_picture: bool
    """The decodable picture changed with this message."""
    new_unit: bool = False
    """This message brought a unit the receiver did not hold (not a duplicate, not rejected)."""
    size: int = 0
    """Bytes of this message."""
    kind: str = ""
    """``header``, ``unit`` (a new one), ``refinement`` (a unit got finer), ``duplicate``, ``pending``
    (before the header) or ``rejected``."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["psnr"] is not None:
            out["psnr"] = round(out["psnr"], 4)
        out["arrival"] = round(out["arrival"], 4)
        return out


class Receiver:
    def __init__(
        self,
        reference: np.ndarray | None = None,
        clock: Callable[[], float] = time.monotonic,
        conceal: str = "prefix",
    ) -> None:
        self.decoder = ProgressiveDecoder(conceal=conceal)
        self.reference = reference
        self.clock = clock
        self.start = clock()
        self.bytes = 0
        self.timeline: list[TimelineEntry] = []
        self.rejected = 0
        self._picture: Decoded | None = None

    # -- state ----------------------------------------------------------------------------------
    @property
    def header(self) -> Any:
        return self.decoder.header

    @property
    def num_units(self) -> int:
        return self.decoder.header.num_units if self.decoder.header is not None else 0

    @property
    def have(self) -> set[int]:
        """Units held, valid and parsed: what a resumed stream need not send again."""
        return self.decoder.available

    def missing(self) -> list[int]:
        return sorted(set(range(self.num_units)) - self.have)

    @property
    def layers(self) -> int:
        return 0 if self._picture is None else self._picture.depth

    @property
    def complete(self) -> bool:
        return self.decoder.header is not None and not self.missing()

    def picture(self, size: tuple[int, int] | None = None) -> Decoded | None:
        """The best picture from what arrived (at ``size``, default the encoded size), or None."""
        if size is None:
            return self._picture
        if self.decoder.plan() is None:
            return None
        return self.decoder.decode(size=size)

    # -- input ----------------------------------------------------------------------------------
    def feed(self, data: bytes) -> TimelineEntry:
        self.bytes += len(data)
        before = set(self.decoder.available), self.decoder.header is not None
        levels = dict(self.decoder.levels)
        status = self.decoder.add_packet(data)
        refined = self.decoder.levels != levels and status.kind == "refinement"
        if not status.accepted:
            self.rejected += 1
        if status.kind == "header" and self.reference is not None and not before[1]:
            self._check_reference()
        changed = status.accepted and (set(self.decoder.available) != before[0] or not before[1] or refined)
        new_picture = False
        if changed and self.decoder.header is not None and self.decoder.plan() is not None:
            used = self.decoder.used_units()
            if self._picture is None or used != self._picture.units or refined:
                self._picture = self.decoder.decode()
                new_picture = True
        pic = self._picture
        entry = TimelineEntry(
            unit=status.layer if status.accepted and status.kind != "header" else None,
            arrival=self.clock() - self.start,
            bytes=self.bytes,
            accepted=status.accepted,
            error=status.error,
            layers=self.layers,
            units_used=list(pic.units) if pic is not None else [],
            psnr=psnr(pic.rgb, self.reference) if pic is not None and self.reference is not None else None,
            new_picture=new_picture,
            new_unit=bool(self.decoder.available - before[0]),
            size=len(data),
            kind="refinement"
            if refined
            else _kind(status, bool(self.decoder.available - before[0]), self.decoder.header is None),
        )
        self.timeline.append(entry)
        return entry

    def _check_reference(self) -> None:
        assert self.reference is not None and self.decoder.header is not None
        h, w = self.reference.shape[:2]
        hdr = self.decoder.header
        if (w, h) != (hdr.width, hdr.height):
            raise ImageError(f"reference image is {w}x{h} but the stream encodes {hdr.width}x{hdr.height}")


def _kind(status: Any, new_unit: bool, no_header: bool) -> str:
    if not status.accepted:
        return "rejected"
    if status.kind == "header":
        return "header"
    if no_header:
        return "pending"  # a unit before its header: held until the header comes
    return "unit" if new_unit else "duplicate"

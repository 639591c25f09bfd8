"""The rate-quality ladder: header extension 0x02 (docs/FORMAT.md, "Rate-quality ladder").

For the packet order that matters (version 1: the unit packets in index order, which is how every
stream is sent), the ladder says what each packet costs on the wire and the PSNR of the picture once
it and every packet before it have arrived, as the encoder measured after quantization. A sender (the
ABR controller, :mod:`streaming.abr`) then knows the quality each next packet buys without decoding;
a client can pull byte ranges of a ``.spnr`` file (the header's length plus the packet sizes give
every offset). For SPINR every depth is a rung with a picture; for the other families only the full
set of units makes a picture.

Layout (all inside the extension's bytes)::

    version u8 (1) | count varint (= the header's units) | per packet: varint (bytes * 2 + picture) [PSNR u16]

The PSNR follows only when the low bit says the packets so far make a picture (a SIREN's first packets
cost one byte or two each, not four). PSNRs are in 1/100 dB as the header's stage PSNRs are (0xffff:
exact picture). The demo's SPINR 64 x 16 (17 packets) spends 70 bytes on its ladder.

A stream with precision refinements (:mod:`codec.refine`) writes version 2, which covers every packet
in packet-number order (level 0 of every unit, then level 1 of every unit, ...)::

    version u8 (2) | levels varint (1..15) | count varint (= units) | (levels + 1) * count entries as above

where the entry of unit ``u`` at level ``l`` gives that packet's size and the PSNR of the picture made
of units ``0..u``, all at level ``l`` (a point of the depth x precision grid the controller plans on,
:mod:`streaming.abr`). A stream without refinements writes version 1, byte for byte as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from codec.errors import BitstreamError, ConfigError
from codec.varint import Reader, uvarint

LADDER_VERSION = 1
REFINED_VERSION = 2
"""The layout that also lists refinement packets."""
MAX_LEVELS = 15
MAX_PACKET_BYTES = 1 << 30
_PSNR_SCALE = 100
_PSNR_INF = 0xFFFF


@dataclass(frozen=True)
class Rung:
    """One packet of the ladder's order."""

    unit: int
    """The unit the packet carries."""
    bytes: int
    """Its size on the wire (packet header, payload, CRC)."""
    psnr: float | None
    """PSNR (dB) once it and every packet before it arrived; None: no picture yet; inf: exact.
    For a refinement level: the picture of units 0..unit all at this level."""
    level: int = 0
    """Refinement level the packet carries (0: the unit packet)."""


@dataclass(frozen=True)
class Ladder:
    rungs: tuple[Rung, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "rungs", tuple(self.rungs))

    @classmethod
    def from_sizes(cls, sizes: Sequence[int], psnr: Sequence[float | None]) -> Ladder:
        """Packet ``i`` is unit ``i``, of ``sizes[i]`` bytes, reaching ``psnr[i]``."""
        if len(sizes) != len(psnr):
            raise ConfigError(f"ladder: {len(sizes)} packet sizes for {len(psnr)} PSNRs")
        return cls(tuple(Rung(i, int(b), p) for i, (b, p) in enumerate(zip(sizes, psnr, strict=True))))

    @classmethod
    def from_grid(cls, sizes: Sequence[Sequence[int]], psnr: Sequence[Sequence[float | None]]) -> Ladder:
        """``sizes[l][u]``, ``psnr[l][u]``: unit ``u`` at level ``l`` (level 0: the unit packets)."""
        rungs = []
        for level, (row_b, row_p) in enumerate(zip(sizes, psnr, strict=True)):
            if len(row_b) != len(sizes[0]) or len(row_p) != len(sizes[0]):
                raise ConfigError(f"ladder level {level} lists another number of units than level 0")
            rungs += [Rung(u, int(b), p, level) for u, (b, p) in enumerate(zip(row_b, row_p, strict=True))]
        return cls(tuple(rungs))

    def __len__(self) -> int:
        return len(self.rungs)

    @property
    def levels(self) -> int:
        """Refinement levels the ladder lists (0: unit packets only)."""
        return max((r.level for r in self.rungs), default=0)

    @property
    def units(self) -> int:
        return len(self.rungs) // (self.levels + 1)

    def cumulative_bytes(self) -> list[int]:
        """Bytes of packets 0..i, for every i."""
        out, total = [], 0
        for r in self.rungs:
            total += r.bytes
            out.append(total)
        return out

    def to_bytes(self) -> bytes:
        levels, n = self.levels, self.units
        if levels == 0:
            out = bytearray([LADDER_VERSION]) + uvarint(len(self.rungs))
        elif levels > MAX_LEVELS or len(self.rungs) != (levels + 1) * n:
            raise ConfigError(f"ladder of {len(self.rungs)} packets is not {n} units x {levels + 1} levels")
        else:
            out = bytearray([REFINED_VERSION]) + uvarint(levels) + uvarint(n)
        for i, r in enumerate(self.rungs):
            if (r.unit, r.level) != (i % n, i // n):
                raise ConfigError(
                    f"a ladder lists packets in packet-number order; packet {i} is unit {r.unit} level {r.level}"
                )
            if not 0 < r.bytes <= MAX_PACKET_BYTES:
                raise ConfigError(f"ladder packet {i}: {r.bytes} bytes is out of range 1..{MAX_PACKET_BYTES}")
            out += uvarint(2 * r.bytes + (r.psnr is not None))
            if r.psnr is not None:
                out += psnr_u16(r.psnr).to_bytes(2, "big")
        return bytes(out)

    @classmethod
    def parse(cls, data: bytes, units: int | None = None) -> Ladder:
        """The extension's bytes -> the ladder; ``units``: the header's unit count, which it must match."""
        what = "header extension 0x02 (rate-quality ladder)"
        r = Reader(bytes(data), what)
        version = r.byte("ladder version")
        if version not in (LADDER_VERSION, REFINED_VERSION):
            raise BitstreamError(
                f"{what} has version {version}; this decoder reads versions {LADDER_VERSION} and {REFINED_VERSION}"
            )
        levels = r.uvarint_in(1, MAX_LEVELS, "ladder refinement levels") if version == REFINED_VERSION else 0
        count = r.uvarint_in(0, 1 << 20, "ladder packet count")
        total = count * (levels + 1)
        if total > r.left:
            raise BitstreamError(f"{what} lists {total} packets but holds only {r.left} more bytes")
        rungs = []
        for i in range(total):
            field = r.uvarint_in(2, 2 * MAX_PACKET_BYTES + 1, f"ladder packet {i} bytes")
            psnr = psnr_from_u16(r.u16(f"ladder packet {i} PSNR")) if field & 1 else None
            rungs.append(Rung(i % count, field >> 1, psnr, i // count))
        if r.left:
            raise BitstreamError(f"{what} has {r.left} bytes after its {total} packets")
        # Checked last, as the browser does (it learns the unit count only after the header is read).
        if units is not None and count != units:
            raise BitstreamError(f"{what} lists {count} packets, the header has {units} units")
        return cls(tuple(rungs))

    def to_json(self) -> list[dict[str, object]]:
        """One row per packet; JSON has no infinity, so an exact picture is ``"inf"``."""
        cum = self.cumulative_bytes()
        rows: list[dict[str, object]] = []
        for r, c in zip(self.rungs, cum, strict=True):
            row: dict[str, object] = {"unit": r.unit}
            if self.levels:
                row["level"] = r.level
            row |= {
                "bytes": r.bytes,
                "cumulative_bytes": c,
                "psnr": None if r.psnr is None else (r.psnr if math.isfinite(r.psnr) else "inf"),
            }
            rows.append(row)
        return rows


def psnr_u16(p: float) -> int:
    if math.isinf(p) and p > 0:
        return _PSNR_INF
    if not (math.isfinite(p) and p >= 0):
        raise ConfigError(f"ladder PSNR {p!r} must be a number >= 0 dB")
    return min(round(p * _PSNR_SCALE), _PSNR_INF - 1)


def psnr_from_u16(u: int) -> float:
    return math.inf if u == _PSNR_INF else u / _PSNR_SCALE


PlanFn = Callable[[set[int], str], "tuple[int, list[int]] | None"]


def measure(plan: PlanFn, stage_psnr: Sequence[float], sizes: Sequence[int]) -> Ladder:
    """The ladder of a stream whose units arrive in index order.

    ``plan(available)`` is the family's :meth:`codec.arch.base.ArchDecoder.plan` (strict prefix): it
    says which depth the units so far decode, and ``stage_psnr[depth]`` is that picture's PSNR as the
    encoder measured it after quantization (the decode of a depth uses exactly that prefix's units)."""
    psnr: list[float | None] = []
    avail: set[int] = set()
    for i in range(len(sizes)):
        avail.add(i)
        p = plan(avail, "prefix")
        psnr.append(None if p is None else stage_psnr[p[0]])
    return Ladder.from_sizes(sizes, psnr)


def measure_grid(
    plan: PlanFn, level_psnr: Sequence[Sequence[float]], sizes: Sequence[Sequence[int]]
) -> Ladder:
    """:func:`measure` for a refined stream: ``level_psnr[l]`` are the stage PSNRs with every unit at
    level ``l``, ``sizes[l][u]`` the packet sizes."""
    rows = [list(measure(plan, p, s).rungs) for p, s in zip(level_psnr, sizes, strict=True)]
    return Ladder.from_grid([[r.bytes for r in row] for row in rows], [[r.psnr for r in row] for row in rows])

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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from codec.errors import BitstreamError, ConfigError
from codec.varint import Reader, uvarint

LADDER_VERSION = 1
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
    """PSNR (dB) once it and every packet before it arrived; None: no picture yet; inf: exact."""


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

    def __len__(self) -> int:
        return len(self.rungs)

    def cumulative_bytes(self) -> list[int]:
        """Bytes of packets 0..i, for every i."""
        out, total = [], 0
        for r in self.rungs:
            total += r.bytes
            out.append(total)
        return out

    def to_bytes(self) -> bytes:
        out = bytearray([LADDER_VERSION]) + uvarint(len(self.rungs))
        for i, r in enumerate(self.rungs):
            if r.unit != i:
                raise ConfigError(
                    f"ladder version {LADDER_VERSION} lists units in order; packet {i} is unit {r.unit}"
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
        if version != LADDER_VERSION:
            raise BitstreamError(f"{what} has version {version}; this decoder reads version {LADDER_VERSION}")
        count = r.uvarint_in(0, 1 << 20, "ladder packet count")
        if count > r.left:
            raise BitstreamError(f"{what} lists {count} packets but holds only {r.left} more bytes")
        rungs = []
        for i in range(count):
            field = r.uvarint_in(2, 2 * MAX_PACKET_BYTES + 1, f"ladder packet {i} bytes")
            psnr = psnr_from_u16(r.u16(f"ladder packet {i} PSNR")) if field & 1 else None
            rungs.append(Rung(i, field >> 1, psnr))
        if r.left:
            raise BitstreamError(f"{what} has {r.left} bytes after its {count} packets")
        # Checked last, as the browser does (it learns the unit count only after the header is read).
        if units is not None and count != units:
            raise BitstreamError(f"{what} lists {count} packets, the header has {units} units")
        return cls(tuple(rungs))

    def to_json(self) -> list[dict[str, object]]:
        """One row per packet; JSON has no infinity, so an exact picture is ``"inf"``."""
        cum = self.cumulative_bytes()
        return [
            {
                "unit": r.unit,
                "bytes": r.bytes,
                "cumulative_bytes": c,
                "psnr": None if r.psnr is None else (r.psnr if math.isfinite(r.psnr) else "inf"),
            }
            for r, c in zip(self.rungs, cum, strict=True)
        ]


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

"""Precision refinements (docs/FORMAT.md, "Refinement packets"): a unit as coarse codes plus packets
that add precision to the same weights.

A stream with ``R`` refinement levels of ``b`` bits sends each unit's **base** packet as an ordinary
unit packet whose steps are ``2^(R·b)`` times the final ones, then for each level ``l = 1..R`` one
refinement packet (type 2, level ``l``) per unit:

    shift u8 (b, 1..8) | encode_arrays([delta 0, delta 1, ...])     (one delta array per tensor)

A receiver holding a unit at level ``l - 1`` (codes ``Q``, step ``s``) moves it to level ``l`` with
``Q' = Q · 2^b + delta`` and ``s' = s / 2^b`` (a bfloat16 exponent ``b`` lower: exact), so the weights
``float32(Q' · s')`` follow the format's one dequantization rule. The encoder derives every level from
the final codes ``Q_R`` by rounding in the integer domain, ``Q_l = round(Q_R / 2^((R - l)·b))`` (half away
from zero): each level is the mid-tread quantizer of its own step, its deltas lie in ``-2^(b-1) - 1 ..
2^(b-1) + 1``, and the last level gives back exactly the codes a one-shot encode sends, so the final
picture is bit-identical and the splitting costs only bytes (measured in docs/ABR.md).

A refinement packet whose shift byte is 0 is **direct**: the rest is a whole unit payload (steps and
codes, as a unit packet's) at level ``l``'s precision, which a receiver takes whatever it holds of the
unit below that level. A sender uses it to send a unit at full precision in one packet (the one-shot
stream's bytes, plus one) when it would send the base and every refinement anyway; files do not
carry them (a sender derives them, :func:`codec.refined.direct_packets`).

Packet numbering (what senders and receivers use to name packets): unit ``u`` at level ``l`` of a
stream of ``n`` units with ``R`` levels is packet ``l·n + u`` (level 0 is the unit packet), the direct
packet of unit ``u`` (at level ``R``) is ``(R + 1)·n + u``; the sequence number is one more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from codec.entropy import decode_arrays, encode_arrays
from codec.errors import BitstreamError, ConfigError
from codec.payload import CHECKSUM, Unit, decode_unit_payload
from codec.quant import MAX_STEP_BITS, MIN_STEP_BITS, QuantizedTensor, step_bits, step_value
from codec.units import UnitSpec

MAX_SHIFT = 8
"""Bits one refinement level adds at most."""
DIRECT = 0
"""The shift byte of a direct refinement packet: a whole unit payload follows."""
MAX_LEVELS = 15
"""Refinement levels an encoder writes at most (the packet's level field allows 255)."""
MAX_REFINED_CODE = 2**31 - 1
"""A refined code must stay an int32."""
_EXP = 7
"""Bit position of a bfloat16's exponent."""


def packet_id(unit: int, level: int, units: int) -> int:
    """The canonical packet number of ``unit`` at ``level`` in a stream of ``units`` units."""
    return level * units + unit


@dataclass(frozen=True, eq=False)
class Refinement:
    """One refinement packet's content: level ``level`` of unit ``index``."""

    index: int
    level: int
    shift: int
    deltas: tuple[np.ndarray, ...]
    """int32 per tensor, in the unit's tensor order (empty for a direct packet)."""
    encoded: bytes | None = field(default=None, repr=False)
    direct: tuple[QuantizedTensor, ...] | None = None
    """A direct packet's tensors: the unit itself at this level."""

    @classmethod
    def of_unit(cls, tensors: Sequence[QuantizedTensor], index: int, level: int) -> Refinement:
        """The direct packet carrying ``tensors`` (the unit at ``level``)."""
        return cls(index, level, DIRECT, (), direct=tuple(tensors))

    @property
    def payload(self) -> bytes:
        if self.encoded is None and self.direct is not None:
            object.__setattr__(self, "encoded", bytes([DIRECT]) + Unit(self.index, self.direct).payload)
        if self.encoded is None:
            body = encode_arrays([np.asarray(d, dtype=np.int32) for d in self.deltas], checksum=CHECKSUM)
            object.__setattr__(self, "encoded", bytes([self.shift]) + body)
        assert self.encoded is not None
        return self.encoded

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Refinement):
            return NotImplemented
        return (self.index, self.level, self.payload) == (other.index, other.level, other.payload)

    @classmethod
    def parse(cls, payload: bytes, spec: UnitSpec, index: int, level: int) -> Refinement:
        what = f"refinement {level} of unit {index} ({spec.name})"
        if not payload:
            raise BitstreamError(f"{what} has an empty payload: it needs a shift byte")
        shift = payload[0]
        if shift == DIRECT:
            tensors = decode_unit_payload(payload[1:], spec, index)
            return cls(index, level, DIRECT, (), bytes(payload), tuple(tensors))
        if not 1 <= shift <= MAX_SHIFT:
            raise BitstreamError(f"{what} has shift {shift}: allowed 0 (direct) or 1..{MAX_SHIFT} bits")
        try:
            deltas = decode_arrays(payload[1:], spec.sizes, checksum=CHECKSUM)
        except BitstreamError as exc:
            raise BitstreamError(f"{what}: {exc}") from None
        return cls(index, level, shift, tuple(deltas), bytes(payload))

    def apply(self, tensors: Sequence[QuantizedTensor], what: str = "") -> list[QuantizedTensor]:
        """The unit's tensors one level finer; BitstreamError when a step would leave the normal
        bfloat16 range or a code the int32 range (only a hostile stream gets there)."""
        what = what or f"refinement {self.level} of unit {self.index}"
        if self.direct is not None:
            return list(self.direct)
        out = []
        for t, d in zip(tensors, self.deltas, strict=True):
            bits = step_bits(t.step)
            if (bits >> _EXP) - self.shift < MIN_STEP_BITS >> _EXP:
                raise BitstreamError(
                    f"{what}: tensor {t.name!r} step {t.step:.3g} divided by 2^{self.shift} is below the"
                    " smallest normal bfloat16"
                )
            codes = (t.codes.astype(np.int64) << self.shift) + np.asarray(d, dtype=np.int64)
            if codes.size and int(np.abs(codes).max()) > MAX_REFINED_CODE:
                raise BitstreamError(f"{what}: tensor {t.name!r} codes leave the int32 range")
            out.append(QuantizedTensor(t.name, t.shape, step_value(bits - (self.shift << _EXP)), codes))
        return out


def _round_shift(codes: np.ndarray, m: int) -> np.ndarray:
    """``round(codes / 2^m)``, half away from zero, in integers."""
    if m == 0:
        return codes.copy()
    mag = (np.abs(codes) + (1 << (m - 1))) >> m
    return np.sign(codes) * mag


def split_unit(unit: Unit, levels: int, shift: int) -> tuple[Unit, list[Refinement]]:
    """A unit at its final precision -> its base unit and ``levels`` refinements of ``shift`` bits."""
    if not 1 <= levels <= MAX_LEVELS:
        raise ConfigError(f"refinements {levels} is out of range 1..{MAX_LEVELS}")
    if not 1 <= shift <= MAX_SHIFT:
        raise ConfigError(f"refinement bits {shift} is out of range 1..{MAX_SHIFT}")
    total = levels * shift
    finals = [t.codes.astype(np.int64) for t in unit.tensors]
    base = []
    for t, q in zip(unit.tensors, finals, strict=True):
        bits = step_bits(t.step) + (total << _EXP)
        if bits > MAX_STEP_BITS:
            raise ConfigError(
                f"unit {unit.index} tensor {t.name!r}: its step {t.step:.3g} times 2^{total} is beyond bfloat16"
            )
        base.append(QuantizedTensor(t.name, t.shape, step_value(bits), _round_shift(q, total)))
    refinements, prev = [], [b.codes.astype(np.int64) for b in base]
    for level in range(1, levels + 1):
        now = [_round_shift(q, (levels - level) * shift) for q in finals]
        deltas = tuple((c - (p << shift)).astype(np.int32) for c, p in zip(now, prev, strict=True))
        refinements.append(Refinement(unit.index, level, shift, deltas))
        prev = now
    return Unit(unit.index, tuple(base)), refinements

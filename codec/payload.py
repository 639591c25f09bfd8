"""A v2 unit packet's payload (docs/FORMAT.md, "Unit payload"): the steps, then one entropy-coded block.

    step of tensor 0 | step of tensor 1 | ... | encode_arrays([codes 0, codes 1, ...])

Each step is 2 bytes (a bfloat16, :mod:`codec.quant`); the tensors, their order and their sizes come
from the unit as the arch derives it, so nothing else is sent. The block is coded without the entropy
coder's own checksum (``CHECKSUM``): the packet's CRC-32 already covers these bytes, and the checksum
would cost 1.0-2.2 bytes per packet for nothing a CRC-valid packet can carry (docs/FORMAT.md says what
was measured).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from codec.entropy import decode_arrays, encode_arrays
from codec.errors import BitstreamError
from codec.quant import STEP_BYTES, QuantizedTensor, parse_step, step_bits
from codec.units import UnitSpec

CHECKSUM = False
"""Whether unit payloads use the entropy coder's checksum state (they rely on the packet CRC)."""


def encode_unit_payload(tensors: Sequence[QuantizedTensor]) -> bytes:
    steps = b"".join(step_bits(t.step).to_bytes(STEP_BYTES, "big") for t in tensors)
    return steps + encode_arrays([np.asarray(t.codes) for t in tensors], checksum=CHECKSUM)


def decode_unit_payload(payload: bytes, spec: UnitSpec, index: int) -> list[QuantizedTensor]:
    """The unit's tensors from its payload; BitstreamError names the unit for anything wrong."""
    what = f"unit {index} ({spec.name})"
    n = len(spec.tensors)
    if len(payload) < STEP_BYTES * n:
        raise BitstreamError(
            f"{what} payload has {len(payload)} bytes; its {n} steps alone need {STEP_BYTES * n}"
        )
    steps = [
        parse_step(
            int.from_bytes(payload[STEP_BYTES * i : STEP_BYTES * (i + 1)], "big"), f"{what} tensor {name!r}"
        )
        for i, (name, _) in enumerate(spec.tensors)
    ]
    try:
        codes = decode_arrays(payload[STEP_BYTES * n :], spec.sizes, checksum=CHECKSUM)
    except BitstreamError as exc:
        raise BitstreamError(f"{what}: {exc}") from None
    return [
        QuantizedTensor(name, shape, step, c)
        for (name, shape), step, c in zip(spec.tensors, steps, codes, strict=True)
    ]


@dataclass(frozen=True)
class Unit:
    """One unit's quantized tensors, as a v2 packet carries them."""

    index: int
    tensors: tuple[QuantizedTensor, ...]
    encoded: bytes | None = field(default=None, compare=False, repr=False)
    """The payload as received (or once encoded): what is sent again, never re-encoded."""

    @property
    def payload(self) -> bytes:
        if self.encoded is None:
            object.__setattr__(self, "encoded", encode_unit_payload(self.tensors))
        assert self.encoded is not None
        return self.encoded

    @classmethod
    def parse(cls, payload: bytes, spec: UnitSpec, index: int) -> Unit:
        return cls(index, tuple(decode_unit_payload(payload, spec, index)), bytes(payload))

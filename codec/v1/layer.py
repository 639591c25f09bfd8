"""A v1 layer packet's payload: a msgpack map of tensors, each checked against the unit it must be."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codec.errors import BitstreamError
from codec.units import UnitSpec
from codec.v1.header import fields_of, int_in
from codec.v1.payload import decode_payload
from codec.v1.quant import QuantizedTensor


@dataclass(frozen=True)
class V1Unit:
    """One unit's affine-quantized tensors, and the payload they came in (sent again as it came)."""

    index: int
    tensors: tuple[QuantizedTensor, ...]
    payload: bytes

    @classmethod
    def parse(cls, payload: bytes, spec: UnitSpec, index: int, num_units: int) -> V1Unit:
        d: Any = fields_of(decode_payload(payload), {"unit", "tensors"}, "layer payload")
        unit = int_in(d["unit"], 0, num_units - 1, "layer payload unit index")
        if unit != index:
            raise BitstreamError(f"layer payload is unit {unit} but its packet says layer {index}")
        tensors = d["tensors"]
        if not isinstance(tensors, list) or len(tensors) != len(spec.tensors):
            count = len(tensors) if isinstance(tensors, list) else type(tensors).__name__
            raise BitstreamError(
                f"unit {index} ({spec.name}) must carry {len(spec.tensors)} tensors as the header says, got {count}"
            )
        parsed = tuple(
            QuantizedTensor.from_dict(t, n, s) for t, (n, s) in zip(tensors, spec.tensors, strict=True)
        )
        return cls(index, parsed, bytes(payload))

"""Uniform mid-tread quantization with one step per tensor: the integer codes of format v2.

``q = round(w / step)`` (signed int32 codes, entropy-coded by :mod:`codec.entropy`), and a decoder
computes ``w = float32(q * step)``: the product is exact in float64 (a code has at most 31 significant
bits, a step 8) and rounded once to float32, so numpy here and ``Math.fround(q * step)`` in the browser
give the same bits for every code (docs/FORMAT.md, "Quantization").

A step travels as a **bfloat16**, the upper 16 bits of a float32 (sign 0, 8 exponent bits, 7 mantissa
bits): 2 bytes for any step from 2^-126 to 2^127, 0.4 % apart, which no step allocation can tell from
an exact one. The encoder rounds the step it wants to the nearest such value before quantizing.
Which step each tensor gets is :mod:`codec.stepalloc`'s job.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from codec.entropy_tables import MAX_SPAN
from codec.errors import BitstreamError, ConfigError

STEP_BYTES = 2
MIN_STEP_BITS = 0x0080
"""The smallest positive normal bfloat16 (2^-126)."""
MAX_STEP_BITS = 0x7F7F
"""The largest finite bfloat16."""
MAX_CODE = 2**23
"""Largest |code| the encoder writes (float32's 24-bit mantissa holds it exactly)."""


def step_value(bits: int) -> float:
    """The step a bfloat16 bit pattern stands for."""
    return float(struct.unpack(">f", (bits << 16).to_bytes(4, "big"))[0])


def step_bits(step: float) -> int:
    """The bfloat16 nearest to ``step`` (ties to even), which must be a positive normal number."""
    if not (math.isfinite(step) and step > 0):
        raise ConfigError(f"quantization step {step!r} must be a positive finite number")
    try:
        f32 = int.from_bytes(struct.pack(">f", step), "big")  # rounds to float32 first
    except OverflowError:
        f32 = 0x7F800000
    bits = (f32 + 0x7FFF + ((f32 >> 16) & 1)) >> 16
    if not MIN_STEP_BITS <= bits <= MAX_STEP_BITS:
        raise ConfigError(f"quantization step {step!r} is outside the bfloat16 range 2^-126..3.4e38")
    return bits


def representable(step: float) -> float:
    """``step`` rounded to what a packet can carry."""
    return step_value(step_bits(step))


def parse_step(bits: int, what: str) -> float:
    """A step from a packet: a positive normal bfloat16, else BitstreamError."""
    if not MIN_STEP_BITS <= bits <= MAX_STEP_BITS:
        raise BitstreamError(
            f"{what} has step bits {bits:#06x}: a step is a positive normal bfloat16 "
            f"({MIN_STEP_BITS:#06x}..{MAX_STEP_BITS:#06x})"
        )
    return step_value(bits)


def min_step(values: np.ndarray) -> float:
    """The finest step whose codes the format allows for ``values``: a span of at most ``MAX_SPAN``
    (the entropy coder's table) and |code| <= ``MAX_CODE``."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return step_value(MIN_STEP_BITS)
    span = float(a.max() - a.min()) / (MAX_SPAN - 2)
    peak = float(np.abs(a).max()) / (MAX_CODE - 1)
    finest = max(span, peak, step_value(MIN_STEP_BITS))
    bits = step_bits(finest)
    return step_value(bits if step_value(bits) >= finest else bits + 1)


def dequantize_codes(codes: np.ndarray, step: float) -> np.ndarray:
    """float32 weights: the exact product of each code and the step, rounded once (to infinity beyond
    float32's range, as Math.fround does)."""
    with np.errstate(over="ignore"):
        return (np.asarray(codes, dtype=np.float64) * step).astype(np.float32)


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    name: str
    shape: tuple[int, ...]
    step: float
    """A bfloat16 value (see :func:`representable`)."""
    codes: np.ndarray
    """int32 codes, flat (row-major)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "codes", np.ascontiguousarray(self.codes, dtype=np.int32).reshape(-1))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantizedTensor):
            return NotImplemented
        same = (self.name, self.shape, self.step) == (other.name, other.shape, other.step)
        return same and np.array_equal(self.codes, other.codes)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def dequantize(self) -> np.ndarray:
        return dequantize_codes(self.codes, self.step).reshape(self.shape)


def quantize(name: str, values: np.ndarray, step: float) -> QuantizedTensor:
    """``round(values / step)`` with ``step`` first rounded to a bfloat16; ConfigError when the step is
    finer than :func:`min_step` allows or the values are not finite."""
    a = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"tensor {name!r} holds non-finite values (NaN or inf)")
    s = representable(step)
    if s < min_step(a):
        raise ConfigError(
            f"step {s:.3g} of tensor {name!r} is finer than its values allow ({min_step(a):.3g})"
        )
    codes = np.rint(a.astype(np.float64) / s).astype(np.int32)
    return QuantizedTensor(name, tuple(int(d) for d in a.shape), s, codes)

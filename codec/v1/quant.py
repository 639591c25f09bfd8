"""v1 tensors: min/max affine codes, MSB-first bit packing, float32 dequantization (docs/FORMAT.md,
"Appendix: format version 1"). Read-only: format v2's uniform steps replaced this quantizer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from codec.errors import BitstreamError, brief
from codec.units import MAX_NDIM, MAX_TENSOR_ELEMENTS

MIN_BITS = 2
MAX_BITS = 16
TENSOR_KEYS = ("name", "shape", "bits", "axis", "scale", "offset", "data")


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def packed_length(count: int, bits: int) -> int:
    return (count * bits + 7) // 8


def pack_bits(codes: np.ndarray, bits: int) -> bytes:
    """Codes (any shape, row-major) as ``bits``-bit unsigned integers, MSB first, zero-padded (how v1
    stored codes; tests and the entropy benchmark use it)."""
    if not _is_int(bits) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits {bits!r} is out of range {MIN_BITS}..{MAX_BITS}")
    flat = np.asarray(codes).reshape(-1)
    if flat.size and (flat.dtype.kind not in "ui" or int(flat.min()) < 0 or int(flat.max()) >= 1 << bits):
        raise ValueError(f"codes must be integers in 0..{(1 << bits) - 1} for {bits} bits")
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    bitmat = ((flat.astype(np.uint32)[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(bitmat.reshape(-1)).tobytes()


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``count`` codes as a flat uint32 array."""
    if not _is_int(bits) or not MIN_BITS <= bits <= MAX_BITS:
        raise BitstreamError(f"bits {bits!r} is out of range {MIN_BITS}..{MAX_BITS}")
    if not _is_int(count) or not 0 <= count <= MAX_TENSOR_ELEMENTS:
        raise BitstreamError(f"code count {count!r} is out of range 0..{MAX_TENSOR_ELEMENTS}")
    need = packed_length(count, bits)
    if len(data) != need:
        raise BitstreamError(
            f"packed data for {count} codes of {bits} bits needs {need} bytes, got {len(data)}"
        )
    pad = need * 8 - count * bits
    if pad and data[-1] & ((1 << pad) - 1):
        raise BitstreamError(f"packed data has nonzero padding bits in its last byte ({data[-1]:#04x})")
    # Each code lies within 3 consecutive bytes (at most 7 bits of offset + 16 bits of code), so
    # gather a 24-bit window per code and shift: no per-bit expansion.
    buf = np.zeros(need + 2, dtype=np.uint32)
    buf[:need] = np.frombuffer(data, dtype=np.uint8)
    start = np.arange(count, dtype=np.int64) * bits
    byte = start >> 3
    window = (buf[byte] << 16) | (buf[byte + 1] << 8) | buf[byte + 2]
    shift = (24 - bits - (start & 7)).astype(np.uint32)
    return ((window >> shift) & np.uint32((1 << bits) - 1)).astype(np.uint32)


@dataclass
class QuantizedTensor:
    name: str
    shape: tuple[int, ...]
    bits: int
    axis: int | None
    """None: one scale/offset for the tensor; 0: one per row (output channel)."""
    scale: np.ndarray
    offset: np.ndarray
    codes: np.ndarray
    """uint32 codes, flat or of ``shape``."""

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def dequantize(self) -> np.ndarray:
        q = np.asarray(self.codes, dtype=np.float32).reshape(self.shape)
        scale = np.asarray(self.scale, dtype=np.float32)
        offset = np.asarray(self.offset, dtype=np.float32)
        if self.axis is None:
            return (offset[0] + scale[0] * q).astype(np.float32)
        bshape = (-1,) + (1,) * (len(self.shape) - 1)
        return (offset.reshape(bshape) + scale.reshape(bshape) * q).astype(np.float32)

    @classmethod
    def from_dict(
        cls, d: Any, expected_name: str | None = None, expected_shape: tuple[int, ...] | None = None
    ) -> QuantizedTensor:
        """Validate a tensor map from a layer payload; every problem raises BitstreamError."""
        if not isinstance(d, dict):
            raise BitstreamError(f"tensor entry must be a map, got {type(d).__name__}")
        missing = [k for k in TENSOR_KEYS if k not in d]
        extra = sorted(str(k) for k in d if k not in TENSOR_KEYS)
        if missing or extra:
            raise BitstreamError(f"tensor map has missing keys {missing} / unexpected keys {extra}")
        name = d["name"]
        if not isinstance(name, str):
            raise BitstreamError(f"tensor name must be a string, got {type(name).__name__}")
        if expected_name is not None and name != expected_name:
            raise BitstreamError(f"tensor name {brief(name)} does not match the header's {expected_name!r}")
        shape = parse_shape(d["shape"], f"tensor {name!r}")
        if expected_shape is not None and shape != tuple(expected_shape):
            raise BitstreamError(
                f"tensor {name!r} has shape {list(shape)} but the header says {list(expected_shape)}"
            )
        bits = d["bits"]
        if not _is_int(bits) or not MIN_BITS <= bits <= MAX_BITS:
            raise BitstreamError(f"tensor {name!r} bits {brief(bits)} is out of range {MIN_BITS}..{MAX_BITS}")
        axis = d["axis"]
        if axis is not None and (not _is_int(axis) or axis != 0 or not shape):
            raise BitstreamError(f"tensor {name!r} axis {brief(axis)} is not null or 0 (with ndim >= 1)")
        channels = 1 if axis is None else shape[0]
        scale = _floats(d["scale"], channels, f"tensor {name!r} scale")
        offset = _floats(d["offset"], channels, f"tensor {name!r} offset")
        if not np.all(scale > 0):
            raise BitstreamError(f"tensor {name!r} scale must be > 0")
        data = d["data"]
        if not isinstance(data, bytes):
            raise BitstreamError(f"tensor {name!r} data must be bytes, got {type(data).__name__}")
        try:
            codes = unpack_bits(data, bits, math.prod(shape))
        except BitstreamError as exc:
            raise BitstreamError(f"tensor {name!r}: {exc}") from None
        return cls(name, shape, bits, axis, scale, offset, codes)


def parse_shape(value: Any, what: str) -> tuple[int, ...]:
    """A msgpack shape list -> tuple of positive ints with a bounded product."""
    if not isinstance(value, list) or len(value) > MAX_NDIM:
        raise BitstreamError(f"{what} shape must be a list of at most {MAX_NDIM} ints, got {brief(value)}")
    numel = 1
    for s in value:
        if not _is_int(s) or s < 1:
            raise BitstreamError(f"{what} shape {brief(value)} must hold positive ints")
        numel *= s
        if numel > MAX_TENSOR_ELEMENTS:
            raise BitstreamError(f"{what} shape {brief(value)} has more than {MAX_TENSOR_ELEMENTS} elements")
    return tuple(int(s) for s in value)


def _floats(value: Any, count: int, what: str) -> np.ndarray:
    if not isinstance(value, bytes):
        raise BitstreamError(f"{what} must be bytes, got {type(value).__name__}")
    if len(value) != 4 * count:
        raise BitstreamError(f"{what} needs {count} float32 ({4 * count} bytes), got {len(value)} bytes")
    arr = np.frombuffer(value, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise BitstreamError(f"{what} holds non-finite values")
    return arr

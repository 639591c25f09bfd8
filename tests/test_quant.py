"""Format v2's quantizer: bfloat16 steps, signed codes, the exact dequantization rule and the unit payload
(docs/FORMAT.md, "Quantization", "Unit payload")."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from codec.entropy import encode_arrays
from codec.entropy_tables import MAX_SPAN
from codec.errors import BitstreamError, ConfigError
from codec.payload import CHECKSUM, Unit, decode_unit_payload, encode_unit_payload
from codec.quant import (
    MAX_CODE,
    MAX_STEP_BITS,
    MIN_STEP_BITS,
    QuantizedTensor,
    dequantize_codes,
    min_step,
    parse_step,
    quantize,
    representable,
    step_bits,
    step_value,
)
from codec.units import UnitSpec


def _bf16_reference(x: float) -> int:
    """Round-to-nearest-even of float32(x) to its upper 16 bits, computed on the bit pattern by hand."""
    f = struct.unpack(">I", struct.pack(">f", x))[0]
    upper, lower = f >> 16, f & 0xFFFF
    return upper + (lower > 0x8000 or (lower == 0x8000 and upper & 1))


@pytest.mark.parametrize("x", [1.0, 0.1, 3e-5, 1.0039, 1.00390625, 1.01171875, 1e30, 2.0**-126, 0.004])
def test_step_bits_round_to_nearest_even(x: float) -> None:
    bits = step_bits(x)
    assert bits == _bf16_reference(x)
    assert step_value(bits) == struct.unpack(">f", (bits << 16).to_bytes(4, "big"))[0]
    assert abs(step_value(bits) - x) <= x * 2**-8  # 0.4 % apart at most
    assert representable(step_value(bits)) == step_value(bits)  # idempotent


@pytest.mark.parametrize("x", [0.0, -1.0, float("nan"), float("inf"), 1e-39, 3.4e38 * 1.0000001])
def test_step_bits_refuses(x: float) -> None:
    with pytest.raises(
        ConfigError, match="quantization step .* must be a positive finite number|outside the bfloat16"
    ):
        step_bits(x)


def test_parse_step_range() -> None:
    assert parse_step(0x3F80, "t") == 1.0
    assert parse_step(MIN_STEP_BITS, "t") == 2.0**-126
    assert parse_step(MAX_STEP_BITS, "t") == step_value(MAX_STEP_BITS) > 3e38
    for bad in (0x0000, 0x007F, 0x7F80, 0x7FC0, 0x8000, 0xBF80, 0xFFFF):
        with pytest.raises(BitstreamError, match=f"t has step bits {bad:#06x}: a step is a positive normal"):
            parse_step(bad, "t")


def test_dequantize_is_one_rounding_of_the_exact_product() -> None:
    """float32(q * step) with the product exact: the rule the browser's Math.fround(q * step) follows."""
    rng = np.random.default_rng(0)
    codes = rng.integers(-(2**31), 2**31, 5000, dtype=np.int64).astype(np.int32)
    step = step_value(0x3C01)
    got = dequantize_codes(codes, step)
    assert got.dtype == np.float32
    exact = [float(np.float32(float(q) * step)) for q in codes.tolist()]  # Python floats: exact product
    assert got.tolist() == exact
    # For codes beyond 2**24, float32(q) * step would round twice and differ somewhere.
    twice = codes.astype(np.float32) * np.float32(step)
    assert not np.array_equal(twice, got)


def test_quantize_error_bound_and_round_trip() -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((32, 16)).astype(np.float32)
    qt = quantize("w", w, 0.01)
    assert qt.step == representable(0.01) and qt.codes.dtype == np.int32 and qt.codes.shape == (512,)
    assert np.abs(qt.dequantize() - w).max() <= qt.step / 2 * (1 + 1e-6)
    assert qt.dequantize().shape == (32, 16)
    assert quantize("w", qt.dequantize(), qt.step) == qt  # quantizing dequantized weights is idempotent


def test_min_step_keeps_codes_in_the_coders_range() -> None:
    w = np.array([-1.0, 0.0, 3.0], np.float32)
    finest = min_step(w)
    qt = quantize("w", w, finest)
    assert int(qt.codes.max() - qt.codes.min()) <= MAX_SPAN and int(np.abs(qt.codes).max()) <= MAX_CODE
    with pytest.raises(ConfigError, match="step .* of tensor 'w' is finer than its values allow"):
        quantize("w", w, finest / 2)
    offset = np.full(4, 1000.0, np.float32)  # all equal far from 0: |code| binds, not the span
    assert int(np.abs(quantize("b", offset, min_step(offset)).codes).max()) <= MAX_CODE
    assert min_step(np.zeros(3, np.float32)) == step_value(MIN_STEP_BITS)


def test_quantize_refuses_non_finite() -> None:
    with pytest.raises(ConfigError, match="tensor 'w' holds non-finite values"):
        quantize("w", np.array([1.0, np.nan], np.float32), 0.1)


SPEC = UnitSpec("hidden.1", (("weight", (4, 3)), ("bias", (4,))))


def test_unit_payload_layout() -> None:
    """Two steps (bfloat16, big-endian), then one entropy block without the coder's checksum."""
    w = quantize("weight", np.arange(12, dtype=np.float32).reshape(4, 3) - 6, 0.5)
    b = quantize("bias", np.zeros(4, np.float32), 0.25)
    payload = encode_unit_payload([w, b])
    assert CHECKSUM is False
    assert payload[:4] == step_bits(0.5).to_bytes(2, "big") + step_bits(0.25).to_bytes(2, "big")
    assert payload[4:] == encode_arrays([w.codes, b.codes], checksum=False)
    back = decode_unit_payload(payload, SPEC, 1)
    assert back == [w, b]
    unit = Unit.parse(payload, SPEC, 1)
    assert unit.payload == payload and unit == Unit(1, (w, b))


def test_unit_payload_errors_name_the_unit() -> None:
    w = quantize("weight", np.ones((4, 3), np.float32), 0.5)
    b = quantize("bias", np.ones(4, np.float32), 0.5)
    payload = encode_unit_payload([w, b])
    with pytest.raises(
        BitstreamError, match=r"unit 3 \(hidden.1\): 1 bytes follow the last model descriptor"
    ):
        decode_unit_payload(payload + b"\x01", SPEC, 3)
    with pytest.raises(BitstreamError, match=r"unit 3 \(hidden.1\): entropy-coded data is truncated"):
        decode_unit_payload(payload[:-1], SPEC, 3)


def test_tensor_equality_compares_codes() -> None:
    a = QuantizedTensor("w", (2,), 0.5, np.array([1, 2]))
    assert a == QuantizedTensor("w", (2,), 0.5, np.array([[1, 2]]))
    assert a != QuantizedTensor("w", (2,), 0.5, np.array([1, 3]))
    assert a != QuantizedTensor("w", (2,), 0.25, np.array([1, 2]))

from __future__ import annotations

import time

import numpy as np
import pytest

from codec.errors import BitstreamError, ConfigError
from codec.payload import decode_payload, encode_payload
from codec.quant import (
    MAX_TENSOR_ELEMENTS,
    QuantizedTensor,
    pack_bits,
    quantization_error,
    quantize,
    unpack_bits,
)

EPS = 1e-6


@pytest.mark.parametrize("bits", range(2, 17))
def test_pack_unpack_round_trip(bits: int) -> None:
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    for count in (0, 1, 3, 7, 8, 9, 1001):
        codes = rng.integers(0, top + 1, size=count).astype(np.uint32)
        codes[: min(count, 2)] = [top, 0][: min(count, 2)]  # the extremes always appear
        data = pack_bits(codes, bits)
        assert len(data) == (count * bits + 7) // 8
        out = unpack_bits(data, bits, count)
        assert out.dtype == np.uint32 and np.array_equal(out, codes)


@pytest.mark.parametrize(
    ("codes", "bits", "expected"),
    [
        ([1, 2, 3], 2, bytes([0b01101100])),
        ([5], 3, bytes([0b10100000])),
        ([5, 1, 7], 3, bytes([0b10100111, 0b10000000])),
        ([0x1234], 16, b"\x12\x34"),
        ([0xABC, 0x123], 12, b"\xab\xc1\x23"),
        ([0x7F, 0x01], 7, bytes([0b11111110, 0b00000100])),
    ],
)
def test_msb_first_layout(codes: list[int], bits: int, expected: bytes) -> None:
    assert pack_bits(np.array(codes, dtype=np.uint32), bits) == expected
    assert unpack_bits(expected, bits, len(codes)).tolist() == codes


def test_pack_accepts_shaped_codes_row_major() -> None:
    codes = np.arange(12, dtype=np.uint32).reshape(3, 4)
    assert pack_bits(codes, 4) == pack_bits(codes.ravel(), 4) == bytes([0x01, 0x23, 0x45, 0x67, 0x89, 0xAB])


def test_unpack_errors() -> None:
    with pytest.raises(BitstreamError, match="packed data for 3 codes of 5 bits needs 2 bytes, got 3"):
        unpack_bits(b"\0\0\0", 5, 3)
    with pytest.raises(BitstreamError, match="nonzero padding bits in its last byte \\(0x01\\)"):
        unpack_bits(b"\x00\x01", 5, 3)
    with pytest.raises(BitstreamError, match="bits 17 is out of range 2..16"):
        unpack_bits(b"", 17, 0)
    with pytest.raises(BitstreamError, match="code count -1 is out of range"):
        unpack_bits(b"", 8, -1)


def test_pack_errors() -> None:
    with pytest.raises(ConfigError, match="codes must be integers in 0..3 for 2 bits"):
        pack_bits(np.array([4], dtype=np.uint32), 2)
    with pytest.raises(ConfigError, match="codes must be integers"):
        pack_bits(np.array([-1]), 8)
    with pytest.raises(ConfigError, match="bits 1 is out of range 2..16"):
        pack_bits(np.array([0]), 1)


def test_packing_100k_values_is_fast() -> None:
    codes = np.random.default_rng(0).integers(0, 1 << 13, size=100_000).astype(np.uint32)
    start = time.perf_counter()
    out = unpack_bits(pack_bits(codes, 13), 13, codes.size)
    assert np.array_equal(out, codes)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("bits", [2, 4, 8, 12, 16])
def test_per_tensor_error_bound(bits: int) -> None:
    values = np.random.default_rng(bits).normal(0, 0.3, size=(17, 9)).astype(np.float32)
    qt = quantize("weight", values, bits)
    assert qt.axis is None and qt.scale.shape == qt.offset.shape == (1,)
    assert qt.scale.dtype == qt.offset.dtype == np.float32 and qt.codes.dtype == np.uint32
    assert qt.offset[0] == values.min()
    assert np.isclose(qt.scale[0], (values.max() - values.min()) / ((1 << bits) - 1), rtol=1e-6)
    assert qt.codes.min() == 0 and qt.codes.max() == (1 << bits) - 1
    w = qt.dequantize()
    assert w.dtype == np.float32 and w.shape == values.shape
    assert quantization_error(values, qt) <= qt.scale[0] / 2 + EPS


def test_per_channel_row_bounds_and_gain() -> None:
    rng = np.random.default_rng(3)
    row_scales = np.array([1e-3, 1e-2, 0.1, 1.0, 10.0], dtype=np.float32)
    values = (rng.standard_normal((5, 4, 3)) * row_scales[:, None, None]).astype(np.float32)
    qt = quantize("weight", values, 6, per_channel=True)
    assert qt.axis == 0 and qt.scale.shape == qt.offset.shape == (5,)
    err = np.abs(values - qt.dequantize()).reshape(5, -1).max(axis=1)
    assert np.all(err <= qt.scale / 2 + EPS * np.abs(values).reshape(5, -1).max(axis=1))
    # the small rows keep their precision, unlike per-tensor
    per_tensor = quantize("weight", values, 6)
    err_t = np.abs(values - per_tensor.dequantize()).reshape(5, -1).max(axis=1)
    assert err[0] < err_t[0] / 100


def test_biases_are_per_tensor_even_when_per_channel() -> None:
    qt = quantize("bias", np.arange(5, dtype=np.float32), 8, per_channel=True)
    assert qt.axis is None and qt.scale.shape == (1,)


def test_constant_tensor_is_exact() -> None:
    values = np.full((3, 4), -0.25, dtype=np.float32)
    for per_channel in (False, True):
        qt = quantize("weight", values, 8, per_channel)
        assert np.all(qt.scale == 1.0) and np.all(qt.codes == 0)
        assert np.array_equal(qt.dequantize(), values)


def test_tiny_range_does_not_divide_by_zero() -> None:
    values = np.array([0.0, 1e-45], dtype=np.float32)  # (max - min) / 65535 underflows float32
    qt = quantize("bias", values, 16)
    assert qt.scale[0] > 0 and quantization_error(values, qt) <= 1e-44


@pytest.mark.parametrize(
    ("values", "bits", "match"),
    [
        (np.zeros(3), 1, "bits 1 is out of range 2..16"),
        (np.zeros(3), 17, "bits 17 is out of range 2..16"),
        (np.array([0.0, np.nan]), 8, "non-finite"),
        (np.array([0.0, np.inf]), 8, "non-finite"),
        (np.zeros(0), 8, "cannot be quantized"),
    ],
)
def test_quantize_rejects(values: np.ndarray, bits: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        quantize("w", values, bits)


@pytest.mark.parametrize(("bits", "per_channel"), [(2, False), (7, True), (8, False), (13, True), (16, True)])
def test_dict_round_trip_is_exact(bits: int, per_channel: bool) -> None:
    values = np.random.default_rng(bits).standard_normal((6, 5)).astype(np.float32)
    qt = quantize("weight", values, bits, per_channel)
    d = qt.to_dict()
    assert set(d) == {"name", "shape", "bits", "axis", "scale", "offset", "data"}
    assert d["shape"] == [6, 5] and d["bits"] == bits and d["axis"] == (0 if per_channel else None)
    assert np.array_equal(np.frombuffer(d["scale"], "<f4"), qt.scale)
    assert len(d["data"]) == (30 * bits + 7) // 8
    back = QuantizedTensor.from_dict(decode_payload(encode_payload(d)), "weight", (6, 5))
    assert back.shape == (6, 5) and back.bits == bits and back.axis == qt.axis
    assert np.array_equal(back.codes, qt.codes.ravel())
    assert np.array_equal(back.scale, qt.scale) and np.array_equal(back.offset, qt.offset)
    assert np.array_equal(back.dequantize(), qt.dequantize())  # bit-identical weights at the receiver


def _good() -> dict:
    return quantize(
        "weight", np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), 8, True
    ).to_dict()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"bits": None}, "missing keys \\['bits'\\]"),
        ({"extra": 1}, "unexpected keys \\['extra'\\]"),
        ({"name": 5}, "tensor name must be a string, got int"),
        ({"name": "bias"}, "tensor name 'bias' does not match the header's 'weight'"),
        ({"shape": [3, 4]}, r"tensor 'weight' has shape \[3, 4\] but the header says \[4, 3\]"),
        ({"shape": [4, 0]}, "must hold positive ints"),
        ({"shape": "4x3"}, "shape must be a list"),
        ({"shape": [4.0, 3]}, "must hold positive ints"),
        ({"bits": 1}, "bits 1 is out of range 2..16"),
        ({"bits": 17}, "bits 17 is out of range 2..16"),
        ({"bits": True}, "bits True is out of range"),
        ({"axis": 1}, "axis 1 is not null or 0"),
        ({"scale": b"\0" * 4}, "scale needs 4 float32 \\(16 bytes\\), got 4 bytes"),
        ({"offset": np.array([0, 0, 0, np.nan], "<f4").tobytes()}, "offset holds non-finite values"),
        ({"scale": np.array([1, 1, 1, np.inf], "<f4").tobytes()}, "scale holds non-finite values"),
        ({"scale": np.array([1, 0, 1, 1], "<f4").tobytes()}, "scale must be > 0"),
        ({"scale": [1.0] * 4}, "scale must be bytes, got list"),
        ({"data": b"\0" * 11}, "needs 12 bytes, got 11"),
        ({"data": "x" * 12}, "data must be bytes, got str"),
    ],
)
def test_from_dict_rejects(change: dict, match: str) -> None:
    d = _good()
    for key, value in change.items():
        if value is None:
            del d[key]
        else:
            d[key] = value
    with pytest.raises(BitstreamError, match=match):
        QuantizedTensor.from_dict(d, "weight", (4, 3))


def test_from_dict_bounds_numel_before_unpacking() -> None:
    d = _good() | {"shape": [2**13, 2**12], "axis": None, "scale": b"\0\0\x80?", "offset": b"\0" * 4}
    with pytest.raises(BitstreamError, match=f"more than {MAX_TENSOR_ELEMENTS} elements"):
        QuantizedTensor.from_dict(d)
    with pytest.raises(BitstreamError, match="tensor entry must be a map, got list"):
        QuantizedTensor.from_dict([1, 2])

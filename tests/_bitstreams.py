"""Small v2 bitstreams built from seeded random arrays (no torch), and raw packets that skip validation."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from codec.bitstream import Bitstream, StreamHeader, Unit
from codec.quant import quantize
from codec.varint import uvarint


def siren_arch(width: int = 8, hidden: int = 2) -> dict:
    return {
        "width": width,
        "hidden_layers": hidden,
        "first_omega_0": 30.0,
        "hidden_omega_0": 30.0,
        "pe_frequencies": 0,
        "pe_scale": 1.4,
    }


def make_stream(
    seed: int = 0, width: int = 8, hidden: int = 2, stream_id: int = 0x5EED, rel_step: float = 1 / 16
) -> Bitstream:
    """A SIREN of random normal weights, each tensor quantized at ``rel_step`` times its std."""
    rng = np.random.default_rng(seed)
    header = StreamHeader("siren", siren_arch(width, hidden), 12, 9, [21.5], {"encoder": "test"})
    units = {}
    for i, spec in enumerate(header.units):
        tensors = []
        for name, shape in spec.tensors:
            w = rng.standard_normal(shape).astype(np.float32)
            tensors.append(quantize(name, w, float(np.std(w)) * rel_step))
        units[i] = Unit(i, tuple(tensors))
    return Bitstream(header, units, stream_id)


def random_stream(model: str, arch: dict, size: tuple[int, int] = (7, 5), seed: int = 0) -> Bitstream:
    """A stream of any registered ``model``: random normal weights scaled by 1/sqrt(fan-in), each tensor
    quantized at 1/64 of its std."""
    rng = np.random.default_rng(seed)
    header = StreamHeader(model, arch, *size)
    units = {}
    for i, spec in enumerate(header.units):
        tensors = []
        for name, shape in spec.tensors:
            w = (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
            tensors.append(quantize(name, w, float(np.std(w)) / 64 + 1e-6))
        units[i] = Unit(i, tuple(tensors))
    return Bitstream(header, units, 0x77)


def raw_packet(
    payload: bytes,
    ptype: int = 1,
    unit: int | None = 0,
    seq: int = 1,
    stream_id: int = 0x5EED,
    level: int | None = None,
    magic: int = 0x53,
    version: int = 2,
    length: int | None = None,
) -> bytes:
    """v2 packet bytes with a correct CRC over whatever fields are given, valid or not (``unit`` None
    leaves the field out, as in a header packet)."""
    head = bytes([magic, (version << 4) | ptype]) + stream_id.to_bytes(2, "big") + uvarint(seq)
    if unit is not None:
        head += uvarint(unit)
    if level is not None:
        head += uvarint(level)
    head += uvarint(len(payload) if length is None else length)
    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


def codes_of(bs: Bitstream) -> dict[int, list[np.ndarray]]:
    return {i: [np.asarray(t.codes).ravel().copy() for t in u.tensors] for i, u in bs.units.items()}


def zstd_bomb(size: int = 2**30) -> bytes:
    """A 16-byte zstd frame that declares ``size`` content bytes (single segment, 8-byte content size)."""
    rle_block = (1 | (1 << 1) | (100 << 3)).to_bytes(3, "little") + b"A"  # last block, RLE, 100 x "A"
    return b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + struct.pack("<Q", size) + rle_block

"""Format 2's fuzz material (docs/FORMAT.md): a valid stream taken apart (:class:`Seed`: its packets,
header fields and unit payloads), well-formed pieces to rebuild it with (arch records, unit payloads,
entropy blocks of extreme codes) and the edge values the families of :mod:`fuzz.v2` substitute."""

from __future__ import annotations

import functools
import math
from typing import Any

import msgpack
import numpy as np
from _bitstreams import raw_packet

from codec.arch import DECODERS, MODEL_IDS, write_arch
from codec.arch.records import Field
from codec.bitstream import load_bitstream
from codec.entropy import encode_arrays
from codec.header import StreamHeader
from codec.packets import Packet
from codec.varint import f64_bytes, uvarint

STEP_EDGES = (0x0000, 0x0001, 0x007F, 0x0080, 0x0081, 0x3F80, 0x7F7F, 0x7F80, 0x7FC0, 0x8000, 0xBF80, 0xFFFF)
"""bfloat16 bit patterns: zero, subnormals, the smallest and largest normal, 1.0, infinity, NaN, negatives."""
VARINT_EDGES = (0, 1, 2, 127, 128, 255, 65535, 65536, 2**24, 2**31, 2**32 - 1, 2**35 - 1)
OVERLONG = (b"\x80\x00", b"\x81\x80\x00", b"\xff\xff\xff\xff\x7f", b"\xff\xff\xff\xff\xff\x01", b"\x80")
"""Varints a reader must refuse: non-minimal, over 35 bits, unterminated."""
FLOAT_EDGES = (0.0, -0.0, -1.0, 1e-300, 5e-324, 1e4, 1e4 + 1, 1e300, math.nan, math.inf, -math.inf)


def split_packets(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        size = Packet.peek(data, pos).size
        out.append(data[pos : pos + size])
        pos += size
    return out


def record_bytes(model: str, arch: dict[str, Any]) -> bytes:
    """An arch record of whatever values ``arch`` holds (write_arch refuses what is out of range):
    flags for the fields off their defaults, then the values; a choice may be a raw index."""
    flags, values, bit = 0, bytearray(), 0
    for f in DECODERS[model].RECORD:
        value = arch[f.name]
        if f.kind == "bool":
            flags |= int(bool(value)) << bit
        elif not f.flagged or not _same(value, f.default):
            flags |= int(f.flagged) << bit
            values += _value_bytes(f, value)
        bit += f.flagged
    return uvarint(flags) + bytes(values)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _value_bytes(f: Field, value: Any) -> bytes:
    if f.kind == "float":
        return f64_bytes(float(value))
    if f.kind == "choice" and isinstance(value, str):
        return uvarint(f.choices.index(value))
    return uvarint(int(value) % 2**35)


def unit_payload(header: StreamHeader, index: int, dense: bool = True) -> bytes:
    """A well-formed payload for the header's unit ``index``: steps of 2^-8, seeded random codes in
    -8..8 (or all zeros, cheap at any size, when ``dense`` is off or the unit is large)."""
    spec = header.units[index]
    return b"\x3b\x80" * len(spec.tensors) + _codes_block(
        tuple(spec.sizes), dense and sum(spec.sizes) <= 2**16
    )


@functools.lru_cache(maxsize=4096)
def _codes_block(sizes: tuple[int, ...], dense: bool) -> bytes:
    """Entropy coding costs milliseconds a unit: the blocks of the few sizes the seeds' archs derive are
    made once (the codes do not matter to a forward pass that only has to refuse or run)."""
    rng = np.random.default_rng(sum(sizes))
    codes = [rng.integers(-8, 9, n) if dense else np.zeros(n, np.int32) for n in sizes]
    return encode_arrays([c.astype(np.int32) for c in codes], checksum=False)


@functools.lru_cache(maxsize=1024)
def extreme_block(sizes: tuple[int, ...], value: int, spread: int) -> bytes:
    """Every array ``value`` but its last code, ``spread`` away (towards zero): codes at the ends of int32
    or of what float32 holds exactly, in a span the coder takes. Made once per combination."""
    other = value - spread if value > 0 else value + spread
    arrays = []
    for s in sizes:
        a = np.full(s, value, np.int64)
        if s:
            a[-1] = other
        arrays.append(a.astype(np.int32))
    return encode_arrays(arrays, checksum=False)


class Seed:
    """A valid v2 stream taken apart: its packets, header fields and unit payloads."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data = name, data
        self.packets = split_packets(data)
        bs, _ = load_bitstream(data)
        self.bs, self.header, self.stream_id = bs, bs.header, bs.stream_id
        self.payloads = [bs.units[i].payload for i in range(bs.header.num_units)]
        h = self.header
        ext = b"\x01" + uvarint(len(msgpack.packb(h.meta))) + msgpack.packb(h.meta) if h.meta else b""
        self.pieces: dict[str, bytes] = {
            "model": bytes([MODEL_IDS[h.model]]),
            "width": uvarint(h.width),
            "height": uvarint(h.height),
            "arch": write_arch(h.model, h.arch),
            "psnr": uvarint(len(h.stage_psnr))
            + b"".join(round(p * 100).to_bytes(2, "big") for p in h.stage_psnr),
            "ext": ext,
        }
        assert b"".join(self.pieces.values()) == h.to_payload(), name

    def header_packet(self, payload: bytes) -> bytes:
        return raw_packet(payload, ptype=0, unit=None, seq=0, stream_id=self.stream_id)

    def unit_packet(self, unit: int, payload: bytes) -> bytes:
        return raw_packet(payload, ptype=1, unit=unit, seq=unit + 1, stream_id=self.stream_id)

    def file(self, header: bytes | None = None, units: dict[int, bytes] | None = None) -> bytes:
        """The seed's file with the header payload and some unit payloads replaced."""
        out = [self.header_packet(header) if header is not None else self.packets[0]]
        for i, packet in enumerate(self.packets[1:]):
            payload = (units or {}).get(i)
            out.append(self.unit_packet(i, payload) if payload is not None else packet)
        return b"".join(out)

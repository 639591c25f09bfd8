"""Varints, zigzag and a bounds-checked byte reader: the small binary vocabulary of format v2.

Varints are unsigned LEB128 (7 bits per byte, low bits first), at most ``MAX_VARINT_BYTES`` long and
of minimal length (a last byte of 0 after the first is refused), so every value has exactly one
encoding and a CRC-valid packet cannot smuggle a second meaning. Signed values are zigzag-coded first
(0, -1, 1, -2, ... -> 0, 1, 2, 3). The packet header (:mod:`codec.packets`), the header payload
(:mod:`codec.header`), the arch records (:mod:`codec.arch.records`) and the entropy descriptors
(:mod:`codec.entropy_models`) all read through :class:`Reader`, so a short or malformed field raises a
:class:`BitstreamError` that names the field and the byte.
"""

from __future__ import annotations

import struct

from codec.errors import BitstreamError

MAX_VARINT_BYTES = 5
"""Enough for 35 bits: every varint of the format is below 2**32."""

_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")


def zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def unzigzag(u: int) -> int:
    return u >> 1 if u % 2 == 0 else -((u + 1) >> 1)


def uvarint(u: int) -> bytes:
    """The minimal LEB128 bytes of ``u`` (0 <= u < 2**35)."""
    if not 0 <= u < 1 << (7 * MAX_VARINT_BYTES):
        raise ValueError(f"varint value {u} is out of range 0..2**{7 * MAX_VARINT_BYTES}-1")
    out = bytearray()
    while u >= 0x80:
        out.append(0x80 | (u & 0x7F))
        u >>= 7
    out.append(u)
    return bytes(out)


def svarint(v: int) -> bytes:
    return uvarint(zigzag(v))


class Reader:
    """Reads fields from ``data`` starting at ``pos``; ``name`` says what the bytes are in errors
    ("entropy-coded data", "header payload", ...)."""

    def __init__(self, data: bytes, name: str, pos: int = 0) -> None:
        self.data = data
        self.name = name
        self.pos = pos

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def _truncated(self, what: str) -> BitstreamError:
        return BitstreamError(f"{self.name} is truncated: {what} missing at byte {self.pos}")

    def byte(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise self._truncated(what)
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n: int, what: str) -> bytes:
        if self.left < n:
            raise self._truncated(what)
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "big")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "big")

    def f32(self, what: str) -> float:
        return float(_F32.unpack(self.take(4, what))[0])

    def f64(self, what: str) -> float:
        return float(_F64.unpack(self.take(8, what))[0])

    def uvarint(self, what: str) -> int:
        value = 0
        for i in range(MAX_VARINT_BYTES):
            b = self.byte(what)
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if b == 0 and i > 0:
                    raise BitstreamError(f"{what} at byte {self.pos - 1} is an overlong varint")
                return value
        raise BitstreamError(
            f"{what} at byte {self.pos - 1} is a varint longer than {MAX_VARINT_BYTES} bytes"
        )

    def svarint(self, what: str) -> int:
        return unzigzag(self.uvarint(what))

    def uvarint_in(self, lo: int, hi: int, what: str) -> int:
        """A varint that must lie in ``lo..hi`` (the error names the value and the range)."""
        at = self.pos
        value = self.uvarint(what)
        if not lo <= value <= hi:
            raise BitstreamError(f"{what} {value} (byte {at}) is out of range {lo}..{hi}")
        return value


def f32_bytes(x: float) -> bytes:
    return _F32.pack(x)


def f64_bytes(x: float) -> bytes:
    return _F64.pack(x)

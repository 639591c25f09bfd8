"""The protection envelope: the header netsim puts in front of every protected datagram.

Layout, network byte order (28 bytes, then the payload):

====== ===== ==============================================================
offset bytes field
====== ===== ==============================================================
0      2     magic ``b"NP"``
2      1     version (1)
3      1     scheme: 0 none, 1 repeat, 2 xor, 3 rs
4      1     k: data packets in the group (1 for none and repeat)
5      1     m: parity packets in the group (repeat: extra copies)
6      1     position: ``0..k-1`` data, ``k..k+m-1`` parity (repeat: copy number)
7      1     flags (0, reserved)
8      4     group id
12     4     packet index (data and repeat copies); ``0xFFFFFFFF`` for parity
16     4     payload length
20     4     CRC-32 of the payload
24     4     CRC-32 of bytes 0..23
====== ===== ==============================================================

Two CRCs: a damaged header makes the datagram useless (its index cannot be trusted), a damaged
payload under an intact header can still be handed over flagged when the receiver asks for that.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from netsim.errors import DatagramError

MAGIC = b"NP"
VERSION = 1
_FIELDS = struct.Struct(">2sBBBBBBIIII")
_CRC = struct.Struct(">I")
ENVELOPE_HEADER_LENGTH = _FIELDS.size + _CRC.size  # 28
PARITY_INDEX = 0xFFFFFFFF
SCHEME_CODES = {"none": 0, "repeat": 1, "xor": 2, "rs": 3}
SCHEME_NAMES = {v: k for k, v in SCHEME_CODES.items()}


@dataclass(frozen=True)
class Envelope:
    scheme: str
    """``none``, ``repeat``, ``xor`` or ``rs``."""
    k: int
    m: int
    position: int
    group: int
    index: int
    """Original packet index; :data:`PARITY_INDEX` for a parity datagram."""
    payload: bytes
    intact: bool = True
    """Set by :meth:`parse`: the payload matched its length and CRC."""

    @property
    def is_parity(self) -> bool:
        return self.scheme in ("xor", "rs") and self.position >= self.k

    def to_bytes(self) -> bytes:
        head = _FIELDS.pack(
            MAGIC,
            VERSION,
            SCHEME_CODES[self.scheme],
            self.k,
            self.m,
            self.position,
            0,
            self.group & 0xFFFFFFFF,
            self.index & 0xFFFFFFFF,
            len(self.payload),
            zlib.crc32(self.payload),
        )
        return head + _CRC.pack(zlib.crc32(head)) + self.payload

    @classmethod
    def parse(cls, data: bytes) -> Envelope:
        """Raises :class:`DatagramError` when the header cannot be trusted; a damaged payload under a
        sound header parses with ``intact=False`` and the bytes as received."""
        if len(data) < ENVELOPE_HEADER_LENGTH:
            raise DatagramError(
                f"datagram has {len(data)} bytes, shorter than the {ENVELOPE_HEADER_LENGTH}-byte envelope"
            )
        head = data[: _FIELDS.size]
        (crc,) = _CRC.unpack_from(data, _FIELDS.size)
        if crc != zlib.crc32(head):
            raise DatagramError("envelope header CRC mismatch")
        magic, version, scheme, k, m, position, _flags, group, index, length, payload_crc = _FIELDS.unpack(
            head
        )
        if magic != MAGIC:
            raise DatagramError(f"envelope magic is {magic!r}, expected {MAGIC!r}")
        if version != VERSION:
            raise DatagramError(f"envelope version {version} is not supported (expected {VERSION})")
        if scheme not in SCHEME_NAMES:
            raise DatagramError(
                f"envelope scheme code {scheme} is unknown; allowed 0..{len(SCHEME_NAMES) - 1}"
            )
        if k < 1 or position >= k + m:
            raise DatagramError(f"envelope position {position} is outside k={k} + m={m}")
        payload = data[ENVELOPE_HEADER_LENGTH:]
        intact = len(payload) == length and zlib.crc32(payload) == payload_crc
        return cls(SCHEME_NAMES[scheme], k, m, position, group, index, payload, intact)

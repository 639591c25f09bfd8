"""Fragmentation over an MTU and all-or-nothing reassembly.

A packet longer than ``mtu`` bytes travels as ``ceil(len / mtu)`` datagrams, each ``mtu`` payload
bytes (the last one shorter) behind a :class:`FragmentHeader`. ``mtu`` counts payload bytes only;
the header rides on top. Packets that fit travel unchanged, with no header.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from netsim.datagram import Delivery
from netsim.errors import DatagramError
from netsim.stage import Stage, StageRun
from netsim.validate import integer

FRAGMENT_MAGIC = 0xF7
_HEADER = struct.Struct(">BHHI")  # magic, fragment index, fragment count, packet index
_CHECK = struct.Struct(">H")
FRAGMENT_HEADER_LENGTH = _HEADER.size + _CHECK.size  # 11 bytes
MAX_FRAGMENTS = 0xFFFF
DEFAULT_MTU = 1200


@dataclass(frozen=True)
class FragmentHeader:
    """Header in front of every fragment; a 16-bit CRC over the header lets a damaged one be discarded
    (as a real stack discards a datagram whose header checksum fails)."""

    index: int
    """Position of this fragment in its packet, 0-based."""
    count: int
    """Number of fragments of the packet (>= 2)."""
    packet: int
    """Index of the packet in the sender's sequence, modulo 2**32."""

    def to_bytes(self) -> bytes:
        head = _HEADER.pack(FRAGMENT_MAGIC, self.index, self.count, self.packet & 0xFFFFFFFF)
        return head + _CHECK.pack(zlib.crc32(head) & 0xFFFF)

    @classmethod
    def parse(cls, data: bytes) -> FragmentHeader:
        if len(data) < FRAGMENT_HEADER_LENGTH:
            raise DatagramError(
                f"fragment has {len(data)} bytes, shorter than its {FRAGMENT_HEADER_LENGTH}-byte header"
            )
        head = data[: _HEADER.size]
        magic, index, count, packet = _HEADER.unpack(head)
        if magic != FRAGMENT_MAGIC:
            raise DatagramError(f"fragment magic is 0x{magic:02x}, expected 0x{FRAGMENT_MAGIC:02x}")
        (check,) = _CHECK.unpack_from(data, _HEADER.size)
        if check != zlib.crc32(head) & 0xFFFF:
            raise DatagramError("fragment header check failed")
        if not 0 <= index < count or count < 2:
            raise DatagramError(f"fragment index {index} of {count} is impossible")
        return cls(index, count, packet)


class Fragmenter(Stage):
    """Split packets longer than ``mtu`` payload bytes into fragments (deterministic, no randomness)."""

    name = "fragmenter"

    def __init__(self, mtu: int = DEFAULT_MTU) -> None:
        self.mtu = integer("mtu", mtu, 16, 1 << 24)

    def split(self, d: Delivery) -> list[Delivery]:
        n = len(d.data)
        if n <= self.mtu:
            return [d]
        count = math.ceil(n / self.mtu)
        if count > MAX_FRAGMENTS:
            raise DatagramError(
                f"packet {d.index} of {n} bytes needs {count} fragments; at most {MAX_FRAGMENTS}"
            )
        return [
            replace(
                d,
                data=FragmentHeader(i, count, d.index).to_bytes() + d.data[i * self.mtu : (i + 1) * self.mtu],
                fragment=(i, count),
            )
            for i in range(count)
        ]

    def open(self, rng: np.random.Generator) -> StageRun:
        return _FragmentRun(self)


class _FragmentRun(StageRun):
    def __init__(self, fragmenter: Fragmenter) -> None:
        self.f = fragmenter

    def push(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        return [frag for d in deliveries for frag in self.f.split(d)]


class Reassembler(Stage):
    """Rebuild fragmented packets; a packet comes out only when every one of its fragments arrived.

    Datagrams without ``fragment`` pass through. A fragment whose header fails its check is
    discarded (counted in :attr:`discarded` of the run). If each fragment arrived twice (duplicates),
    the packet is rebuilt twice, the second copy flagged ``duplicate``: copy ``c`` is made of the
    ``c``-th arrival of every fragment. A rebuilt packet arrives with its last fragment and carries the
    union of its fragments' damage flags. ``max_pending`` bounds how many incomplete packets a long
    session remembers (the oldest are forgotten first).
    """

    name = "reassembler"

    def __init__(self, max_pending: int = 4096) -> None:
        self.max_pending = integer("max_pending", max_pending, 1)

    def open(self, rng: np.random.Generator) -> StageRun:
        return ReassemblyRun(self.max_pending)


class ReassemblyRun(StageRun):
    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self.pending: dict[
            tuple[int, int], list[list[Delivery]]
        ] = {}  # (packet, count) -> copies per fragment
        self.built: dict[tuple[int, int], int] = {}
        self.discarded = 0

    def push(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        out = []
        for d in deliveries:
            if d.fragment is None:
                out.append(d)
                continue
            try:
                h = FragmentHeader.parse(d.data)
            except DatagramError:
                self.discarded += 1
                continue
            key = (h.packet, h.count)
            slots = self.pending.setdefault(key, [[] for _ in range(h.count)])
            slots[h.index].append(d)
            copies = min(len(s) for s in slots)
            while self.built.get(key, 0) < copies:
                c = self.built.get(key, 0)
                out.append(self._join([s[c] for s in slots], c > 0))
                self.built[key] = c + 1
            if len(self.pending) > self.max_pending:
                oldest = next(iter(self.pending))
                del self.pending[oldest]
                self.built.pop(oldest, None)
        return out

    @staticmethod
    def _join(parts: list[Delivery], extra_copy: bool) -> Delivery:
        last = max(parts, key=lambda p: p.arrival_time)
        return Delivery(
            data=b"".join(p.data[FRAGMENT_HEADER_LENGTH:] for p in parts),
            send_time=min(p.send_time for p in parts),
            arrival_time=last.arrival_time,
            index=parts[0].index,
            corrupted=any(p.corrupted for p in parts),
            truncated=any(p.truncated for p in parts),
            duplicate=extra_copy or all(p.duplicate for p in parts),
            fragment=None,
        )

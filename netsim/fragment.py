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
from dataclasses import dataclass, field, replace

import numpy as np

from netsim.datagram import Delivery
from netsim.errors import ChannelConfigError, DatagramError
from netsim.stage import Stage, StageRun
from netsim.validate import integer

FRAGMENT_MAGIC = 0xF7
_HEADER = struct.Struct(">BHHI")  # magic, fragment index, fragment count, packet index
_CHECK = struct.Struct(">H")
FRAGMENT_HEADER_LENGTH = _HEADER.size + _CHECK.size  # 11 bytes
MAX_FRAGMENTS = 0xFFFF
"""Most fragments of one packet (the header's 16-bit count)."""
DEFAULT_MTU = 1200
MIN_MTU = 16
MAX_MTU = 1 << 24
DEFAULT_MAX_PENDING = 4096
DEFAULT_MAX_PENDING_BYTES = 256 * 2**20
FRAGMENT_OVERHEAD = 200
"""Bytes a held fragment costs beyond its data (its Delivery and list slot), for the memory bound."""


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
        self.mtu = integer("mtu", mtu, MIN_MTU, MAX_MTU)

    def split(self, d: Delivery) -> list[Delivery]:
        n = len(d.data)
        if n <= self.mtu:
            return [d]
        count = math.ceil(n / self.mtu)
        if count > MAX_FRAGMENTS:
            # A packet too big for this MTU is a channel option the caller can change, not bad bytes.
            smallest = max(MIN_MTU, math.ceil(n / MAX_FRAGMENTS))
            raise ChannelConfigError(
                f"mtu={self.mtu} would cut packet {d.index} of {n} bytes into {count} fragments, more than "
                f"the {MAX_FRAGMENTS} a fragment header can count; allowed for this packet: mtu >= {smallest} "
                f"(up to {MAX_MTU}) or 0 for no fragmentation"
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
    union of its fragments' damage flags.

    Work and memory are bounded whatever arrives: each fragment costs O(1) amortised (a packet is
    complete when its count of filled slots reaches its fragment count; slots are only rescanned when
    a copy is rebuilt, once per ``count`` fragments), only slots that hold a fragment exist (a forged
    count of 65535 allocates nothing), and at most ``max_pending`` packets and ``max_pending_bytes``
    bytes of fragments are held: past either bound the oldest incomplete packets are forgotten.
    """

    name = "reassembler"

    def __init__(
        self, max_pending: int = DEFAULT_MAX_PENDING, max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES
    ) -> None:
        self.max_pending = integer("max_pending", max_pending, 1)
        self.max_pending_bytes = integer("max_pending_bytes", max_pending_bytes, 1)

    def open(self, rng: np.random.Generator) -> StageRun:
        return ReassemblyRun(self.max_pending, self.max_pending_bytes)


@dataclass
class _Partial:
    """The fragments of one packet that have not gone into a rebuilt copy yet."""

    count: int
    slots: dict[int, list[Delivery]] = field(default_factory=dict)
    """Fragment index -> arrivals not used yet, oldest first; only non-empty lists are kept."""
    built: int = 0
    """Copies rebuilt so far."""
    held: int = 0
    """Bytes held (data plus ``FRAGMENT_OVERHEAD`` per fragment)."""


class ReassemblyRun(StageRun):
    def __init__(
        self, max_pending: int = DEFAULT_MAX_PENDING, max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES
    ) -> None:
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.pending: dict[tuple[int, int], _Partial] = {}  # (packet, count) -> its fragments, oldest first
        self.held = 0
        """Bytes of fragments held now (see :attr:`_Partial.held`)."""
        self.discarded = 0
        """Fragments whose header failed its check."""
        self.forgotten = 0
        """Incomplete packets dropped to respect ``max_pending`` / ``max_pending_bytes``."""
        self.slot_visits = 0
        """Slot operations so far: one per fragment plus ``count`` per rebuilt copy, so O(fragments)."""

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
            part = self.pending.get(key)
            if part is None:
                part = self.pending[key] = _Partial(h.count)
            part.slots.setdefault(h.index, []).append(d)
            size = len(d.data) + FRAGMENT_OVERHEAD
            part.held += size
            self.held += size
            self.slot_visits += 1
            if len(part.slots) == part.count:  # every fragment has an unused arrival: one more copy
                out.append(self._rebuild(part))
            self._bound(key)
        return out

    def _rebuild(self, part: _Partial) -> Delivery:
        parts = [part.slots[i].pop(0) for i in range(part.count)]
        part.slots = {i: s for i, s in part.slots.items() if s}
        used = sum(len(p.data) + FRAGMENT_OVERHEAD for p in parts)
        part.held -= used
        self.held -= used
        self.slot_visits += part.count
        copy = self._join(parts, part.built > 0)
        part.built += 1
        return copy

    def _bound(self, newest: tuple[int, int]) -> None:
        """Forget the oldest packets while over a bound, the one just fed last of all."""
        while len(self.pending) > self.max_pending or self.held > self.max_pending_bytes:
            victim = next((k for k in self.pending if k != newest), None)
            if victim is None:  # the newest packet alone is over the byte bound: it cannot be rebuilt
                victim = newest
            part = self.pending.pop(victim)
            self.held -= part.held
            self.forgotten += part.built == 0
            if victim == newest:
                return

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

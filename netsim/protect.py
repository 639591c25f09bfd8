"""Unequal error protection across packets: repetition, XOR parity and Reed-Solomon-style erasure codes.

A :class:`ProtectionPlan` gives each packet index a :class:`Scheme`. :func:`encode` wraps every packet
in an :class:`~netsim.envelope.Envelope` (CRC-protected) and adds the redundancy; the result is what
goes on the wire, with its cost in bytes. On the receiving side :class:`Decoder` (or :func:`recover`)
checks each datagram's CRCs, treats damaged ones as lost (or, with ``use_corrupted``, hands over a
damaged payload flagged when nothing better arrives) and rebuilds lost packets from redundancy.

Groups: packets sharing a group scheme (``xor:k`` or ``rs:k:m``) are grouped in index order, ``k`` at a
time (the last group may be smaller). Each data row of a group is ``[uint32 length][payload]`` padded
with zeros to the longest row, so a rebuilt packet has its exact length. A parity datagram carries
the group's packet indices (``k`` uint32) and then its coded row. ``xor:k`` recovers one loss per
group, ``rs:k:m`` any ``m`` (see :mod:`netsim.gf256`), ``repeat:n`` survives ``n - 1`` lost copies.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from netsim import gf256
from netsim.datagram import Delivery
from netsim.envelope import ENVELOPE_HEADER_LENGTH, PARITY_INDEX, Envelope
from netsim.errors import ChannelConfigError, DatagramError
from netsim.validate import integer

_LEN = struct.Struct(">I")
MAX_GROUP = 255  # k, m and positions travel in one byte each


@dataclass(frozen=True)
class Scheme:
    """A protection class. Build with :meth:`none`, :meth:`repeat`, :meth:`xor`, :meth:`rs` or :meth:`parse`."""

    kind: str
    """``none``, ``repeat``, ``xor`` or ``rs``."""
    k: int = 1
    """Data packets per group (1 for none and repeat)."""
    m: int = 0
    """Redundant datagrams per group: parity rows, or extra copies for repeat."""

    @classmethod
    def none(cls) -> Scheme:
        return cls("none")

    @classmethod
    def repeat(cls, n: int) -> Scheme:
        """Send ``n`` copies of the packet."""
        return cls("repeat", 1, integer("repeat copies", n, 1, MAX_GROUP) - 1)

    @classmethod
    def xor(cls, k: int) -> Scheme:
        """One XOR parity datagram per ``k`` packets."""
        return cls("xor", integer("xor group size k", k, 1, MAX_GROUP - 1), 1)

    @classmethod
    def rs(cls, k: int, m: int) -> Scheme:
        """``m`` erasure-code parity datagrams per ``k`` packets."""
        k = integer("rs data packets k", k, 1, MAX_GROUP)
        m = integer("rs parity packets m", m, 0, MAX_GROUP)
        if k + m > MAX_GROUP + 1:
            raise ChannelConfigError(f"rs:{k}:{m} has k + m = {k + m}; allowed k + m <= {MAX_GROUP + 1}")
        return cls("rs", k, m)

    @classmethod
    def parse(cls, text: str | Scheme) -> Scheme:
        """``none``, ``repeat:N``, ``xor:K`` or ``rs:K:M`` (a Scheme passes through)."""
        if isinstance(text, Scheme):
            return text
        if not isinstance(text, str):
            raise ChannelConfigError(f"a protection scheme is a string like 'rs:8:2', got {text!r}")
        kind, *args = text.strip().lower().split(":")
        arity = {"none": 0, "repeat": 1, "xor": 1, "rs": 2}
        if kind not in arity or len(args) != arity[kind]:
            raise ChannelConfigError(
                f"protection scheme {text!r} is not one of none, repeat:N, xor:K, rs:K:M"
            )
        try:
            numbers = [int(a) for a in args]
        except ValueError:
            raise ChannelConfigError(f"protection scheme {text!r} has a non-integer parameter") from None
        makers: dict[str, Callable[..., Scheme]] = {
            "none": cls.none,
            "repeat": cls.repeat,
            "xor": cls.xor,
            "rs": cls.rs,
        }
        return makers[kind](*numbers)

    @property
    def grouped(self) -> bool:
        return self.kind in ("xor", "rs")

    def __str__(self) -> str:
        return {
            "none": "none",
            "repeat": f"repeat:{self.m + 1}",
            "xor": f"xor:{self.k}",
            "rs": f"rs:{self.k}:{self.m}",
        }[self.kind]


def parse_scheme(text: str | Scheme) -> Scheme:
    """Module-level alias of :meth:`Scheme.parse`."""
    return Scheme.parse(text)


@dataclass
class ProtectionPlan:
    """Which scheme protects which packet index."""

    default: Scheme = field(default_factory=Scheme.none)
    """Scheme of every index not in ``overrides``."""
    overrides: Mapping[int, Scheme] = field(default_factory=dict)
    """Per-index schemes (the critical packets of an unequal plan)."""
    spread: int = 4
    """Extra copy ``c`` of a repeated packet ``i`` goes out after data packet ``i + c * spread``, so that
    a loss burst shorter than ``spread`` cannot take every copy. 0: copies back to back."""

    def __post_init__(self) -> None:
        self.default = Scheme.parse(self.default)
        self.overrides = {integer("packet index", i, 0): Scheme.parse(s) for i, s in self.overrides.items()}
        self.spread = integer("spread", self.spread, 0, 1 << 20)

    def scheme_for(self, index: int) -> Scheme:
        return self.overrides.get(index, self.default)

    @classmethod
    def uniform(cls, scheme: str | Scheme, spread: int = 4) -> ProtectionPlan:
        return cls(Scheme.parse(scheme), {}, spread)

    @classmethod
    def unequal(
        cls,
        n_packets: int,
        critical: Iterable[int] = (0, 1, 2),
        critical_scheme: str | Scheme = "repeat:3",
        rest_scheme: str | Scheme = "none",
        spread: int = 4,
    ) -> ProtectionPlan:
        """``critical_scheme`` for the listed indices, ``rest_scheme`` for every other one."""
        n = integer("n_packets", n_packets, 0)
        crit = sorted(set(critical))
        bad = [i for i in crit if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n]
        if bad:
            raise ChannelConfigError(f"critical indices {bad} are out of range; allowed 0..{n - 1}")
        strong = Scheme.parse(critical_scheme)
        return cls(Scheme.parse(rest_scheme), dict.fromkeys(crit, strong), spread)


@dataclass(frozen=True)
class Encoded(Sequence[bytes]):
    """What :func:`encode` puts on the wire, a sequence of datagrams, and what that costs."""

    wire: list[bytes]
    payload_bytes: int
    """Bytes of the original packets."""
    overhead_by_scheme: dict[str, int]
    """Extra bytes (envelopes, copies, parity) spent per scheme, e.g. ``{"repeat:3": 2100}``."""

    @property
    def wire_bytes(self) -> int:
        return sum(len(w) for w in self.wire)

    @property
    def overhead_bytes(self) -> int:
        """Wire bytes minus payload bytes: every envelope, copy and parity datagram."""
        return self.wire_bytes - self.payload_bytes

    @property
    def overhead_ratio(self) -> float:
        """``overhead_bytes / payload_bytes`` (0.0 for no payload)."""
        return self.overhead_bytes / self.payload_bytes if self.payload_bytes else 0.0

    def __len__(self) -> int:
        return len(self.wire)

    @overload
    def __getitem__(self, i: int) -> bytes: ...
    @overload
    def __getitem__(self, i: slice) -> list[bytes]: ...
    def __getitem__(self, i: int | slice) -> bytes | list[bytes]:
        return self.wire[i]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.wire)


def _row(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


def _pad(rows: Sequence[bytes], width: int) -> list[np.ndarray]:
    return [np.frombuffer(r.ljust(width, b"\0"), dtype=np.uint8) for r in rows]


def encode(packets: Sequence[bytes], plan: ProtectionPlan | str | Scheme | None = None) -> Encoded:
    """Wrap and protect ``packets`` according to ``plan`` (a plan, or one scheme for all)."""
    if plan is None or isinstance(plan, (str, Scheme)):
        plan = ProtectionPlan.uniform(plan or "none")
    packets = [bytes(p) for p in packets]
    keyed: list[tuple[float, int, bytes]] = []  # (position in the send order, tie-break, datagram)
    overhead: dict[str, int] = {}
    group_id = 0

    def emit(position: float, env: Envelope, scheme: Scheme, payload_len: int) -> None:
        data = env.to_bytes()
        keyed.append((position, len(keyed), data))
        overhead[str(scheme)] = overhead.get(str(scheme), 0) + len(data) - payload_len

    open_groups: dict[Scheme, list[int]] = {}
    closed: list[tuple[Scheme, list[int]]] = []
    for i, payload in enumerate(packets):
        scheme = plan.scheme_for(i)
        if scheme.grouped:
            members = open_groups.setdefault(scheme, [])
            members.append(i)
            if len(members) == scheme.k:
                closed.append((scheme, open_groups.pop(scheme)))
            continue
        gid, group_id = group_id, group_id + 1
        for c in range(scheme.m + 1):  # none: m = 0, one datagram
            position = i + (c * plan.spread + 0.25 if c else 0)
            emit(
                position,
                Envelope(scheme.kind, 1, scheme.m, c, gid, i, payload),
                scheme,
                0 if c else len(payload),
            )
    closed += list(open_groups.items())
    for scheme, members in sorted(closed, key=lambda g: g[1][0]):
        gid, group_id = group_id, group_id + 1
        k = len(members)
        for pos, i in enumerate(members):
            emit(i, Envelope(scheme.kind, k, scheme.m, pos, gid, i, packets[i]), scheme, len(packets[i]))
        rows = [_row(packets[i]) for i in members]
        data = _pad(rows, max(len(r) for r in rows))
        parity = [np.bitwise_xor.reduce(data)] if scheme.kind == "xor" else gf256.encode(data, scheme.m)
        index_list = struct.pack(f">{k}I", *members)
        for p, row in enumerate(parity):
            env = Envelope(scheme.kind, k, scheme.m, k + p, gid, PARITY_INDEX, index_list + row.tobytes())
            emit(members[-1] + 0.5, env, scheme, 0)
    keyed.sort(key=lambda t: (t[0], t[1]))
    return Encoded([w for _, _, w in keyed], sum(len(p) for p in packets), overhead)


@dataclass
class Recovery:
    """What the receiver got back."""

    packets: dict[int, bytes]
    """Original packets by index: received intact, rebuilt from redundancy, or (``flagged``) damaged."""
    flagged: set[int]
    """Indices whose bytes are a damaged copy (only with ``use_corrupted``)."""
    recovered: set[int]
    """Indices rebuilt from parity (none of their own datagrams arrived intact)."""
    stats: dict[str, int]
    """datagrams, intact, header_errors, payload_errors, duplicates, recovered, flagged, delivered."""


@dataclass
class _Group:
    scheme: str
    k: int
    m: int
    rows: dict[int, bytes] = field(
        default_factory=dict
    )  # position -> row bytes (length-prefixed data, or coded)
    members: list[int] | None = None
    done: bool = False


class Decoder:
    """Incremental receiver: :meth:`feed` datagrams in arrival order, read :meth:`result` at the end."""

    def __init__(self, use_corrupted: bool = False) -> None:
        self.use_corrupted = use_corrupted
        """Hand over a damaged payload (flagged) when no intact copy or rebuild exists."""
        self.packets: dict[int, bytes] = {}
        self.recovered: set[int] = set()
        self._damaged: dict[int, bytes] = {}
        self._groups: dict[int, _Group] = {}
        self.stats = dict.fromkeys(
            ("datagrams", "intact", "header_errors", "payload_errors", "duplicates", "recovered"), 0
        )

    def feed(self, datagram: Delivery | bytes) -> list[int]:
        """Take one datagram; returns the indices that became available because of it."""
        data = datagram.data if isinstance(datagram, Delivery) else bytes(datagram)
        self.stats["datagrams"] += 1
        try:
            env = Envelope.parse(data)
        except DatagramError:
            self.stats["header_errors"] += 1
            return []
        if not env.intact:
            self.stats["payload_errors"] += 1
            if not env.is_parity:
                self._damaged.setdefault(env.index, env.payload)
            return []
        self.stats["intact"] += 1
        if env.scheme in ("none", "repeat"):
            return self._accept(env.index, env.payload)
        group = self._groups.setdefault(env.group, _Group(env.scheme, env.k, env.m))
        if env.is_parity:
            if len(env.payload) < 4 * env.k + _LEN.size:
                self.stats["payload_errors"] += 1
                return []
            members = struct.unpack_from(f">{env.k}I", env.payload)
            group.members = list(members)
            group.rows.setdefault(env.position, env.payload[4 * env.k :])
            new = []
        else:
            group.rows.setdefault(env.position, _row(env.payload))
            new = self._accept(env.index, env.payload)
        return new + self._rebuild(group)

    def _accept(self, index: int, payload: bytes) -> list[int]:
        if index in self.packets:
            self.stats["duplicates"] += 1
            return []
        self.packets[index] = payload
        return [index]

    def _rebuild(self, g: _Group) -> list[int]:
        have_data = [p for p in g.rows if p < g.k]
        if g.done or g.members is None or len(have_data) == g.k or len(g.rows) < g.k:
            return []
        width = max(len(r) for p, r in g.rows.items() if p >= g.k)
        if any(len(r) > width for r in g.rows.values()):
            return []  # inconsistent group (cannot happen for CRC-clean datagrams of one encode)
        rows = dict(zip(g.rows, _pad(list(g.rows.values()), width), strict=True))
        if g.scheme == "xor":
            missing = next(p for p in range(g.k) if p not in rows)
            rows[missing] = np.bitwise_xor.reduce([rows[p] for p in range(g.k + 1) if p in rows])
            data = [rows[p] for p in range(g.k)]
        else:
            data = gf256.decode(g.k, g.m, rows)
        g.done = True
        new = []
        for pos in range(g.k):
            if pos in have_data:
                continue
            block = data[pos].tobytes()
            (length,) = _LEN.unpack_from(block)
            if length > len(block) - _LEN.size:
                continue
            index = g.members[pos]
            if index not in self.packets:
                self.recovered.add(index)
                self.stats["recovered"] += 1
                new += self._accept(index, block[_LEN.size : _LEN.size + length])
        return new

    def result(self) -> Recovery:
        packets = dict(self.packets)
        flagged = set()
        if self.use_corrupted:
            for index, payload in self._damaged.items():
                if index not in packets:
                    packets[index] = payload
                    flagged.add(index)
        stats: dict[str, Any] = dict(self.stats, flagged=len(flagged), delivered=len(packets))
        return Recovery(dict(sorted(packets.items())), flagged, set(self.recovered), stats)


def recover(received: Iterable[Delivery | bytes], use_corrupted: bool = False) -> Recovery:
    """Decode everything received (any order) in one call; see :class:`Decoder`."""
    decoder = Decoder(use_corrupted)
    for item in received:
        decoder.feed(item)
    return decoder.result()


__all__ = [
    "ENVELOPE_HEADER_LENGTH",
    "Decoder",
    "Encoded",
    "ProtectionPlan",
    "Recovery",
    "Scheme",
    "encode",
    "parse_scheme",
    "recover",
]

"""What a generator of hostile inputs for one format version provides; the registry of them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from fuzz.source import Source


@dataclass(frozen=True)
class Case:
    """One generated input: a whole ``.spnr`` file's bytes and how it was made."""

    data: bytes
    family: str
    note: str
    """The mutations applied, e.g. ``"header: units[1].tensors[0][1][0] = 65535"``."""


class FormatGenerator(ABC):
    """Hostile inputs for one format version, by mutation family."""

    version: ClassVar[int]
    families: ClassVar[dict[str, float]]
    """Family name -> weight in a long run."""
    reach_forward: ClassVar[frozenset[str]]
    """Families whose inputs can parse into a header and units that do not fit the architecture, so
    decoding reaches the numpy forward pass (``codec/arch*.py``): the short run in the default suite
    keeps those to the parsing entry points."""

    @abstractmethod
    def generate(self, src: Source, family: str) -> Case:
        """One input of ``family``."""

    def pick_family(self, src: Source, allowed: tuple[str, ...] | None = None) -> str:
        names = [f for f in self.families if allowed is None or f in allowed]
        total = sum(self.families[f] for f in names)
        x = src.integer(0, 10**6 - 1) / 10**6 * total
        for f in names:
            x -= self.families[f]
            if x < 0:
                return f
        return names[-1]


GENERATORS: dict[int, type[FormatGenerator]] = {}


def register(cls: type[FormatGenerator]) -> type[FormatGenerator]:
    GENERATORS[cls.version] = cls
    return cls


def mutate_bytes(src: Source, data: bytes) -> tuple[bytes, str]:
    """1-4 byte-level edits of a whole file (flips, truncation, insertions, deletions, overwrites,
    appended garbage): the ``bytes`` family of every format."""
    out, notes = bytearray(data), []
    for _ in range(src.integer(1, 4)):
        op = src.integer(0, 5)
        i = src.integer(0, max(0, len(out) - 1))
        if op == 0 and out:  # an earlier truncation may have left nothing to flip
            out[i] ^= 1 << src.integer(0, 7)
            notes.append(f"flip byte {i}")
        elif op == 1:
            del out[i:]
            notes.append(f"truncate at {i}")
        elif op == 2:
            out[i:i] = src.blob(src.integer(1, 16))
            notes.append(f"insert at {i}")
        elif op == 3:
            del out[i : i + src.integer(1, 16)]
            notes.append(f"delete at {i}")
        elif op == 4:
            n = src.integer(1, 8)
            out[i : i + n] = src.blob(n)
            notes.append(f"overwrite at {i}")
        else:
            out += src.blob(src.integer(1, 32))
            notes.append("append")
    return bytes(out), ", ".join(notes)


def edit_packets(src: Source, op: int, packets: list[bytes], other: list[bytes], name: str) -> str | None:
    """One edit of a stream's packet list in place, shared by the formats' packet families: ``op`` 0
    drops one, 1 duplicates one, 2 shuffles them, 3 inserts a packet of ``other`` (another seed's
    stream, ``name``), 4 a second header (``other``'s), 5 leaves the header alone or nothing. Returns a
    note, or None for an ``op`` this does not handle (the format's own edits)."""
    i = src.integer(0, max(0, len(packets) - 1))
    if op == 0 and packets:
        del packets[i]
        return f"drop {i}"
    if op == 1 and packets:
        packets.insert(src.integer(0, len(packets)), packets[i])
        return f"duplicate {i}"
    if op == 2:
        order = sorted(range(len(packets)), key=lambda _: src.integer(0, 1 << 30))
        packets[:] = [packets[j] for j in order]
        return "shuffle"
    if op == 3:
        packets.insert(src.integer(0, len(packets)), src.choice(other))
        return f"packet of {name}"
    if op == 4:
        packets.insert(src.integer(1, max(1, len(packets))), other[0])
        return f"second header from {name}"
    if op == 5:
        packets[:] = packets[:1] if src.chance(0.5) else []
        return "header only" if packets else "empty"
    return None


def generator(version: int) -> FormatGenerator:
    import fuzz.v1  # noqa: F401  (registers format 1)
    import fuzz.v2  # noqa: F401  (registers format 2)

    if version not in GENERATORS:
        raise ValueError(f"no fuzz generator for format version {version}; have {sorted(GENERATORS)}")
    return GENERATORS[version]()

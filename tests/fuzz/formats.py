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


def generator(version: int) -> FormatGenerator:
    import fuzz.v1  # noqa: F401  (registers format 1)

    if version not in GENERATORS:
        raise ValueError(f"no fuzz generator for format version {version}; have {sorted(GENERATORS)}")
    return GENERATORS[version]()

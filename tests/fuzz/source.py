"""One interface for randomness, so the same generators serve a seeded long run and hypothesis."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Source(Protocol):
    def integer(self, lo: int, hi: int) -> int:
        """Uniform in ``[lo, hi]``."""

    def choice(self, options: Sequence[T]) -> T: ...

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""

    def blob(self, n: int) -> bytes:
        """``n`` random bytes (drawn from one seed, so large blobs stay cheap for hypothesis)."""


class RandomSource:
    """A seeded ``random.Random``: the long run, reproducible from its seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def blob(self, n: int) -> bytes:
        return self.rng.randbytes(n)


class DrawSource:
    """hypothesis's ``data`` object (``@given(st.data())``): failing inputs are shrunk and replayed."""

    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def choice(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]

    def chance(self, p: float) -> bool:
        return self.integer(0, 999) < int(p * 1000)

    def blob(self, n: int) -> bytes:
        return random.Random(self.integer(0, 2**32)).randbytes(n)

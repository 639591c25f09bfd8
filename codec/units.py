"""Units: the named groups of tensors that travel one packet each, and the limits on them.

In format v2 a stream never transmits its units: each model family's torch-free module
(``codec/arch/<family>.py``) derives them from the header's arch (names, tensor names, shapes), so a
tensor can never disagree with the forward pass that reads it. A v1 header still lists its units; it
is refused unless they are exactly the ones its arch implies (:func:`check_units`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from codec.errors import BitstreamError

MAX_UNITS = 1024
MAX_TENSORS_PER_UNIT = 64
MAX_TENSOR_ELEMENTS = 2**24
MAX_TOTAL_ELEMENTS = 2**26
"""All tensors of a stream together: a decoder never allocates more weights than this."""
MAX_NDIM = 8
MAX_NAME_LEN = 64

Shape = tuple[int, ...]
TensorSpec = tuple[str, Shape]


@dataclass(frozen=True)
class UnitSpec:
    name: str
    tensors: tuple[TensorSpec, ...]
    """(tensor name, shape) in packet order."""

    @property
    def sizes(self) -> list[int]:
        return [math.prod(shape) for _, shape in self.tensors]

    def describe(self) -> str:
        return f"{self.name!r} with " + ", ".join(f"{n}{list(s)}" for n, s in self.tensors)


def linear(prefix: str, out: int, inp: int) -> tuple[TensorSpec, TensorSpec]:
    """A linear layer's tensors: ``{prefix}weight`` (out, inp) and ``{prefix}bias`` (out)."""
    return (f"{prefix}weight", (out, inp)), (f"{prefix}bias", (out,))


def check_sizes(units: Sequence[UnitSpec], what: str) -> None:
    """Counts and sizes within the limits above (BitstreamError naming the first that is not)."""
    if not 1 <= len(units) <= MAX_UNITS:
        raise BitstreamError(f"{what} has {len(units)} units; allowed 1..{MAX_UNITS}")
    total = 0
    for u in units:
        if not 1 <= len(u.tensors) <= MAX_TENSORS_PER_UNIT:
            raise BitstreamError(
                f"{what} unit {u.name!r} has {len(u.tensors)} tensors; allowed 1..{MAX_TENSORS_PER_UNIT}"
            )
        for (name, _), size in zip(u.tensors, u.sizes, strict=True):
            if size > MAX_TENSOR_ELEMENTS:
                raise BitstreamError(
                    f"{what} tensor {u.name}/{name} has {size} elements, more than {MAX_TENSOR_ELEMENTS}"
                )
            total += size
    if total > MAX_TOTAL_ELEMENTS:
        raise BitstreamError(f"{what} holds {total} weights in all, more than {MAX_TOTAL_ELEMENTS}")


def check_units(given: Sequence[UnitSpec], derived: Sequence[UnitSpec], arch_name: str) -> None:
    """A v1 header's transmitted units must be exactly those its arch implies, in order."""
    if len(given) != len(derived):
        raise BitstreamError(f"header has {len(given)} units but {arch_name} needs {len(derived)}")
    for i, (g, d) in enumerate(zip(given, derived, strict=True)):
        if g != d:
            raise BitstreamError(f"header unit {i} is {g.describe()}; {arch_name} needs {d.describe()}")

"""The numpy forward's interface and registry: a model family's units, arch record and decode.

A family module derives the stream's units from the header's arch (:meth:`ArchDecoder.units`: names,
tensor names, shapes; format v2 never transmits them), declares the fields of its arch record
(``RECORD``, :mod:`codec.arch.records`) and runs the decode as ``h = trunk(0, coords)``, ``h =
trunk(k, h)`` for the stages used, then ``readout(depth, h)``. Splitting it that way lets the
progressive decoder cache ``h`` and pay one layer per new packet. No torch here: this is what a
decoder-only install runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np

from codec.arch.records import Field, read_record, write_record
from codec.budget import activation_work
from codec.errors import BitstreamError
from codec.units import UnitSpec, check_sizes, check_units
from codec.units import linear as linear_spec
from codec.varint import Reader

if TYPE_CHECKING:
    from codec.tiles import Workspace

Params = Mapping[int, Mapping[str, np.ndarray]]
"""Dequantized tensors by unit index, then tensor name."""


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return x @ w.T + b


def arch_field(arch: Mapping[str, Any], key: str, kind: type, lo: float, hi: float) -> Any:
    """``arch[key]`` checked to be a ``kind`` (an int is accepted as a float) in ``lo..hi``."""
    value = arch.get(key)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) or not lo <= cast(float, value) <= hi:
        raise BitstreamError(
            f"header arch field {key!r} is {value!r}; expected {kind.__name__} in {lo}..{hi}"
        )
    return value


def arch_choice(arch: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    """``arch[key]`` checked to be one of ``choices``."""
    value = arch.get(key)
    if value not in choices:
        allowed = " or ".join(repr(c) for c in choices)
        raise BitstreamError(f"header arch field {key!r} is {value!r}; expected {allowed}")
    return cast(str, value)


class ArchDecoder:
    """How to run one model family from its header's ``arch``; subclasses registered by model name."""

    model: ClassVar[str] = ""
    model_id: ClassVar[int] = -1
    progressive: ClassVar[bool] = False
    RECORD: ClassVar[tuple[Field, ...]] = ()
    """The fields of the family's arch, in order: its v2 header record and its v1 arch map keys."""

    def __init__(self, arch: Mapping[str, Any]) -> None:
        self.arch = arch
        self.width = arch_field(arch, "width", int, 1, 4096)
        self.hidden = arch_field(arch, "hidden_layers", int, 0, 256)

    def units(self) -> list[UnitSpec]:
        """The stream's units as this arch implies them, in packet order."""
        raise NotImplementedError

    def describe(self) -> str:
        """The arch in a few words, for error messages."""
        return f"{self.model} (width {self.width}, {self.hidden} hidden layers)"

    @property
    def depths(self) -> int:
        """Number of prefix depths that decode (1 when all units are needed)."""
        return 1

    def trunk_units(self, k: int) -> list[int]:
        """Units needed for trunk step k (step 0 consumes the coordinates)."""
        raise NotImplementedError

    def readout_units(self, depth: int) -> list[int]:
        raise NotImplementedError

    def trunk(self, k: int, h: np.ndarray, p: Params) -> np.ndarray:
        raise NotImplementedError

    def readout(self, depth: int, h: np.ndarray, p: Params) -> np.ndarray:
        raise NotImplementedError

    # -- tiled decoding (codec/tiles.py) ----------------------------------------------------------
    def trunk_tile(self, k: int, h: np.ndarray, p: Params, ws: Workspace) -> np.ndarray:
        """:meth:`trunk` on one tile, with the same result bit for bit. It may overwrite ``h`` (and
        then returns ``h`` itself) and use ``ws``'s buffers; a family without a faster way says so by
        not overriding this."""
        return self.trunk(k, h, p)

    def readout_tile(self, depth: int, h: np.ndarray, p: Params, ws: Workspace) -> np.ndarray:
        return self.readout(depth, h, p)

    WORK_FACTOR: ClassVar[int] = 1
    """Real multiply-adds per weight element (WIRE's complex weights: re and im each take 2)."""

    def unit_work(self) -> list[int]:
        """Multiply-adds per pixel of each unit: the elements of its 2-D weight tensors (a lookup
        table costs none)."""
        return [
            self.WORK_FACTOR * sum(math.prod(s) for n, s in u.tensors if len(s) == 2 and n != "table")
            for u in self.units()
        ]

    def extra_work(self) -> int:
        """Multiply-adds per pixel that no transmitted tensor accounts for (Fourier's projection)."""
        return 0

    def macs_per_pixel(self, steps: Sequence[int], depth: int) -> int:
        """Multiply-adds per output pixel of a decode running trunk ``steps`` and readout ``depth``
        (what GFLOP/s figures count)."""
        per_unit = self.unit_work()
        used = {u for k in steps for u in self.trunk_units(k)} | set(self.readout_units(depth))
        return sum(per_unit[u] for u in used) + self.extra_work()

    def step_activations(self, k: int) -> dict[str, int]:
        """Activation values per pixel that trunk step ``k`` computes, by kind (a key of
        :data:`codec.budget.ACTIVATION_COSTS`)."""
        raise NotImplementedError

    def work_per_pixel(self, steps: Sequence[int], depth: int) -> int:
        """What the decode budget's ``max_work`` counts per output pixel (codec/budget.py): the
        multiply-adds, plus every activation value at its cost in multiply-adds."""
        return self.macs_per_pixel(steps, depth) + sum(
            activation_work(self.step_activations(k)) for k in steps
        )

    def activation_floats(self) -> int:
        """Floats per pixel of the widest activation (a tile's buffers are a few of these)."""
        widest = max(
            (max(s) for u in self.units() for n, s in u.tensors if len(s) == 2 and n != "table"), default=1
        )
        return self.WORK_FACTOR * widest + 2

    def plan(self, available: set[int], conceal: str = "prefix") -> tuple[int, list[int]] | None:
        """The deepest decodable depth and the trunk steps to run for it, or None if nothing decodes.

        ``prefix`` stops at the first missing stage; ``skip`` leaves a missing hidden stage out and
        carries on with later ones (only meaningful for a residual progressive trunk)."""
        if not self.progressive:
            need = set(self.trunk_units(0)) | set(self.readout_units(0))
            for k in range(1, self.trunk_steps()):
                need |= set(self.trunk_units(k))
            return (0, list(range(self.trunk_steps()))) if need <= available else None
        if not set(self.trunk_units(0)) <= available:
            return None
        steps, best = [0], None
        if set(self.readout_units(0)) <= available:
            best = (0, [0])
        for k in range(1, self.depths):
            if set(self.trunk_units(k)) <= available:
                steps.append(k)
                if set(self.readout_units(k)) <= available:
                    best = (k, list(steps))
            elif conceal != "skip":
                break
        return best

    def trunk_steps(self) -> int:
        return self.depths


class ChainDecoder(ArchDecoder):
    """A plain chain: units input, hidden.1..H, output (after ``first`` leading units, e.g. DINER's
    table). Not progressive: every unit is needed."""

    first: ClassVar[int] = 0

    def leading_units(self) -> list[UnitSpec]:
        return []

    def in_features(self) -> int:
        return 2

    def hidden_tensors(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return linear_spec("", self.width, self.width)

    def output_tensors(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return linear_spec("", 3, self.width)

    def units(self) -> list[UnitSpec]:
        hidden = [UnitSpec(f"hidden.{k}", self.hidden_tensors()) for k in range(1, self.hidden + 1)]
        return [
            *self.leading_units(),
            UnitSpec("input", linear_spec("", self.width, self.in_features())),
            *hidden,
            UnitSpec("output", self.output_tensors()),
        ]

    def trunk_steps(self) -> int:
        return self.hidden + 1

    def trunk_units(self, k: int) -> list[int]:
        return list(range(self.first + 1)) if k == 0 else [k + self.first]

    def readout_units(self, depth: int) -> list[int]:
        return [self.hidden + 1 + self.first]


MODEL_IDS: dict[str, int] = {"siren": 0, "spinr": 1, "fourier": 2, "mfn": 3, "wire": 4, "diner": 5}
"""The v2 header's model byte. Fixed forever: a new family appends the next number, none is reused."""
DECODERS: dict[str, type[ArchDecoder]] = {}


def register_decoder(name: str) -> Callable[[type[ArchDecoder]], type[ArchDecoder]]:
    if name not in MODEL_IDS:
        raise TypeError(f"model {name!r} has no id: append it to codec.arch.base.MODEL_IDS")

    def wrap(cls: type[ArchDecoder]) -> type[ArchDecoder]:
        cls.model, cls.model_id = name, MODEL_IDS[name]
        DECODERS[name] = cls
        return cls

    return wrap


def _decoder_class(model: str) -> type[ArchDecoder]:
    if model not in DECODERS:
        raise BitstreamError(
            f"model {model!r} is not known to this decoder; known: {', '.join(sorted(DECODERS))}"
        )
    return DECODERS[model]


def decoder_for(model: str, arch: Mapping[str, Any], units: list[UnitSpec] | None = None) -> ArchDecoder:
    """The registered decoder of ``model`` for ``arch`` (importing ``codec.arch`` registers every
    family), its derived units within the limits of :mod:`codec.units`; a v1 header's transmitted
    ``units`` must be exactly those, or BitstreamError says which one differs."""
    dec = _decoder_class(model)(arch)
    derived = dec.units()
    check_sizes(derived, f"{model} arch")
    if units is not None:
        check_units(units, derived, dec.describe())
    return dec


def model_name(model_id: int) -> str:
    """The model of a v2 header's model byte."""
    for name, number in MODEL_IDS.items():
        if number == model_id and name in DECODERS:
            return name
    known = ", ".join(f"{n} {name}" for name, n in MODEL_IDS.items() if name in DECODERS)
    raise BitstreamError(f"model id {model_id} is not known to this decoder; known: {known}")


def write_arch(model: str, arch: Mapping[str, Any]) -> bytes:
    """The v2 arch record of ``arch`` (an encoder's model: fields exactly as the family declares)."""
    return write_record(_decoder_class(model).RECORD, arch, model)


def read_arch(model: str, r: Reader) -> dict[str, Any]:
    """The arch dict of the record at ``r`` (every field; ranges are checked by :func:`decoder_for`)."""
    return read_record(_decoder_class(model).RECORD, r, model)

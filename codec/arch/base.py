"""The numpy forward's interface and registry: a model family's decode as trunk steps and a readout.

A model's decode is ``h = trunk(0, coords)``, ``h = trunk(k, h)`` for the stages used, then
``readout(depth, h)``. Splitting it that way lets the progressive decoder cache ``h`` and pay one
layer per new packet. No torch here: this is what a decoder-only install runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, cast

import numpy as np

from codec.errors import BitstreamError

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
    progressive: ClassVar[bool] = False

    def __init__(self, arch: Mapping[str, Any], num_units: int) -> None:
        self.arch = arch
        self.num_units = num_units

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

    def __init__(self, arch: Mapping[str, Any], num_units: int) -> None:
        super().__init__(arch, num_units)
        self.width = arch_field(arch, "width", int, 1, 4096)
        self.hidden = arch_field(arch, "hidden_layers", int, 0, 256)
        expected = self.hidden + 2 + self.first
        if num_units != expected:
            raise BitstreamError(f"{self.model} stream has {num_units} units; its arch needs {expected}")

    def trunk_steps(self) -> int:
        return self.hidden + 1

    def trunk_units(self, k: int) -> list[int]:
        return list(range(self.first + 1)) if k == 0 else [k + self.first]

    def readout_units(self, depth: int) -> list[int]:
        return [self.hidden + 1 + self.first]


DECODERS: dict[str, type[ArchDecoder]] = {}


def register_decoder(name: str) -> Callable[[type[ArchDecoder]], type[ArchDecoder]]:
    def wrap(cls: type[ArchDecoder]) -> type[ArchDecoder]:
        cls.model = name
        DECODERS[name] = cls
        return cls

    return wrap


def decoder_for(model: str, arch: Mapping[str, Any], num_units: int) -> ArchDecoder:
    """The registered decoder of ``model`` (importing ``codec.arch`` registers every family)."""
    if model not in DECODERS:
        raise BitstreamError(
            f"model {model!r} is not known to this decoder; known: {', '.join(sorted(DECODERS))}"
        )
    return DECODERS[model](arch, num_units)

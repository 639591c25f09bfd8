"""Numpy forward passes, one per model family, described as trunk steps and readouts.

A model's decode is ``h = trunk(0, coords)``, ``h = trunk(k, h)`` for the stages used, then
``readout(depth, h)``. Splitting it that way lets the progressive decoder cache ``h`` and pay one
layer per new packet. No torch here: this is what a decoder-only install runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from codec.errors import BitstreamError

Params = Mapping[int, Mapping[str, np.ndarray]]
"""Dequantized tensors by unit index, then tensor name."""


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return x @ w.T + b


def _num(arch: Mapping[str, Any], key: str, kind: type, lo: float, hi: float) -> Any:
    value = arch.get(key)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) or not lo <= value <= hi:
        raise BitstreamError(
            f"header arch field {key!r} is {value!r}; expected {kind.__name__} in {lo}..{hi}"
        )
    return value


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


DECODERS: dict[str, type[ArchDecoder]] = {}


def register_decoder(name: str) -> Callable[[type[ArchDecoder]], type[ArchDecoder]]:
    def wrap(cls: type[ArchDecoder]) -> type[ArchDecoder]:
        cls.model = name
        DECODERS[name] = cls
        return cls

    return wrap


def decoder_for(model: str, arch: Mapping[str, Any], num_units: int) -> ArchDecoder:
    if model not in DECODERS:
        raise BitstreamError(
            f"model {model!r} is not known to this decoder; known: {', '.join(sorted(DECODERS))}"
        )
    return DECODERS[model](arch, num_units)


class _SineMLP(ArchDecoder):
    """Shared parsing of SIREN-style arch fields."""

    def __init__(self, arch: Mapping[str, Any], num_units: int) -> None:
        super().__init__(arch, num_units)
        self.width = _num(arch, "width", int, 1, 4096)
        self.hidden = _num(arch, "hidden_layers", int, 0, 256)
        self.w0_first = np.float32(_num(arch, "first_omega_0", float, 0.0, 1e4))
        self.w0 = np.float32(_num(arch, "hidden_omega_0", float, 0.0, 1e4))

    def sine(self, x: np.ndarray, w0: np.float32) -> np.ndarray:
        return np.sin(w0 * x, dtype=np.float32)


@register_decoder("siren")
class SirenDecoder(_SineMLP):
    # units: input, hidden.1..H, output
    def trunk_steps(self) -> int:
        return self.hidden + 1

    def trunk_units(self, k: int) -> list[int]:
        return [k]

    def readout_units(self, depth: int) -> list[int]:
        return [self.hidden + 1]

    def trunk(self, k: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[k]
        return self.sine(linear(h, t["weight"], t["bias"]), self.w0_first if k == 0 else self.w0)

    def readout(self, depth: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[self.hidden + 1]
        return linear(h, t["weight"], t["bias"])


@register_decoder("spinr")
class SpinrDecoder(_SineMLP):
    progressive = True

    def __init__(self, arch: Mapping[str, Any], num_units: int) -> None:
        super().__init__(arch, num_units)
        head = arch.get("head")
        if head not in ("shared", "per_stage"):
            raise BitstreamError(f"header arch field 'head' is {head!r}; expected 'shared' or 'per_stage'")
        self.shared = head == "shared"
        self.residual = arch.get("residual", False)
        if not isinstance(self.residual, bool):
            raise BitstreamError(f"header arch field 'residual' is {self.residual!r}; expected a boolean")

    @property
    def depths(self) -> int:
        return self.hidden + 1

    # shared: units input(0), output(1), hidden.k (k+1); per_stage: stage.k (k)
    def trunk_units(self, k: int) -> list[int]:
        return [0] if k == 0 else [k + 1 if self.shared else k]

    def readout_units(self, depth: int) -> list[int]:
        return [1] if self.shared else [depth]

    def trunk(self, k: int, h: np.ndarray, p: Params) -> np.ndarray:
        if k == 0:
            t = p[0]
            w, b = (t["weight"], t["bias"]) if self.shared else (t["in_weight"], t["in_bias"])
            return self.sine(linear(h, w, b), self.w0_first)
        t = p[self.trunk_units(k)[0]]
        out = self.sine(linear(h, t["weight"], t["bias"]), self.w0)
        return h + out if self.residual else out

    def readout(self, depth: int, h: np.ndarray, p: Params) -> np.ndarray:
        if self.shared:
            return linear(h, p[1]["weight"], p[1]["bias"])
        t = p[depth]
        return linear(h, t["head_weight"], t["head_bias"])


# The study's model zoo registers its decoders on import (kept in its own module).
from codec import arch_zoo  # noqa: E402, F401

"""SIREN's numpy forward (torch side: codec/models/siren.py), and the sine-MLP fields SPINR shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from codec.arch.base import ArchDecoder, Params, arch_field, linear, register_decoder


class SineMlpDecoder(ArchDecoder):
    """Parsing of the SIREN-style arch fields (width, depth, the two frequency factors)."""

    def __init__(self, arch: Mapping[str, Any], num_units: int) -> None:
        super().__init__(arch, num_units)
        self.width = arch_field(arch, "width", int, 1, 4096)
        self.hidden = arch_field(arch, "hidden_layers", int, 0, 256)
        self.w0_first = np.float32(arch_field(arch, "first_omega_0", float, 0.0, 1e4))
        self.w0 = np.float32(arch_field(arch, "hidden_omega_0", float, 0.0, 1e4))

    def sine(self, x: np.ndarray, w0: np.float32) -> np.ndarray:
        return np.sin(w0 * x, dtype=np.float32)


@register_decoder("siren")
class SirenDecoder(SineMlpDecoder):
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

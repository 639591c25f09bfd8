"""SPINR's numpy forward (torch side: codec/models/spinr.py): every prefix of stages decodes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from codec.arch.base import Params, arch_choice, linear, register_decoder
from codec.arch.siren import SineMlpDecoder
from codec.errors import BitstreamError


@register_decoder("spinr")
class SpinrDecoder(SineMlpDecoder):
    progressive = True

    def __init__(self, arch: Mapping[str, Any], num_units: int) -> None:
        super().__init__(arch, num_units)
        self.shared = arch_choice(arch, "head", ("shared", "per_stage")) == "shared"
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

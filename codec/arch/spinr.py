"""SPINR's numpy forward (torch side: codec/models/spinr.py): every prefix of stages decodes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from codec.arch.base import Params, arch_choice, linear, register_decoder
from codec.arch.records import choice, flag
from codec.arch.siren import PE_RECORD, SINE_MLP_RECORD, SineMlpDecoder
from codec.errors import BitstreamError
from codec.tiles import Workspace
from codec.units import UnitSpec
from codec.units import linear as linear_spec


@register_decoder("spinr")
class SpinrDecoder(SineMlpDecoder):
    progressive = True
    RECORD = (
        *SINE_MLP_RECORD,
        choice("head", ("per_stage", "shared"), "per_stage"),
        flag("residual", True),
        *PE_RECORD,  # after the fields format v2 started with, so their flag bits keep their places
    )

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__(arch)
        self.shared = arch_choice(arch, "head", ("shared", "per_stage")) == "shared"
        self.residual = arch.get("residual", False)
        if not isinstance(self.residual, bool):
            raise BitstreamError(f"header arch field 'residual' is {self.residual!r}; expected a boolean")

    @property
    def depths(self) -> int:
        return self.hidden + 1

    def describe(self) -> str:
        head = "shared" if self.shared else "per_stage"
        return f"spinr (head {head}, width {self.width}, {self.hidden} hidden layers)"

    def units(self) -> list[UnitSpec]:
        w, hidden = self.width, range(1, self.hidden + 1)
        if self.shared:
            ends = [
                UnitSpec("input", linear_spec("", w, self.in_features)),
                UnitSpec("output", linear_spec("", 3, w)),
            ]
            return ends + [UnitSpec(f"hidden.{k}", linear_spec("", w, w)) for k in hidden]
        head = linear_spec("head_", 3, w)
        first = UnitSpec("stage.0", (*linear_spec("in_", w, self.in_features), *head))
        return [first] + [UnitSpec(f"stage.{k}", (*linear_spec("", w, w), *head)) for k in hidden]

    def macs_per_pixel(self, steps: Sequence[int], depth: int) -> int:
        w = self.width  # a stage's unit also holds its head: only the readout's head runs
        return sum(self.in_features * w if k == 0 else w * w for k in steps) + 3 * w

    # shared: units input(0), output(1), hidden.k (k+1); per_stage: stage.k (k)
    def trunk_units(self, k: int) -> list[int]:
        return [0] if k == 0 else [k + 1 if self.shared else k]

    def readout_units(self, depth: int) -> list[int]:
        return [1] if self.shared else [depth]

    def trunk(self, k: int, h: np.ndarray, p: Params) -> np.ndarray:
        if k == 0:
            t = p[0]
            w, b = (t["weight"], t["bias"]) if self.shared else (t["in_weight"], t["in_bias"])
            return self.sine(linear(self.encode(h), w, b), self.w0_first)
        t = p[self.trunk_units(k)[0]]
        out = self.sine(linear(h, t["weight"], t["bias"]), self.w0)
        return h + out if self.residual else out

    def readout(self, depth: int, h: np.ndarray, p: Params) -> np.ndarray:
        if self.shared:
            return linear(h, p[1]["weight"], p[1]["bias"])
        t = p[depth]
        return linear(h, t["head_weight"], t["head_bias"])

    def trunk_tile(self, k: int, h: np.ndarray, p: Params, ws: Workspace) -> np.ndarray:
        if k == 0:
            t = p[0]
            w, b = (t["weight"], t["bias"]) if self.shared else (t["in_weight"], t["in_bias"])
            return self.sine_tile(self.encode(h), w, b, self.w0_first, ws)  # encoded coordinates
        t = p[self.trunk_units(k)[0]]
        out = self.sine_tile(h, t["weight"], t["bias"], self.w0, ws)
        if not self.residual:
            return out
        h += out  # in place: a cached tile's activations move one stage deeper
        return h

    def readout_tile(self, depth: int, h: np.ndarray, p: Params, ws: Workspace) -> np.ndarray:
        t = p[1] if self.shared else p[depth]
        w, b = (t["weight"], t["bias"]) if self.shared else (t["head_weight"], t["head_bias"])
        return self.linear_tile(h, w, b, ws)

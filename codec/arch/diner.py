"""DINER's numpy forward (torch side: codec/models/diner.py): a per-pixel table, then a sine MLP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from codec.arch.base import ChainDecoder, Params, arch_field, linear, register_decoder
from codec.arch.records import real, uint
from codec.errors import BitstreamError
from codec.units import UnitSpec


@register_decoder("diner")
class DinerDecoder(ChainDecoder):
    """Units: table, input, hidden.1..H, output. Other output sizes look the table up by nearest pixel."""

    first = 1
    RECORD = (
        uint("width"),
        uint("hidden_layers"),
        uint("features", 2),
        real("omega_0", 30.0),
        uint("table_width"),
        uint("table_height"),
    )

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__(arch)
        self.features = arch_field(arch, "features", int, 1, 64)
        self.omega = np.float32(arch_field(arch, "omega_0", float, 0.0, 1e4))
        self.tw = arch_field(arch, "table_width", int, 1, 65535)
        self.th = arch_field(arch, "table_height", int, 1, 65535)

    def leading_units(self) -> list[UnitSpec]:
        return [UnitSpec("table", (("table", (self.tw * self.th, self.features)),))]

    def in_features(self) -> int:
        return self.features

    def index(self, coords: np.ndarray) -> np.ndarray:
        j = np.clip(np.round(((coords[:, 0] + 1.0) * self.tw - 1.0) * 0.5), 0, self.tw - 1).astype(np.int64)
        i = np.clip(np.round(((coords[:, 1] + 1.0) * self.th - 1.0) * 0.5), 0, self.th - 1).astype(np.int64)
        return i * self.tw + j

    def step_activations(self, k: int) -> dict[str, int]:
        """A sine per unit; step 0 also the pixel's table lookup."""
        return {"sine": self.width, **({"table": 1} if k == 0 else {})}

    def trunk(self, k: int, h: np.ndarray, p: Params) -> np.ndarray:
        if k == 0:
            table = p[0]["table"]
            if table.shape != (self.tw * self.th, self.features):
                raise BitstreamError(
                    f"DINER table has shape {table.shape}; arch needs {(self.tw * self.th, self.features)}"
                )
            h = table[self.index(h)]
        t = p[k + 1]
        return np.sin(self.omega * linear(h, t["weight"], t["bias"]), dtype=np.float32)

    def readout(self, depth: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[self.hidden + 2]
        return linear(h, t["weight"], t["bias"])

"""SIREN's numpy forward (torch side: codec/models/siren.py), and the sine-MLP fields SPINR shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from codec import posenc
from codec.arch.base import ArchDecoder, Params, arch_field, linear, register_decoder
from codec.arch.records import real, uint
from codec.errors import BitstreamError
from codec.tiles import Workspace, add_bias
from codec.units import UnitSpec
from codec.units import linear as linear_spec

SINE_MLP_RECORD = (
    uint("width"),
    uint("hidden_layers"),
    real("first_omega_0", 30.0),
    real("hidden_omega_0", 30.0),
)
"""SIREN's arch fields; SPINR adds its own after them."""
PE_RECORD = (uint("pe_frequencies", 0), real("pe_scale", posenc.DEFAULT_SCALE))
"""The optional positional encoding (codec/posenc.py): at its defaults (off) it costs two flag bits."""


class SineMlpDecoder(ArchDecoder):
    """Parsing of the SIREN-style arch fields (width, depth, the two frequency factors, the optional
    positional encoding; a v1 header has no encoding fields: off)."""

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__(arch)
        self.w0_first = np.float32(arch_field(arch, "first_omega_0", float, 0.0, 1e4))
        self.w0 = np.float32(arch_field(arch, "hidden_omega_0", float, 0.0, 1e4))
        self.pe_frequencies = arch.get("pe_frequencies", 0)
        self.pe_scale = arch.get("pe_scale", posenc.DEFAULT_SCALE)
        if isinstance(self.pe_scale, int) and not isinstance(self.pe_scale, bool):
            self.pe_scale = float(self.pe_scale)
        posenc.check(self.pe_frequencies, self.pe_scale, BitstreamError)

    @property
    def in_features(self) -> int:
        """Inputs of the first layer: 2 coordinates, or their positional encoding."""
        return posenc.encoded_dim(self.pe_frequencies)

    def encode(self, coords: np.ndarray) -> np.ndarray:
        return posenc.encode(coords, self.pe_frequencies, self.pe_scale)

    def step_activations(self, k: int) -> dict[str, int]:
        """A sine per unit of every layer; step 0 also the positional encoding's sines and cosines."""
        return {"sine": self.width + (self.in_features - 2 if k == 0 else 0)}

    def sine(self, x: np.ndarray, w0: np.float32) -> np.ndarray:
        return np.sin(w0 * x, dtype=np.float32)

    def sine_tile(
        self, h: np.ndarray, w: np.ndarray, b: np.ndarray, w0: np.float32, ws: Workspace
    ) -> np.ndarray:
        """``sine(linear(h, w, b), w0)`` in one of ``ws``'s buffers, operation for operation (so bit
        for bit) the same, with no temporary arrays."""
        z = ws.other(h, w.shape[0])
        np.matmul(h, w.T, out=z)
        z += b
        z *= w0
        return np.sin(z, out=z)

    def linear_tile(self, h: np.ndarray, w: np.ndarray, b: np.ndarray, ws: Workspace) -> np.ndarray:
        y = ws.get("readout", h.shape[0], w.shape[0])
        np.matmul(h, w.T, out=y)
        add_bias(y, b)
        return y


@register_decoder("siren")
class SirenDecoder(SineMlpDecoder):
    RECORD = (*SINE_MLP_RECORD, *PE_RECORD)

    def units(self) -> list[UnitSpec]:
        w = self.width
        hidden = [UnitSpec(f"hidden.{k}", linear_spec("", w, w)) for k in range(1, self.hidden + 1)]
        return [
            UnitSpec("input", linear_spec("", w, self.in_features)),
            *hidden,
            UnitSpec("output", linear_spec("", 3, w)),
        ]

    # units: input, hidden.1..H, output
    def trunk_steps(self) -> int:
        return self.hidden + 1

    def trunk_units(self, k: int) -> list[int]:
        return [k]

    def readout_units(self, depth: int) -> list[int]:
        return [self.hidden + 1]

    def trunk(self, k: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[k]
        if k == 0:
            return self.sine(linear(self.encode(h), t["weight"], t["bias"]), self.w0_first)
        return self.sine(linear(h, t["weight"], t["bias"]), self.w0)

    def readout(self, depth: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[self.hidden + 1]
        return linear(h, t["weight"], t["bias"])

    def trunk_tile(self, k: int, h: np.ndarray, p: Params, ws: Workspace) -> np.ndarray:
        t = p[k]
        if k == 0:  # the positional encoding of the tile's coordinates (the coordinates when off)
            return self.sine_tile(self.encode(h), t["weight"], t["bias"], self.w0_first, ws)
        return self.sine_tile(h, t["weight"], t["bias"], self.w0, ws)

    def readout_tile(self, depth: int, h: np.ndarray, p: Params, ws: Workspace) -> np.ndarray:
        t = p[self.hidden + 1]
        return self.linear_tile(h, t["weight"], t["bias"], ws)

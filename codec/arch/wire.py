"""WIRE's numpy forward (torch side: codec/models/wire.py): complex Gabor wavelets, a real picture."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from codec.arch.base import ChainDecoder, Params, arch_field, linear, register_decoder
from codec.arch.records import real, uint


@register_decoder("wire")
class WireDecoder(ChainDecoder):
    RECORD = (uint("width"), uint("hidden_layers"), real("omega_0", 20.0), real("scale_0", 10.0))

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__(arch)
        self.omega = np.float32(arch_field(arch, "omega_0", float, 0.0, 1e4))
        self.scale = np.float32(arch_field(arch, "scale_0", float, 0.0, 1e4))

    @staticmethod
    def _complex(out: int, inp: int) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return (
            ("weight_re", (out, inp)),
            ("weight_im", (out, inp)),
            ("bias_re", (out,)),
            ("bias_im", (out,)),
        )

    def hidden_tensors(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return self._complex(self.width, self.width)

    def output_tensors(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return self._complex(3, self.width)

    def _gabor(self, z: np.ndarray) -> np.ndarray:
        return np.exp(1j * self.omega * z - np.abs(self.scale * z) ** 2).astype(np.complex64)

    @staticmethod
    def _clinear(z: np.ndarray, t: Mapping[str, np.ndarray]) -> np.ndarray:
        w = t["weight_re"] + 1j * t["weight_im"]
        b = t["bias_re"] + 1j * t["bias_im"]
        return (z @ w.T.astype(np.complex64) + b.astype(np.complex64)).astype(np.complex64)

    def trunk(self, k: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[k]
        if k == 0:
            return self._gabor(linear(h, t["weight"], t["bias"]))
        return self._gabor(self._clinear(h, t))

    def readout(self, depth: int, h: np.ndarray, p: Params) -> np.ndarray:
        return self._clinear(h, p[self.hidden + 1]).real.astype(np.float32)

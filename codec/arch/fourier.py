"""FourierNet's numpy forward (torch side: codec/models/fourier.py); B from codec.fourier_features."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from codec.arch.base import ChainDecoder, Params, arch_field, linear, register_decoder
from codec.arch.records import real, uint
from codec.fourier_features import b_matrix


@register_decoder("fourier")
class FourierDecoder(ChainDecoder):
    RECORD = (
        uint("width"),
        uint("hidden_layers"),
        uint("mapping_size", 256),
        real("sigma", 10.0),
        uint("b_seed", 0),
    )

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__(arch)
        self.mapping_size = arch_field(arch, "mapping_size", int, 1, 4096)
        sigma = arch_field(arch, "sigma", float, 1e-9, 1e4)
        seed = arch_field(arch, "b_seed", int, 0, 2**32 - 1)
        self.B = b_matrix(self.mapping_size, sigma, seed)

    def in_features(self) -> int:
        return 2 * self.mapping_size

    def extra_work(self) -> int:
        return 2 * self.mapping_size  # the projection by B (its cosine and sine not counted)

    def step_activations(self, k: int) -> dict[str, int]:
        """A ReLU per unit; step 0 also the cosine and sine of each projected feature."""
        return {"relu": self.width, **({"fourier_features": 2 * self.mapping_size} if k == 0 else {})}

    def trunk(self, k: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[k]
        if k == 0:
            proj = np.float32(2.0 * np.pi) * (((h + np.float32(1.0)) * np.float32(0.5)) @ self.B.T)
            h = np.concatenate([np.cos(proj), np.sin(proj)], axis=1)
        return np.maximum(linear(h, t["weight"], t["bias"]), np.float32(0.0))

    def readout(self, depth: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[self.hidden + 1]
        return linear(h, t["weight"], t["bias"])

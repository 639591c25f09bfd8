"""Multiplicative filter networks' numpy forward (torch side: codec/models/mfn.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from codec.arch.base import ChainDecoder, Params, arch_choice, linear, register_decoder


@register_decoder("mfn")
class MfnDecoder(ChainDecoder):
    """Filters need the coordinates at every step, so the trunk activation carries them: [x, y, z...]."""

    def __init__(self, arch: Mapping[str, Any], num_units: int) -> None:
        super().__init__(arch, num_units)
        self.gabor = arch_choice(arch, "filter", ("gabor", "fourier")) == "gabor"

    def _filter(self, x: np.ndarray, t: Mapping[str, np.ndarray]) -> np.ndarray:
        out = np.sin(linear(x, t["filter_weight"], t["filter_bias"]))
        if self.gabor:
            mu, gamma = t["filter_mu"], t["filter_gamma"]
            d = (x**2).sum(-1, keepdims=True) + (mu**2).sum(-1)[None, :] - 2 * x @ mu.T
            out = out * np.exp(np.float32(-0.5) * d * gamma[None, :])
        return out.astype(np.float32)

    def trunk(self, k: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[k]
        if k == 0:
            x = h
            z = self._filter(x, t)
        else:
            x, z = h[:, :2], h[:, 2:]
            z = self._filter(x, t) * linear(z, t["weight"], t["bias"])
        return np.concatenate([x, z], axis=1)

    def readout(self, depth: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[self.hidden + 1]
        return linear(h[:, 2:], t["weight"], t["bias"])

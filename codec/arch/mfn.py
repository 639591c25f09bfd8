"""Multiplicative filter networks' numpy forward (torch side: codec/models/mfn.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from codec.arch.base import ChainDecoder, Params, arch_choice, linear, register_decoder
from codec.arch.records import choice, uint
from codec.units import TensorSpec, UnitSpec
from codec.units import linear as linear_spec


@register_decoder("mfn")
class MfnDecoder(ChainDecoder):
    """Filters need the coordinates at every step, so the trunk activation carries them: [x, y, z...]."""

    RECORD = (uint("width"), uint("hidden_layers"), choice("filter", ("gabor", "fourier"), "gabor"))

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__(arch)
        self.gabor = arch_choice(arch, "filter", ("gabor", "fourier")) == "gabor"

    def units(self) -> list[UnitSpec]:
        w = self.width
        filt: tuple[TensorSpec, ...] = linear_spec("filter_", w, 2)
        if self.gabor:
            filt += (("filter_mu", (w, 2)), ("filter_gamma", (w,)))
        layers = [UnitSpec(f"layer.{k}", (*linear_spec("", w, w), *filt)) for k in range(1, self.hidden + 1)]
        return [UnitSpec("filter.0", filt), *layers, UnitSpec("output", linear_spec("", 3, w))]

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

"""Numpy forward passes for the study's model zoo: ``fourier``, ``mfn``, ``wire``, ``diner``.

Same contract as codec/arch.py (trunk steps and a readout, float32, no torch). None of these is
progressive: every unit is needed. Imported at the bottom of codec/arch.py so the registry is complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from codec.arch import ArchDecoder, Params, _num, linear, register_decoder
from codec.errors import BitstreamError


def fourier_b(mapping_size: int, sigma: float, seed: int) -> np.ndarray:
    """Same as codec.models.fourier.b_matrix (kept here so the decoder does not import torch code)."""
    gen = np.random.Generator(np.random.PCG64(seed))
    return (gen.standard_normal((mapping_size, 2)) * sigma).astype(np.float32)


class _Mlp(ArchDecoder):
    """Units: input, hidden.1..H, output (+ an optional leading unit, ``first``)."""

    first = 0

    def __init__(self, arch: Mapping[str, Any], num_units: int) -> None:
        super().__init__(arch, num_units)
        self.width = _num(arch, "width", int, 1, 4096)
        self.hidden = _num(arch, "hidden_layers", int, 0, 256)
        expected = self.hidden + 2 + self.first
        if num_units != expected:
            raise BitstreamError(f"{self.model} stream has {num_units} units; its arch needs {expected}")

    def trunk_steps(self) -> int:
        return self.hidden + 1

    def trunk_units(self, k: int) -> list[int]:
        return list(range(self.first + 1)) if k == 0 else [k + self.first]

    def readout_units(self, depth: int) -> list[int]:
        return [self.hidden + 1 + self.first]


@register_decoder("fourier")
class FourierDecoder(_Mlp):
    def __init__(self, arch: Mapping[str, Any], num_units: int) -> None:
        super().__init__(arch, num_units)
        m = _num(arch, "mapping_size", int, 1, 4096)
        sigma = _num(arch, "sigma", float, 1e-9, 1e4)
        seed = _num(arch, "b_seed", int, 0, 2**32 - 1)
        self.B = fourier_b(m, sigma, seed)

    def trunk(self, k: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[k]
        if k == 0:
            proj = np.float32(2.0 * np.pi) * (((h + np.float32(1.0)) * np.float32(0.5)) @ self.B.T)
            h = np.concatenate([np.cos(proj), np.sin(proj)], axis=1)
        return np.maximum(linear(h, t["weight"], t["bias"]), np.float32(0.0))

    def readout(self, depth: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[self.hidden + 1]
        return linear(h, t["weight"], t["bias"])


@register_decoder("mfn")
class MfnDecoder(_Mlp):
    """Filters need the coordinates at every step, so the trunk activation carries them: [x, y, z...]."""

    def __init__(self, arch: Mapping[str, Any], num_units: int) -> None:
        super().__init__(arch, num_units)
        kind = arch.get("filter")
        if kind not in ("gabor", "fourier"):
            raise BitstreamError(f"header arch field 'filter' is {kind!r}; expected 'gabor' or 'fourier'")
        self.gabor = kind == "gabor"

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


@register_decoder("wire")
class WireDecoder(_Mlp):
    def __init__(self, arch: Mapping[str, Any], num_units: int) -> None:
        super().__init__(arch, num_units)
        self.omega = np.float32(_num(arch, "omega_0", float, 0.0, 1e4))
        self.scale = np.float32(_num(arch, "scale_0", float, 0.0, 1e4))

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


@register_decoder("diner")
class DinerDecoder(_Mlp):
    """Units: table, input, hidden.1..H, output. Other output sizes look the table up by nearest pixel."""

    first = 1

    def __init__(self, arch: Mapping[str, Any], num_units: int) -> None:
        super().__init__(arch, num_units)
        self.features = _num(arch, "features", int, 1, 64)
        self.omega = np.float32(_num(arch, "omega_0", float, 0.0, 1e4))
        self.tw = _num(arch, "table_width", int, 1, 65535)
        self.th = _num(arch, "table_height", int, 1, 65535)

    def index(self, coords: np.ndarray) -> np.ndarray:
        j = np.clip(np.round(((coords[:, 0] + 1.0) * self.tw - 1.0) * 0.5), 0, self.tw - 1).astype(np.int64)
        i = np.clip(np.round(((coords[:, 1] + 1.0) * self.th - 1.0) * 0.5), 0, self.th - 1).astype(np.int64)
        return i * self.tw + j

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

"""Multiplicative filter networks' numpy forward (torch side: codec/models/mfn.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from codec.arch.base import ChainDecoder, Params, arch_choice, linear, register_decoder
from codec.arch.records import choice, uint
from codec.tiles import Workspace, add_bias
from codec.units import TensorSpec, UnitSpec
from codec.units import linear as linear_spec

HALF = np.float32(-0.5)


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

    def step_activations(self, k: int) -> dict[str, int]:
        """A filter per unit (and, from step 1, its product with the linear layer)."""
        return {"mfn_gabor" if self.gabor else "mfn_fourier": self.width}

    def activation_floats(self) -> int:
        """The trunk's [x, y, z] plus the filter bank's four (width x tile) buffers (_filter, _step):
        about twice the base class's count, which the tile's buffer budget then covers."""
        return 2 * self.width + 2

    def _filter(self, x: np.ndarray, t: Mapping[str, np.ndarray], ws: Workspace | None) -> np.ndarray:
        """The filter bank g(x) **transposed**, (width, rows) float32: sin(x F^T + c), times
        exp((-1/2 d) gamma) with d = (|x|^2 + |mu|^2) - (2x) mu^T for Gabor filters, as the JS decoder
        computes them. x has only two columns, so the products are written out (no BLAS call whose
        kernel could depend on the tile's shape), and the transposed layout gives every ufunc a loop
        over the tile's pixels: (rows, width) arrays broadcast a width-long row vector one pixel at a
        time. With ``ws`` every buffer is reused from tile to tile (fresh temporaries cost page
        faults): a 1.6 KB MFN stream of width 8 at 2048x2048 took 2.3-2.9 CPU s before."""
        rows, f = x.shape[0], t["filter_weight"]
        width = f.shape[0]

        def buf(name: str, height: int = width) -> np.ndarray:
            return np.empty((height, rows), np.float32) if ws is None else ws.get(name, height, rows)

        xt = buf("mfn.x", 2)  # the coordinates as two contiguous rows
        xt[0], xt[1] = x[:, 0], x[:, 1]
        x0, x1 = xt[0:1], xt[1:2]
        g, tmp = buf("mfn.g"), buf("mfn.t")
        np.multiply(f[:, 0:1], x0, out=g)
        np.multiply(f[:, 1:2], x1, out=tmp)
        g += tmp
        g += t["filter_bias"][:, None]
        np.sin(g, out=g)
        if not self.gabor:
            return g
        mu, gamma = t["filter_mu"], t["filter_gamma"]
        mu2 = mu[:, 0] * mu[:, 0] + mu[:, 1] * mu[:, 1]
        xx = buf("mfn.xx", 1)
        np.multiply(x0, x0, out=xx)
        np.multiply(x1, x1, out=tmp[:1])
        xx += tmp[:1]
        d = buf("mfn.d")  # (2x) mu^T: 2 x_i mu_i is x_i (2 mu_i) exactly
        np.multiply((mu[:, 0:1] * np.float32(2.0)), x0, out=d)
        np.multiply((mu[:, 1:2] * np.float32(2.0)), x1, out=tmp)
        d += tmp
        np.add(mu2[:, None], xx, out=tmp)
        tmp -= d
        tmp *= HALF
        tmp *= gamma[:, None]
        np.exp(tmp, out=tmp)
        g *= tmp
        return g

    def _step(self, k: int, h: np.ndarray, p: Params, ws: Workspace | None) -> np.ndarray:
        """Trunk step k: [x, g_0(x)] or [x, g_k(x) * (z W^T + b)], in ``ws``'s buffers when given."""
        t = p[k]
        rows, cols = h.shape[0], self.width + 2
        out = np.empty((rows, cols), np.float32) if ws is None else ws.other(h, cols)
        g = self._filter(h[:, :2], t, ws).T
        if k == 0:
            out[:, 2:] = g
        else:
            w = t["weight"]
            lin = (
                np.empty((rows, w.shape[0]), np.float32)
                if ws is None
                else ws.get("mfn.lin", rows, w.shape[0])
            )
            np.matmul(h[:, 2:], w.T, out=lin)
            add_bias(lin, t["bias"])
            np.multiply(g, lin, out=out[:, 2:])
        out[:, :2] = h[:, :2]
        return out

    def trunk(self, k: int, h: np.ndarray, p: Params) -> np.ndarray:
        return self._step(k, h, p, None)

    def trunk_tile(self, k: int, h: np.ndarray, p: Params, ws: Workspace) -> np.ndarray:
        return self._step(k, h, p, ws)

    def readout(self, depth: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[self.hidden + 1]
        return linear(h[:, 2:], t["weight"], t["bias"])

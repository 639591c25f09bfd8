"""WIRE's numpy forward (torch side: codec/models/wire.py): complex Gabor wavelets, a real picture."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from codec.arch.base import ChainDecoder, Params, arch_field, linear, register_decoder
from codec.arch.records import real, uint
from codec.tiles import Workspace


@register_decoder("wire")
class WireDecoder(ChainDecoder):
    RECORD = (uint("width"), uint("hidden_layers"), real("omega_0", 20.0), real("scale_0", 10.0))

    WORK_FACTOR = 2

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__(arch)
        self.omega = np.float32(arch_field(arch, "omega_0", float, 0.0, 1e4))
        self.scale = np.float32(arch_field(arch, "scale_0", float, 0.0, 1e4))

    def step_activations(self, k: int) -> dict[str, int]:
        return {"wire_gabor": self.width}

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

    def _gabor(self, z: np.ndarray, ws: Workspace | None = None, h: np.ndarray | None = None) -> np.ndarray:
        """exp(1j omega z - |scale z|^2) in float32 parts: exp(x) (cos y + i sin y) with
        x = -omega Im z - ((scale Re z)^2 + (scale Im z)^2) and y = omega Re z, as the JS decoder
        computes it, into ``ws``'s buffers when given (the output beside the layer's input ``h``).
        numpy's exp of a complex64 array has no vectorised loop, its abs is a hypot, and fresh
        tile-sized temporaries cost page faults: together 58 ns per value here against ~4 ns now (a
        465-byte WIRE stream of width 8 took 5.4 CPU s to decode at 2048x2048)."""
        rows, cols = z.shape

        def buf(name: str, dtype: type = np.float32) -> np.ndarray:
            return np.empty((rows, cols), dtype) if ws is None else ws.get(name, rows, cols, dtype)

        re, im = z.real, z.imag
        x, s = buf("wire.x"), buf("wire.s")
        np.multiply(self.omega, im, out=x)
        np.negative(x, out=x)
        np.multiply(self.scale, re, out=s)
        s *= s
        x -= s
        np.multiply(self.scale, im, out=s)
        s *= s
        x -= s
        np.exp(x, out=x)
        out = buf("wire.a", np.complex64)
        if ws is not None and h is not None and np.may_share_memory(out, h):
            out = buf("wire.b", np.complex64)
        np.multiply(self.omega, re, out=s)
        np.cos(s, out=s)
        np.multiply(x, s, out=out.real)
        np.multiply(self.omega, re, out=s)
        np.sin(s, out=s)
        np.multiply(x, s, out=out.imag)
        return out

    @staticmethod
    def _clinear(z: np.ndarray, t: Mapping[str, np.ndarray], ws: Workspace | None = None) -> np.ndarray:
        w = (t["weight_re"] + 1j * t["weight_im"]).T.astype(np.complex64)
        b = (t["bias_re"] + 1j * t["bias_im"]).astype(np.complex64)
        rows, cols = z.shape[0], w.shape[1]
        out = (
            np.empty((rows, cols), np.complex64) if ws is None else ws.get("wire.z", rows, cols, np.complex64)
        )
        np.matmul(z, w, out=out)
        out += b
        return out

    def trunk(self, k: int, h: np.ndarray, p: Params) -> np.ndarray:
        t = p[k]
        if k == 0:
            return self._gabor(linear(h, t["weight"], t["bias"]))
        return self._gabor(self._clinear(h, t))

    def trunk_tile(self, k: int, h: np.ndarray, p: Params, ws: Workspace) -> np.ndarray:
        t = p[k]
        if k == 0:
            return self._gabor(linear(h, t["weight"], t["bias"]), ws, h)
        return self._gabor(self._clinear(h, t, ws), ws, h)

    def readout(self, depth: int, h: np.ndarray, p: Params) -> np.ndarray:
        return self._clinear(h, p[self.hidden + 1]).real.astype(np.float32)

"""WIRE: wavelet implicit neural representations (Saragadam et al., CVPR 2023; github.com/vishwa91/wire).

Activation: the complex Gabor wavelet ``psi(z) = exp(i * omega_0 * z - |s_0 * z|^2)``.
As in the authors' ``modules/wire.py``: the first layer is real (2 -> width), hidden layers and the
readout are complex, and the picture is the real part of the complex readout.

Complex tensors travel as two real tensors (``weight_re``/``weight_im``, ``bias_re``/``bias_im``); the torch
model keeps them as separate real parameters and builds the complex matrix in ``forward`` (the same
gradients as a complex parameter under Adam). Complex init: real and imaginary parts each
U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

Defaults: omega_0 = 20, s_0 = 10 (the WIRE paper's image-representation setting), Adam lr 5e-3 with a
decay to 0.1 (the authors' image scripts; codec/train.py's cosine decay ends at 0.1 too). The authors
shrink the width by sqrt(2) to offset complex numbers; the study does not (its WIRE has the same 66.82K
count as SIREN), so neither do we.

``num_params`` counts a complex number once (the study's convention: width 128 with 4 hidden layers =
66,819 = "66.82K"); the bitstream carries 2 reals per complex number, about twice SIREN's bytes (the
study's compression factor 1.20 against SIREN's 2.40 agrees).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from codec.model_options import WireOptions
from codec.models.base import INR, Layers, register_model
from codec.models.siren import linear_tensors


class ComplexLinear(nn.Module):
    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(fan_in)
        self.weight_re = nn.Parameter(torch.empty(fan_out, fan_in).uniform_(-bound, bound))
        self.weight_im = nn.Parameter(torch.empty(fan_out, fan_in).uniform_(-bound, bound))
        self.bias_re = nn.Parameter(torch.empty(fan_out).uniform_(-bound, bound))
        self.bias_im = nn.Parameter(torch.empty(fan_out).uniform_(-bound, bound))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w = torch.complex(self.weight_re, self.weight_im)
        b = torch.complex(self.bias_re, self.bias_im)
        return z @ w.T + b

    def tensors(self) -> list[tuple[str, torch.Tensor]]:
        return [
            ("weight_re", self.weight_re),
            ("weight_im", self.weight_im),
            ("bias_re", self.bias_re),
            ("bias_im", self.bias_im),
        ]


def gabor(z: torch.Tensor, omega: float, scale: float) -> torch.Tensor:
    return torch.exp(1j * omega * z - (scale * z).abs().square())


@register_model("wire")
class Wire(INR):
    Options = WireOptions
    default_lr = 5e-3

    def __init__(self, width: int, hidden_layers: int, options: WireOptions) -> None:
        super().__init__(width, hidden_layers, options)
        self.input = nn.Linear(2, width)
        self.hidden = Layers(ComplexLinear(width, width) for _ in range(hidden_layers))
        self.output = ComplexLinear(width, 3)

    def forward(self, coords: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        o, s = self.options.omega_0, self.options.scale_0
        z = gabor(self.input(coords), o, s)
        for layer in self.hidden:
            z = gabor(layer(z), o, s)
        return self.output(z).real

    def num_params(self) -> int:
        """Complex numbers counted once (the study's convention); the stream holds 2 reals each."""
        complex_layers = [*self.hidden, self.output]
        return sum(p.numel() for p in self.input.parameters()) + sum(
            m.weight_re.numel() + m.bias_re.numel() for m in complex_layers
        )

    def units(self) -> list[tuple[str, list[tuple[str, torch.Tensor]]]]:
        units = [("input", linear_tensors(self.input))]
        units += [(f"hidden.{k + 1}", layer.tensors()) for k, layer in enumerate(self.hidden)]
        units.append(("output", self.output.tensors()))
        return units

    def arch(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "hidden_layers": self.hidden_layers,
            "omega_0": float(self.options.omega_0),
            "scale_0": float(self.options.scale_0),
        }

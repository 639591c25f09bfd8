"""Multiplicative filter networks (Fathony et al., ICLR 2021; github.com/boschresearch/multiplicative-filter-networks).

``z_0 = g_0(x)``, ``z_k = g_k(x) * (W_k z_{k-1} + b_k)`` for k = 1..H, ``y = W_out z_H + b_out``: no
activation between layers, the nonlinearity comes from multiplying by filters of the input.

Filters (option ``filter``):
- ``fourier`` (the authors' FourierNet): ``g(x) = sin(W x + b)``.
- ``gabor`` (GaborNet, the default; it reproduces the study's parameter counts):
  ``g(x) = sin(W x + b) * exp(-gamma / 2 * ||x - mu||^2)`` with learnable mu (width, 2) and gamma (width).

Initialisation as in the authors' code: filter weights scaled by ``input_scale / sqrt(H + 1)`` (times
``sqrt(gamma)`` for Gabor), filter biases U(-pi, pi), mu U(-1, 1), gamma ~ Gamma(alpha / (H + 1), beta),
linear layers U(-sqrt(weight_scale / width), +). Defaults input_scale 256, weight_scale 1, alpha 6,
beta 1. The authors use coordinates in [-1, 1] too. Adam lr 1e-2 is the authors' image-fitting setting;
codec/train.py halves it automatically on a divergence.

Study sizes (Table 1, GaborNet): width 256 with 2 hidden layers = 136,963 ("136.96K"), width 128 with
4 hidden layers = 70,275 ("70.27K").
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from codec.kernels import sine
from codec.model_options import MfnOptions
from codec.models.base import INR, Layers, register_model
from codec.models.siren import linear_tensors


class Filter(nn.Module):
    def __init__(self, width: int, scale: float, opts: MfnOptions, n_filters: int) -> None:
        super().__init__()
        self.gabor = opts.filter == "gabor"
        self.linear = nn.Linear(2, width)
        with torch.no_grad():
            self.linear.bias.uniform_(-math.pi, math.pi)
            if self.gabor:
                self.mu = nn.Parameter(2 * torch.rand(width, 2) - 1)
                gamma = torch.distributions.Gamma(opts.alpha / n_filters, opts.beta).sample((width,))
                self.gamma = nn.Parameter(gamma)
                self.linear.weight.mul_(scale * torch.sqrt(gamma[:, None]))
            else:
                self.linear.weight.mul_(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = sine(self.linear(x))
        if self.gabor:
            d = (x**2).sum(-1, keepdim=True) + (self.mu**2).sum(-1)[None, :] - 2 * x @ self.mu.T
            out = out * torch.exp(-0.5 * d * self.gamma[None, :])
        return out

    def tensors(self) -> list[tuple[str, torch.Tensor]]:
        out = linear_tensors(self.linear, "filter_")
        if self.gabor:
            out += [("filter_mu", self.mu), ("filter_gamma", self.gamma)]
        return out


@register_model("mfn")
class Mfn(INR):
    Options = MfnOptions
    default_lr = 1e-2

    def __init__(self, width: int, hidden_layers: int, options: MfnOptions) -> None:
        super().__init__(width, hidden_layers, options)
        n = hidden_layers + 1
        scale = options.input_scale / math.sqrt(n)
        self.filters = Layers(Filter(width, scale, options, n) for _ in range(n))
        self.linears = Layers(nn.Linear(width, width) for _ in range(hidden_layers))
        bound = math.sqrt(options.weight_scale / width)
        with torch.no_grad():
            for lin in self.linears:
                lin.weight.uniform_(-bound, bound)
        self.output = nn.Linear(width, 3)

    def forward(self, coords: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        z = self.filters[0](coords)
        for k, lin in enumerate(self.linears, start=1):
            z = self.filters[k](coords) * lin(z)
        return self.output(z)

    def units(self) -> list[tuple[str, list[tuple[str, torch.Tensor]]]]:
        units = [("filter.0", self.filters[0].tensors())]
        units += [
            (f"layer.{k}", linear_tensors(lin) + self.filters[k].tensors())
            for k, lin in enumerate(self.linears, start=1)
        ]
        units.append(("output", linear_tensors(self.output)))
        return units

    def arch(self) -> dict[str, Any]:
        return {"width": self.width, "hidden_layers": self.hidden_layers, "filter": self.options.filter}

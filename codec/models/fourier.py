"""Fourier-feature network (Tancik et al., NeurIPS 2020, "Fourier features let networks learn high
frequency functions in low dimensional domains"; github.com/tancik/fourier-feature-networks).

Input encoding ``gamma(v) = [cos(2 pi B v), sin(2 pi B v)]`` with a fixed Gaussian matrix
``B ~ N(0, sigma^2)`` of shape (mapping_size, 2), then a ReLU MLP and a linear readout.

- Coordinates: the authors sample v in [0, 1); our grid is [-1, 1], so the encoding uses
  ``v = (x + 1) / 2`` and sigma keeps the authors' meaning (their image default 10).
- B is not a parameter and never travels: the header ``arch`` holds ``sigma`` and ``b_seed`` and both
  the torch model and the numpy decoder regenerate B with ``codec.fourier_features.b_matrix`` (numpy's
  PCG64), so they agree exactly with no dependence on torch's RNG.
- Defaults from the authors' 2-D image notebook: mapping size 256, sigma 10, Adam lr 1e-3, ReLU MLP.
- Study sizes (paper Table 1): width 128 with 4 hidden layers = 132,099 parameters ("132.09K") and
  width 64 with 8 hidden layers = 66,307 ("66.30K"); B is not counted (it is not transmitted).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from codec.fourier_features import b_matrix
from codec.model_options import FourierOptions
from codec.models.base import INR, Layers, TrainingStage, register_model
from codec.models.siren import chain_units


@register_model("fourier")
class FourierNet(INR):
    Options = FourierOptions
    default_lr = 1e-3
    seed_options = frozenset({"b_seed"})
    B: torch.Tensor
    """The fixed projection (a non-persistent buffer, regenerated from the options)."""

    def __init__(self, width: int, hidden_layers: int, options: FourierOptions) -> None:
        super().__init__(width, hidden_layers, options)
        b = b_matrix(options.mapping_size, options.sigma, options.b_seed)
        self.register_buffer("B", torch.from_numpy(b), persistent=False)
        self.input = nn.Linear(2 * options.mapping_size, width)
        self.hidden = Layers(nn.Linear(width, width) for _ in range(hidden_layers))
        self.output = nn.Linear(width, 3)

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        proj = (2.0 * math.pi) * (((coords + 1.0) * 0.5) @ self.B.T)
        return torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1)

    def mlp(self, features: torch.Tensor) -> torch.Tensor:
        """The trained network after the fixed encoding."""
        h = torch.relu(self.input(features))
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.output(h)

    def forward(self, coords: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        return self.mlp(self.encode(coords))

    def stages(self) -> list[TrainingStage]:
        # B is fixed: the encoding (2 x mapping_size sines and cosines per pixel) is computed once per fit.
        return [TrainingStage("all", list(self.parameters()), None, prefix=self.encode, rest=self.mlp)]

    def units(self) -> list[tuple[str, list[tuple[str, torch.Tensor]]]]:
        return chain_units(self.input, self.hidden, self.output)

    def arch(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "hidden_layers": self.hidden_layers,
            "mapping_size": self.options.mapping_size,
            "sigma": float(self.options.sigma),
            "b_seed": int(self.options.b_seed),
        }

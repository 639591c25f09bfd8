"""SIREN (Sitzmann et al., NeurIPS 2020): an MLP with sine activations.

Initialisation follows the paper: first layer U(-1/n, 1/n), hidden layers
U(-sqrt(6/n)/omega_0, sqrt(6/n)/omega_0), with n the layer's fan-in and omega_0 = 30.
Default learning rate 1e-3 with cosine decay (the authors use 1e-4; measured 1.8 dB worse at 2000 steps).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from codec import posenc
from codec.kernels import sine_linear
from codec.model_options import SirenOptions
from codec.models.base import INR, Layers, register_model


class CoordEncoder(nn.Module):
    """The optional positional encoding in front of a sine network's first layer (no parameters):
    the same float32 features as :func:`codec.posenc.encode`, in torch."""

    freqs: torch.Tensor

    def __init__(self, frequencies: int, scale: float) -> None:
        super().__init__()
        self.frequencies, self.scale = frequencies, scale
        self.register_buffer(
            "freqs", torch.from_numpy(posenc.frequencies_f32(frequencies, scale)), persistent=False
        )

    @property
    def dim(self) -> int:
        return posenc.encoded_dim(self.frequencies)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        if self.frequencies == 0:
            return coords
        arg = coords[:, None, :] * self.freqs[None, :, None].to(coords.dtype)  # (N, L, 2)
        feats = torch.cat([torch.sin(arg), torch.cos(arg)], dim=2).reshape(coords.shape[0], -1)
        return torch.cat([coords, feats], dim=1)

    def arch(self) -> dict[str, Any]:
        """The header fields (the scale is recorded only when the encoding is on: off, it is moot)."""
        scale = float(self.scale) if self.frequencies else posenc.DEFAULT_SCALE
        return {"pe_frequencies": self.frequencies, "pe_scale": scale}


class SineLayer(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, omega_0: float, first: bool) -> None:
        super().__init__()
        self.omega_0 = omega_0
        self.linear = nn.Linear(fan_in, fan_out)
        bound = 1.0 / fan_in if first else math.sqrt(6.0 / fan_in) / omega_0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sine_linear(x, self.linear, self.omega_0)


def init_readout(linear: nn.Linear, omega_0: float) -> nn.Linear:
    """SIREN's final linear layer uses the hidden-layer bound."""
    bound = math.sqrt(6.0 / linear.in_features) / omega_0
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound)
    return linear


def linear_tensors(linear: nn.Linear, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    return [(f"{prefix}weight", linear.weight), (f"{prefix}bias", linear.bias)]


Units = list[tuple[str, list[tuple[str, torch.Tensor]]]]


def hidden_units(layers: Iterable[nn.Linear]) -> Units:
    """``hidden.1`` .. ``hidden.H``, one unit per hidden linear layer."""
    return [(f"hidden.{k}", linear_tensors(lin)) for k, lin in enumerate(layers, start=1)]


def chain_units(first: nn.Linear, hidden: Iterable[nn.Linear], last: nn.Linear) -> Units:
    """The plain MLP layout of FORMAT.md: ``input``, ``hidden.1`` .. ``hidden.H``, ``output``."""
    return [("input", linear_tensors(first)), *hidden_units(hidden), ("output", linear_tensors(last))]


@register_model("siren")
class Siren(INR):
    Options = SirenOptions
    # rd-report: 1e-3 with cosine decay to 0.1x beats the authors' 1e-4 by 1.8 dB at 2000 steps (sun80).
    default_lr = 1e-3

    def __init__(self, width: int, hidden_layers: int, options: SirenOptions) -> None:
        super().__init__(width, hidden_layers, options)
        self.encoder = CoordEncoder(options.pe_frequencies, options.pe_scale)
        self.input = SineLayer(self.encoder.dim, width, options.first_omega_0, first=True)
        self.hidden = Layers(
            SineLayer(width, width, options.hidden_omega_0, first=False) for _ in range(hidden_layers)
        )
        self.output = init_readout(nn.Linear(width, 3), options.hidden_omega_0)

    def forward(self, coords: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        h = self.input(self.encoder(coords))
        for layer in self.hidden:
            h = layer(h)
        return self.output(h)

    def units(self) -> list[tuple[str, list[tuple[str, torch.Tensor]]]]:
        return chain_units(self.input.linear, (layer.linear for layer in self.hidden), self.output)

    def arch(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "hidden_layers": self.hidden_layers,
            "first_omega_0": float(self.options.first_omega_0),
            "hidden_omega_0": float(self.options.hidden_omega_0),
            **self.encoder.arch(),
        }

"""DINER: disorder-invariant implicit neural representation (Xie et al., CVPR 2023; github.com/Ezio77/DINER).

A learnable hash table holds one ``features``-dim vector per pixel of the encoded image; the pixel's
vector (not its coordinates) feeds a small SIREN MLP. The table is the "hash mapping": it lets the MLP
see the pixels in any order, at the price of ``features * width * height`` parameters, so DINER's
bitstream is larger than the image (compression factor < 1).

Authors' image setting (``config/img.ini``, ``model.py``): table init 1e-4 * U(-1, 1), MLP width 64 with
2 hidden layers, sine activations with omega_0 = 30, Adam lr 1e-4; the table is 2-D for images in the
paper (``features`` option).

The model needs the image size (``needs_image_size``: the encoder and ``load_bitstream`` call ``set_image_size``).
Coordinates map to the table by **nearest pixel** (``j = round(((x + 1) * W - 1) / 2)``, clipped):
exact at the encoded size, nearest-neighbour upsampling at any other size (no bilinear blend; a table
entry is not a smooth function of position, so interpolating between unrelated entries would not help).

Parameter count: ``features * W * H + MLP``; at 512 x 512 with the defaults, 524,288 + 8,707 = 532,995
(the study's 545.55K is on "a Set14-size image"; the Set14 images range from 250x361 to 768x512).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from codec.errors import ConfigError
from codec.model_options import DinerOptions
from codec.models.base import INR, Layers, register_model
from codec.models.siren import SineLayer, chain_units, init_readout


def table_index(coords: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """Nearest table row for each [x, y] in [-1, 1] (row-major, like the pixel grid)."""
    j = torch.clamp(torch.round(((coords[:, 0] + 1.0) * w - 1.0) * 0.5), 0, w - 1).long()
    i = torch.clamp(torch.round(((coords[:, 1] + 1.0) * h - 1.0) * 0.5), 0, h - 1).long()
    return i * w + j


@register_model("diner")
class Diner(INR):
    Options = DinerOptions
    default_lr = 1e-4
    needs_image_size = True

    def __init__(self, width: int, hidden_layers: int, options: DinerOptions) -> None:
        super().__init__(width, hidden_layers, options)
        self.table_w = self.table_h = 0
        self.table = nn.Parameter(torch.zeros(0, options.features))
        self.input = SineLayer(options.features, width, options.omega_0, first=True)
        self.hidden = Layers(
            SineLayer(width, width, options.omega_0, first=False) for _ in range(hidden_layers)
        )
        self.output = init_readout(nn.Linear(width, 3), options.omega_0)

    def set_image_size(self, width: int, height: int) -> None:
        """(Re)create the per-pixel table for a width x height image."""
        self.table_w, self.table_h = int(width), int(height)
        init = 1e-4 * (torch.rand(width * height, self.options.features) * 2 - 1)
        self.table = nn.Parameter(init.to(self.input.linear.weight.device))

    def forward(self, coords: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        if self.table_w == 0:
            raise ConfigError("DINER needs the image size: call set_image_size(width, height) first")
        h = self.input(self.table[table_index(coords, self.table_w, self.table_h)])
        for layer in self.hidden:
            h = layer(h)
        return self.output(h)

    def units(self) -> list[tuple[str, list[tuple[str, torch.Tensor]]]]:
        hidden = (layer.linear for layer in self.hidden)
        table: list[tuple[str, torch.Tensor]] = [("table", self.table)]
        return [("table", table), *chain_units(self.input.linear, hidden, self.output)]

    def arch(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "hidden_layers": self.hidden_layers,
            "features": self.options.features,
            "omega_0": float(self.options.omega_0),
            "table_width": self.table_w,
            "table_height": self.table_h,
        }

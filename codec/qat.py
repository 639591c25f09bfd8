"""Quantization inside training: the codec's quantizer in torch, for quantization-aware steps and for
freezing a stage at the weights a decoder will compute (``codec.train``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from codec.config import QuantConfig


def fake_quantize(p: torch.Tensor, quant: QuantConfig, bits: int | None = None) -> torch.Tensor:
    """``codec.quant.quantize`` then dequantize, in torch on the tensor's device (min/max affine).

    ``bits`` overrides ``quant.bits`` (a precise tensor's)."""
    levels = (1 << (quant.bits if bits is None else bits)) - 1
    rows = p.reshape(p.shape[0], -1) if quant.per_channel and p.ndim >= 2 else p.reshape(1, -1)
    lo = rows.min(dim=1, keepdim=True).values
    scale = (rows.max(dim=1, keepdim=True).values - lo) / levels
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round((rows - lo) / scale), 0, levels)
    return (lo + q * scale).reshape(p.shape)


def load_quantized(
    params: Sequence[torch.Tensor], weights: Sequence[torch.Tensor], quant: QuantConfig, precise: set[int]
) -> None:
    """Set ``params`` to the dequantized codes of ``weights`` (each at its own bits)."""
    with torch.no_grad():
        for p, w in zip(params, weights, strict=True):
            p.copy_(fake_quantize(w, quant, quant.bits_for(p, precise)))


def quantize_in_place(params: Sequence[torch.Tensor], quant: QuantConfig, precise: set[int]) -> None:
    """Replace weights by their dequantized codes (idempotent: quantizing them again gives the same codes)."""
    from codec.quant import quantize

    for p in params:
        a = p.detach().cpu().numpy().astype(np.float32)
        q = quantize("w", a, quant.bits_for(p, precise), quant.per_channel)
        p.copy_(torch.from_numpy(q.dequantize()).to(p.device))

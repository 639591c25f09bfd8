"""The trainer's full-image passes in pixel chunks: their memory follows the chunk, not the image.

Training judges weights on every pixel (a stage's starting loss at its pass-through, the loss of the
kept weights once quantization-aware steps begin, every prefix's final PSNR) and caches the frozen
part of a stage's forward pass for every pixel. On a 2000x2000 image one such pass at width 319 held
about 25 GiB of activations (issue 10, item 5). With ``TrainConfig.eval_pixels`` (set by
``codec.memory``'s plan when the whole image at once does not fit) they run chunk by chunk without
autograd, the squared errors summed in float64: the loss is the one-pass loss up to float32 rounding
(a relative 1e-7; the one pass sums in float32). Without chunks (0, or a chunk as large as the image)
each pass is the one-pass expression itself, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from codec.fit_core import stage_loss
from codec.models.base import INR, TrainingStage


def chunked(pixels: int, chunk: int) -> bool:
    """Whether passes over ``pixels`` pixels run in chunks of ``chunk`` (0: never)."""
    return 0 < chunk < pixels


def spans(pixels: int, chunk: int) -> list[slice]:
    """Consecutive row ranges of at most ``chunk`` pixels covering ``pixels`` (one for 0)."""
    if not chunked(pixels, chunk):
        return [slice(0, pixels)]
    return [slice(i, min(i + chunk, pixels)) for i in range(0, pixels, chunk)]


def sq_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors over the pixel and channel axes (the last two), in float64."""
    return ((out - y) ** 2).double().sum(dim=(-2, -1))


def stage_sse(
    model: INR, stage: TrainingStage, x: torch.Tensor, y: torch.Tensor, cached: torch.Tensor | None
) -> torch.Tensor:
    """(E,) float64 sums of squared errors of the outputs :func:`codec.fit_core.stage_loss` averages
    (its exits, or its one prefix) on these pixels."""
    if cached is not None:
        assert stage.rest is not None
        outs = [stage.rest(cached)]
    elif not stage.exits:
        outs = [model(x, stage.depth)]
    else:
        outs = model.forward_exits(x, [d for d, _ in stage.exits])
    return torch.stack([sq_error(o, y) for o in outs])


def combine(stage: TrainingStage, sse: torch.Tensor, values: int) -> torch.Tensor:
    """The stage loss from its (..., E) sums of squared errors over ``values`` numbers: the mean
    squared error, or the exits' weighted geometric mean of them, as ``stage_loss`` computes it."""
    mse = sse / values
    if not stage.exits:
        return mse[..., 0]
    weights = torch.tensor([w for _, w in stage.exits], dtype=mse.dtype, device=mse.device)
    return torch.exp((weights / weights.sum() * torch.log(mse)).sum(dim=-1))


def summed(part: Callable[[slice], torch.Tensor], pixels: int, chunk: int) -> torch.Tensor:
    """``part(rows)`` summed over the chunks (float64), every chunk under no_grad."""
    total: torch.Tensor | None = None
    with torch.no_grad():
        for rows in spans(pixels, chunk):
            value = part(rows).double()
            total = value if total is None else total + value
    assert total is not None
    return total


def full_stage_loss(
    model: INR,
    stage: TrainingStage,
    x: torch.Tensor,
    y: torch.Tensor,
    cached: torch.Tensor | None,
    chunk: int,
) -> float:
    """:func:`codec.fit_core.stage_loss` on every pixel, ``chunk`` pixels at a time (no gradient)."""
    pixels = x.shape[0]
    if not chunked(pixels, chunk):
        with torch.no_grad():
            return float(stage_loss(model, stage, x, y, cached))

    def part(rows: slice) -> torch.Tensor:
        return stage_sse(model, stage, x[rows], y[rows], None if cached is None else cached[rows])

    return float(combine(stage, summed(part, pixels, chunk), y.numel()))


def full_mse(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, chunk: int
) -> float:
    """Mean squared error of ``fn(x)`` against ``y`` over every pixel, ``chunk`` pixels at a time."""
    pixels = x.shape[0]
    with torch.no_grad():
        if not chunked(pixels, chunk):
            return float(torch.mean((fn(x) - y) ** 2))
        return float(summed(lambda rows: sq_error(fn(x[rows]), y[rows]), pixels, chunk)) / y.numel()


def filled(fn: Callable[[slice], torch.Tensor], pixels: int, chunk: int, dim: int = 0) -> torch.Tensor:
    """``fn`` of every pixel, one tensor with the pixels along ``dim``: ``fn(rows)`` of each chunk
    written into a tensor allocated once (no autograd), so the peak is the result plus one chunk's
    activations, not the whole image's."""
    with torch.no_grad():
        if not chunked(pixels, chunk):
            return fn(slice(0, pixels))
        out: torch.Tensor | None = None
        for rows in spans(pixels, chunk):
            part = fn(rows)
            if out is None:
                shape = list(part.shape)
                shape[dim] = pixels
                out = torch.empty(shape, dtype=part.dtype, device=part.device)
            out.narrow(dim, rows.start, rows.stop - rows.start).copy_(part)
        assert out is not None
        return out

"""A torch model quantized with one uniform step per tensor: the encoder's side of :mod:`codec.quant`.

The API a rate controller builds on (a bisection over the multiplier, each try exact in bytes):

- :func:`measure_sensitivity`: each tensor's sensitivity, once per trained model;
- :func:`codec.stepalloc.steps_for`: the steps for a multiplier m (:func:`model_steps` for a model);
- :func:`quantize_model`: the model with these steps -> units (what the packets carry);
- :func:`codec.bitstream.units_bytes`: the bytes those units cost on the wire.

Training uses the same quantizer (:mod:`codec.train`): a stage is frozen at its integer codes
(:func:`quantize_in_place`) and quantization-aware steps run at the steps the stage will be sent with
(:func:`load_quantized`), so what the encoder trains on is what a decoder computes, bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch

from codec.coords import grid
from codec.errors import ConfigError
from codec.models.base import INR
from codec.payload import Unit
from codec.quant import quantize
from codec.stepalloc import MAX_STEP_STD, PROBE_PIXELS, RESIDUAL_MAX_STEP_STD, probe_sensitivity, steps_for


def fake_quantize(p: torch.Tensor, step: float) -> torch.Tensor:
    """``p`` rounded to its codes and dequantized exactly as a decoder does (float64 product, one
    rounding to float32), in torch on ``p``'s device."""
    return (torch.round(p.double() / step) * step).to(p.dtype)


def load_quantized(
    params: Sequence[torch.Tensor], weights: Sequence[torch.Tensor], steps: Sequence[float]
) -> None:
    """Set ``params`` to the dequantized codes of ``weights``."""
    with torch.no_grad():
        for p, w, s in zip(params, weights, steps, strict=True):
            p.copy_(fake_quantize(w, s))


def quantize_in_place(params: Sequence[torch.Tensor], steps: Sequence[float]) -> None:
    """Replace weights by their dequantized codes (idempotent: the same steps give the same codes)."""
    load_quantized(params, [p.detach().clone() for p in params], steps)


def model_tensors(model: INR) -> list[torch.Tensor]:
    """Every tensor a stream carries, in ``model.units()`` order."""
    return [t for _, tensors in model.units() for _, t in tensors]


def probe_data(
    image: np.ndarray, device: torch.device, pixels: int = PROBE_PIXELS, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(coords, targets in [-1, 1]) of ``image``, or of a seeded random subset of ``pixels`` of them."""
    h, w = image.shape[:2]
    coords = grid(w, h)
    target = image.reshape(-1, 3).astype(np.float32) / 127.5 - 1.0
    if coords.shape[0] > pixels:
        pick = np.random.default_rng(seed).choice(coords.shape[0], pixels, replace=False)
        coords, target = coords[pick], target[pick]
    return torch.from_numpy(coords).to(device), torch.from_numpy(target).to(device)


def measure_sensitivity(
    model: INR,
    tensors: Sequence[torch.Tensor],
    coords: torch.Tensor,
    target: torch.Tensor,
    depths: Sequence[int | None],
    seed: int = 0,
) -> list[float]:
    """Each tensor's sensitivity (:func:`codec.stepalloc.probe_sensitivity`) on the mean MSE of the
    outputs at ``depths`` (None: the model's full output), the model in eval mode."""
    was_training = model.training
    model.eval()
    outputs = model.outputs_changing(coords, depths)  # reuses what a changed tensor does not reach

    def mse(i: int, values: np.ndarray | None) -> float:
        with torch.no_grad(), _swapped(tensors[i], values):
            outs = outputs([] if values is None else [tensors[i]])
            return float(sum(torch.mean((o - target) ** 2) for o in outs)) / len(outs)

    try:
        floats = [t.detach().cpu().numpy().astype(np.float32) for t in tensors]
        return probe_sensitivity(mse, floats, seed=seed)
    finally:
        model.train(was_training)


class _swapped:
    """Within the block, ``t`` holds ``values`` (nothing changes for None)."""

    def __init__(self, t: torch.Tensor, values: np.ndarray | None) -> None:
        self.t, self.values = t, values
        self.saved: torch.Tensor | None = None

    def __enter__(self) -> None:
        if self.values is not None:
            self.saved = self.t.detach().clone()
            self.t.copy_(torch.from_numpy(self.values).to(self.t.device))

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            self.t.copy_(self.saved)


def all_depths(model: INR) -> list[int | None]:
    """The outputs a stream's quality is judged on: every prefix of a progressive model, else the one."""
    return list(range(model.depths)) if model.progressive else [None]


def model_sensitivity(model: INR, image: np.ndarray, seed: int = 0) -> list[float]:
    """The sensitivity of every tensor of ``model`` (``model.units()`` order) on ``image``, judged on
    every output a stream is judged on (:func:`all_depths`): measure once, then try multipliers."""
    tensors = model_tensors(model)
    coords, target = probe_data(image, tensors[0].device, seed=seed)
    return measure_sensitivity(model, tensors, coords, target, all_depths(model), seed)


def model_steps(
    model: INR,
    image: np.ndarray,
    multiplier: float,
    fixed: Mapping[int, float] | None = None,
    sensitivity: Sequence[float] | None = None,
    seed: int = 0,
    base: Sequence[np.ndarray] | None = None,
) -> list[float]:
    """Steps for every tensor of ``model`` (``model.units()`` order) at ``multiplier``. ``fixed`` maps
    ``id(tensor)`` to a step already decided (a stage frozen at its codes while training keeps it);
    ``sensitivity`` gives every tensor's sensitivity when already measured; with ``base`` (θ0's
    tensors) the steps are for the residuals θ − θ0."""
    tensors = model_tensors(model)
    fixed = fixed or {}
    free = [t for t in tensors if id(t) not in fixed]
    if sensitivity is None:
        device = tensors[0].device
        coords, target = probe_data(image, device, seed=seed)
        sens = measure_sensitivity(model, free, coords, target, all_depths(model), seed) if free else []
    else:
        sens = [s for s, t in zip(sensitivity, tensors, strict=True) if id(t) not in fixed]
    values = _residuals(tensors, base)
    cap = MAX_STEP_STD if base is None else RESIDUAL_MAX_STEP_STD
    chosen = iter(
        steps_for(
            [v for v, t in zip(values, tensors, strict=True) if id(t) not in fixed], sens, multiplier, cap
        )
    )
    return [fixed[id(t)] if id(t) in fixed else next(chosen) for t in tensors]


def _residuals(tensors: Sequence[torch.Tensor], base: Sequence[np.ndarray] | None) -> list[np.ndarray]:
    """The tensors' float32 values, minus θ0's when ``base`` is given (what the units code)."""
    values = [t.detach().cpu().numpy().astype(np.float32) for t in tensors]
    if base is None:
        return values
    return [v - np.asarray(b, dtype=np.float32) for v, b in zip(values, base, strict=True)]


def quantize_model(
    model: INR, steps: Sequence[float], base: Sequence[np.ndarray] | None = None
) -> list[Unit]:
    """The model's units quantized with ``steps`` (one per tensor, ``model.units()`` order); with
    ``base`` (θ0's tensors, same order) the units code the residuals θ − θ0."""
    count = len(model_tensors(model))
    if len(steps) != count:
        raise ConfigError(f"{len(steps)} steps for a model of {count} tensors")
    values = iter(_residuals(model_tensors(model), base))
    it: Iterator[float] = iter(steps)
    return [
        Unit(index, tuple(quantize(name, next(values), next(it)) for name, _ in tensors))
        for index, (_, tensors) in enumerate(model.units())
    ]

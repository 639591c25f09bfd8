"""Which step each tensor gets: steps allocated by measured sensitivity under one global multiplier.

High-rate theory: uniform quantization with step Δ adds noise of variance Δ²/12 to each weight, and a
tensor t adds ``s_t · n_t · Δ_t² / 12`` to the output's mean squared error, where ``s_t`` is its
*sensitivity* (output MSE per element per unit of weight-noise variance). For a given total rate the
MSE is smallest when ``Δ_t² · s_t`` is the same for every tensor, i.e. ``Δ_t = m / √s_t`` with one
**multiplier** m for the whole model; the quantization noise added is then ``N · m² / 12`` for N
weights. So m is the one knob: a rate controller bisects it to a byte target, and the user's
``--bits`` maps to it by asking for a noise level (:func:`multiplier_for_bits`). Measured on sun80
(/work/notes/rd-report.md, "Quantization"): +1.6 dB at 5 bits/weight and +0.5 dB at 7 over steps set
by a rule (α·std with a finer input layer).

Torch-free: the encoder measures ``s_t`` with :func:`probe_sensitivity` through a callable that runs the
model, and :mod:`codec.stepquant` applies the steps to a torch model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from codec.errors import ConfigError
from codec.quant import min_step, representable

PROBE_PIXELS = 65_536
"""Sensitivities are measured (and sequential quantization fine-tunes, codec/seqquant.py) on at most
this many pixels of the image (a seeded random subset beyond)."""

NOISE_PSNR_AT_8_BITS = 44.0
"""``--bits 8`` asks for quantization noise whose PSNR alone is this (dB, on [0, 1] pixels); each bit
more or less moves it by 6.02 dB (halves or doubles every step). Chosen by measurement so that ``--bits
8`` keeps about the PSNR format v1 reached at 8 bits in fewer bytes (docs/FORMAT.md, "Sizes": on the
128 x 128 astronaut, quick preset 23.16 dB in 4141 bytes against v1's 23.26 dB in 6291; the demo's
SPINR 64 x 16 32.55 dB in 52,902 against 31.86 dB in 57,245; 50 dB gave 23.27 dB in 4757 bytes on the
quick preset and 32.56 dB in 59,947 on the demo's)."""
DB_PER_BIT = 20 * math.log10(2)
MAX_STEP_STD = 1.0
"""No step exceeds this multiple of its tensor's standard deviation (coarser rounds most weights to 0)."""
RESIDUAL_MAX_STEP_STD = 4.0
"""The cap for a residual θ − θ0 (``--init meta``): rounding most of a residual to 0 leaves θ0's
weights, still a picture, so at low rates a tensor may send almost nothing (at 4 σ nearly every code
is 0, a fraction of a bit per weight); the weights' cap of 1 σ kept every residual costing bits."""
PROBE_REL = 1 / 16
"""Probe noise: uniform of width ``PROBE_REL · std(t)``."""


def noise_psnr(bits: int) -> float:
    """The PSNR of the quantization noise alone that ``--bits`` asks for."""
    return NOISE_PSNR_AT_8_BITS + DB_PER_BIT * (bits - 8)


def multiplier_for_bits(bits: int, weights: int) -> float:
    """The multiplier whose steps add quantization noise of ``noise_psnr(bits)`` to an output in
    [-1, 1] (MSE ``4 · 10^(-P/10)``), spread over ``weights`` weights: ``N m² / 12 = MSE``."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ConfigError(f"bits {bits!r} is out of range 2..16")
    if weights < 1:
        raise ConfigError(f"a model with {weights} weights cannot be quantized")
    mse = 4.0 * 10.0 ** (-noise_psnr(bits) / 10.0)
    return math.sqrt(12.0 * mse / weights)


def steps_for(
    tensors: Sequence[np.ndarray], sensitivity: Sequence[float], multiplier: float, cap: float = MAX_STEP_STD
) -> list[float]:
    """One step per tensor: ``multiplier / √s_t``, at most ``cap · std(t)`` (``RESIDUAL_MAX_STEP_STD``
    for residuals), at least what the format allows for the tensor (:func:`codec.quant.min_step`),
    rounded to a representable step."""
    if len(tensors) != len(sensitivity):
        raise ConfigError(f"{len(tensors)} tensors but {len(sensitivity)} sensitivities")
    if not (math.isfinite(multiplier) and multiplier > 0):
        raise ConfigError(f"step multiplier {multiplier!r} must be a positive finite number")
    out = []
    for t, s in zip(tensors, sensitivity, strict=True):
        a = np.asarray(t, dtype=np.float32)
        step = multiplier / math.sqrt(max(float(s), 1e-30))
        step = min(step, cap * float(np.std(a))) if a.size > 1 else step
        out.append(representable(max(step, min_step(a))))
    return out


def probe_sensitivity(
    mse: Callable[[int, np.ndarray | None], float],
    tensors: Sequence[np.ndarray],
    reps: int = 2,
    seed: int = 0,
) -> list[float]:
    """Per tensor: output MSE added per element per unit of weight-noise variance.

    ``mse(i, values)`` is the output MSE with tensor ``i`` replaced by ``values`` (``values`` None: no
    tensor replaced). Tensor t alone gets uniform noise e of width ``PROBE_REL · std(t)``;
    ``(mse(w+e) + mse(w-e)) / 2 - mse(w)`` is ``e'He / 2`` to second order (the gradient term cancels),
    whose expectation is ``var(e) · trace(H_t) / 2``."""
    rng = np.random.default_rng(seed)
    base = mse(0, None)
    out = []
    for i, t in enumerate(tensors):
        p = np.asarray(t, dtype=np.float32)
        width = PROBE_REL * max(float(np.std(p)), 1e-8)
        acc = 0.0
        for _ in range(reps):
            e = ((rng.random(p.shape) - 0.5) * width).astype(np.float32)
            acc += (mse(i, p + e) + mse(i, p - e)) / 2 - base
        out.append(max(acc / reps, 1e-30) / (p.size * width**2 / 12))
    return out

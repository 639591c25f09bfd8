"""Sequential quantization of a trained INR to a byte budget, exact to the byte.

1. Each tensor's sensitivity is measured once on the float model (:func:`codec.stepquant.model_sensitivity`).
2. The units (packets) are walked in order. Unit u gets the steps ``m_u / sqrt(s_t)`` whose multiplier
   ``m_u`` is bisected on the real entropy-coded bytes so that the units already fixed, unit u, and
   the later (still float) units at the multiplier that fits them all, sum to at most the budget. The
   last unit thus takes exactly what is left.
3. Unit u's weights are replaced by their dequantized codes, and the later float units are fine-tuned
   a few Adam steps so they absorb its error (for a progressive model on the geometric mean of all
   prefixes' MSEs, the joint phase's loss).

Measured on sun80 (/work/notes/rd-report.md, "QAT vs sequential quantization"): on a 24x3 SIREN at 6
bits per weight, plain rounding loses 1.06 dB, straight-through QAT 1.8 dB (every code flip of a sine
layer is a phase jump), this 0.63 dB (40 fine-tuning steps per unit).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from codec.bitstream import units_bytes
from codec.errors import Cancelled, ConfigError
from codec.models.base import INR
from codec.payload import Unit
from codec.quant import QuantizedTensor, quantize
from codec.stepalloc import MAX_STEP_STD, RESIDUAL_MAX_STEP_STD, steps_for
from codec.stepquant import all_depths, model_sensitivity, probe_data

M_RANGE = (1e-9, 1e2)
"""Multipliers searched (log scale): beyond them every step is at its floor or its cap."""
BISECT_STEPS = 36
EXACT_TRIES = 12
"""Exact encodes of the last unit while closing in on the budget (each runs the entropy coder's model
search, ~0.1-0.4 s on a loaded CPU: the planning before it runs on an estimate)."""
CLOSE_ENOUGH = 0.005
"""The last unit stops searching once the file is within this share of the budget."""
FRAMING_BYTES = 12
"""Estimate of a unit packet's framing (docs/FORMAT.md); the calibration absorbs the difference."""
TENSOR_BYTES = 5
"""Estimate per tensor: its bfloat16 step and the entropy model's descriptor."""


@dataclass
class Quantized:
    units: list[Unit]
    steps: list[float]
    """One step per tensor, in ``model.units()`` order."""
    bytes: int
    """Wire bytes of the units' packets."""


def laplace_bits(codes: np.ndarray) -> float:
    """Ideal code length (bits) of integer codes under a discretised Laplace fitted to them (location
    the median, scale the mean absolute deviation): within 1-2 % of the real coder (rd-report, "Real
    entropy coder vs the estimate") at a fraction of its model search's cost."""
    q = np.asarray(codes, dtype=np.float64).ravel()
    if q.size == 0:
        return 0.0
    mu = float(np.median(q))
    b = max(float(np.mean(np.abs(q - mu))), 1e-3)

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.where(x < 0, 0.5 * np.exp(np.minimum(x, 0) / b), 1 - 0.5 * np.exp(-np.maximum(x, 0) / b))

    p = np.maximum(cdf(q - mu + 0.5) - cdf(q - mu - 0.5), 1e-12)
    return float(-np.log2(p).sum())


def estimate_bytes(unit: Unit) -> float:
    return FRAMING_BYTES + sum(TENSOR_BYTES + laplace_bits(t.codes) / 8 for t in unit.tensors)


def _largest_fitting(size: Callable[[float], float], budget: float) -> tuple[float, float] | None:
    """The multiplier whose size is the largest at most ``budget`` (size falls as m grows), or None
    when even the coarsest steps do not fit."""
    lo, hi = math.log(M_RANGE[0]), math.log(M_RANGE[1])
    top = size(math.exp(hi))
    if top > budget:
        return None
    first = size(math.exp(lo))
    if first <= budget:
        return math.exp(lo), first
    return bisect_log(size, budget, hi, lo, (math.exp(hi), top), BISECT_STEPS)


def bisect_log(
    size: Callable[[float], float],
    budget: float,
    fits: float,
    over: float,
    best: tuple[float, float],
    tries: int,
    close: float = -math.inf,
) -> tuple[float, float]:
    """Bisect log(m) between ``fits`` (a log-multiplier whose size is at most ``budget``) and ``over``
    (one whose size is above it) for at most ``tries`` sizes, stopping once ``best`` is within
    ``close`` of the budget: the largest (multiplier, size) at most ``budget`` seen, ``best`` included.
    The size is monotone in m, whichever way, so the bracket's ends need not be ordered."""
    for _ in range(tries):
        if budget - best[1] <= close:
            break
        mid = (fits + over) / 2
        n = size(math.exp(mid))
        if n <= budget:
            fits = mid
            if n > best[1]:
                best = (math.exp(mid), n)
        else:
            over = mid
    return best


def _loss(outs: list[torch.Tensor], y: torch.Tensor, depths: list[int | None]) -> torch.Tensor:
    if depths == [None]:
        return torch.mean((outs[0] - y) ** 2)
    return torch.exp(torch.stack([torch.log(torch.mean((o - y) ** 2)) for o in outs]).mean())


class _Units:
    """The model's units, their tensors' sensitivities, and quantizing one unit at a multiplier."""

    def __init__(self, model: INR, sens: list[float], base: Sequence[np.ndarray] | None = None) -> None:
        units = model.units()
        self.count = len(units)
        self.tensors = [t for _, ts in units for _, t in ts]
        self.names = [n for _, ts in units for n, _ in ts]
        self.owner = [u for u, (_, ts) in enumerate(units) for _ in ts]
        self.sens = sens
        self.base = None if base is None else [np.asarray(b, dtype=np.float32) for b in base]
        """θ0's tensors: the units code θ − θ0 (residual coding, codec/meta)."""
        self.values: list[np.ndarray] = []
        self.refresh()

    def refresh(self) -> None:
        """Read the tensors' current float values (after fine-tuning), as residuals from θ0 if any."""
        self.values = [t.detach().cpu().numpy().astype(np.float32) for t in self.tensors]
        if self.base is not None:
            self.values = [v - b for v, b in zip(self.values, self.base, strict=True)]
        # Each tensor's codes and estimate at a multiplier, until the values change: the plan's
        # bisections over the later units and over this one try many multipliers twice.
        self.memo: dict[tuple[int, float], tuple[QuantizedTensor, float]] = {}
        self.bits: dict[tuple[int, float], float] = {}
        self.sizes: dict[tuple[int, float], int] = {}

    def members(self, u: int) -> list[int]:
        return [i for i, o in enumerate(self.owner) if o == u]

    def _tensor(self, i: int, m: float) -> tuple[QuantizedTensor, float]:
        key = (i, m)
        if key not in self.memo:
            # steps_for treats every tensor on its own: one at a time gives the same step.
            cap = MAX_STEP_STD if self.base is None else RESIDUAL_MAX_STEP_STD
            (step,) = steps_for([self.values[i]], [self.sens[i]], m, cap)
            self.memo[key] = (quantize(self.names[i], self.values[i], step), step)
        return self.memo[key]

    def unit(self, u: int, m: float) -> tuple[Unit, list[float]]:
        done = [self._tensor(i, m) for i in self.members(u)]
        return Unit(u, tuple(q for q, _ in done)), [step for _, step in done]

    def unit_estimate(self, u: int, m: float) -> float:
        """:func:`estimate_bytes` of ``unit(u, m)``, the same sum of the same numbers."""
        for i in self.members(u):
            if (i, m) not in self.bits:
                self.bits[i, m] = laplace_bits(self._tensor(i, m)[0].codes)
        return FRAMING_BYTES + sum(TENSOR_BYTES + self.bits[i, m] / 8 for i in self.members(u))

    def unit_bytes(self, u: int, m: float) -> int:
        """Exact wire bytes of ``unit(u, m)`` (each multiplier entropy-coded once)."""
        if (u, m) not in self.sizes:
            self.sizes[u, m] = units_bytes([self.unit(u, m)[0]])
        return self.sizes[u, m]

    def estimate(self, first: int, m: float, calib: float) -> float:
        """Estimated bytes of units ``first``.. at ``m``, scaled by the calibration so far."""
        return calib * sum(self.unit_estimate(u, m) for u in range(first, self.count))

    def set_codes(self, unit: Unit) -> None:
        """The unit's tensors become their dequantized codes, plus θ0 (what a decoder computes)."""
        with torch.no_grad():
            for i, q in zip(self.members(unit.index), unit.tensors, strict=True):
                w = q.dequantize() if self.base is None else self.base[i] + q.dequantize()
                self.tensors[i].copy_(torch.from_numpy(w).to(self.tensors[i].device))


def quantize_to_bytes(
    model: INR,
    image: np.ndarray,
    budget: int,
    finetune_steps: int = 40,
    lr: float = 1e-4,
    seed: int = 0,
    device: torch.device | str = "cpu",
    cancel: object = None,
    base: Sequence[np.ndarray] | None = None,
) -> Quantized:
    """Quantize ``model`` (trained on ``image``) in place so its units' packets take at most ``budget``
    bytes, as many of them as fit; ConfigError when even the coarsest steps do not fit.

    The plan runs on :func:`estimate_bytes`, calibrated by the exact size of every unit fixed so far;
    the last unit is searched on exact bytes, so the total never exceeds the budget. With ``base``
    (θ0's tensors, ``model.units()`` order) the units code the residuals θ − θ0."""
    sens = model_sensitivity(model, image, seed=seed)
    model.to(device).eval()
    x, y = probe_data(image, torch.device(device), seed=seed)
    depths = all_depths(model)
    us = _Units(model, sens, base)
    done: list[Unit] = []
    steps: list[float] = []
    exact = estimated = 0.0
    spent = 0
    """Wire bytes of ``done`` (``units_bytes(done)``, summed as the units are fixed)."""
    for u in range(us.count):
        if cancel is not None and getattr(cancel, "is_set", lambda: False)():
            raise Cancelled("quantization was cancelled")
        us.refresh()
        left = budget - spent
        calib = exact / estimated if estimated else 1.0
        if u == us.count - 1:
            unit, unit_steps, m = _last_unit(us, u, left, calib)
        else:
            rest = _largest_fitting(functools.partial(us.estimate, u, calib=calib), left)
            if rest is None:
                raise _too_small(us, u, left, calib)
            later = us.estimate(u + 1, rest[0], calib)
            found = _largest_fitting(lambda m: calib * us.unit_estimate(u, m), left - later)  # noqa: B023
            m = rest[0] if found is None else found[0]
            unit, unit_steps = us.unit(u, m)
        size = us.unit_bytes(u, m)
        exact += size
        spent += size
        estimated += us.unit_estimate(u, m)
        done.append(unit)
        steps += unit_steps
        us.set_codes(unit)
        later_params = [t for t, o in zip(us.tensors, us.owner, strict=True) if o > u]
        _finetune(model, later_params, x, y, depths, finetune_steps, lr)
    model.to("cpu")
    for p in model.parameters():
        p.requires_grad_(True)
    return Quantized(done, steps, spent)


def _too_small(us: _Units, u: int, left: float, calib: float) -> ConfigError:
    need = us.estimate(u, M_RANGE[1], calib)
    return ConfigError(
        f"the target is too small for this network: its coarsest steps need about {need:.0f} bytes"
        f" for the remaining units where {left:.0f} are left"
    )


def _last_unit(us: _Units, u: int, left: int, calib: float) -> tuple[Unit, list[float], float]:
    """The last unit on exact bytes: the largest at most ``left``, starting from the estimate's choice
    and bisecting log(m) over a bracket (a few exact encodes); with its steps and multiplier."""
    guess = _largest_fitting(lambda m: calib * us.unit_estimate(u, m), left)
    m0 = guess[0] if guess is not None else M_RANGE[1]
    size = functools.partial(us.unit_bytes, u)
    best: tuple[float, int] | None = None
    lo = hi = math.log(m0)
    n = size(m0)
    tries = 1
    # Bracket: lo fits (or is the coarsest), hi does not (or is the finest).
    if n <= left:
        best = (m0, n)
        stride = 0.1
        while tries < EXACT_TRIES // 2 and hi > math.log(M_RANGE[0]):
            hi -= stride
            stride *= 2
            tries += 1
            n = size(math.exp(hi))
            if n > left:
                break
            lo, best = hi, (math.exp(hi), n)
        else:
            return (*us.unit(u, best[0]), best[0])
    else:
        stride = 0.1
        while tries < EXACT_TRIES // 2:
            lo += stride
            stride *= 2
            tries += 1
            n = size(math.exp(lo))
            if n <= left:
                best = (math.exp(lo), n)
                break
            hi = lo
        if best is None:
            n = size(M_RANGE[1])
            if n > left:
                raise ConfigError(
                    f"the target is too small for this network: its last unit needs {n} bytes at its"
                    f" coarsest steps where {left} are left"
                )
            best, lo = (M_RANGE[1], n), math.log(M_RANGE[1])
    found = bisect_log(size, left, lo, hi, best, EXACT_TRIES - tries, CLOSE_ENOUGH * left)
    return (*us.unit(u, found[0]), found[0])


def _finetune(
    model: INR,
    params: list[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    depths: list[int | None],
    steps: int,
    lr: float,
) -> None:
    """A few Adam steps on ``params`` only (the later float units), everything else frozen."""
    if not params or steps <= 0:
        return
    for q in model.parameters():
        q.requires_grad_(False)
    for t in params:
        t.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    model.train()
    # What the trained tensors do not reach (the encoding, the frozen layers, their heads) once.
    outputs = model.outputs_changing(x, depths)
    best = [t.detach().clone() for t in params]
    with torch.no_grad():
        best_loss = float(_loss(outputs(params), y, depths))
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = _loss(outputs(params), y, depths)
        value = float(loss.detach())
        if value < best_loss:
            best_loss = value
            best = [t.detach().clone() for t in params]
        loss.backward()
        opt.step()
    with torch.no_grad():
        if float(_loss(outputs(params), y, depths)) > best_loss:  # never leave it worse than the best seen
            for t, b in zip(params, best, strict=True):
                t.copy_(b)
        for t in params:
            t.requires_grad_(False)
    model.eval()

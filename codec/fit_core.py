"""What both training loops share (``codec.train``'s plain loop, ``codec.batched``'s batched one):
progress snapshots, the fit's result, the stage loss, the step budget. Its own module so neither loop
imports the other at module level, and ``codec.train.fit`` can hand a fit to the batched loop."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

import numpy as np
import torch

from codec.models.base import INR, TrainingStage


@dataclass
class TrainProgress:
    """A snapshot of training, handed to the progress callback."""

    stage: int
    stages: int
    step: int
    """Steps done so far, over all stages."""
    steps: int
    """Total steps over all stages."""
    loss: float
    psnr: float
    """PSNR (dB) of the current stage's prefix at its best weights so far, on the training batch."""
    elapsed: float
    event: str = "step"
    """``step``, ``stage_done``, ``diverged`` (the message is in ``note``), or ``quantize`` (training is
    done and the encoder quantizes; ``note`` says what to what: codec/finish.py)."""
    note: str = ""

    @property
    def fraction(self) -> float:
        return self.step / max(1, self.steps)


class CancelToken(Protocol):
    def is_set(self) -> bool: ...


ProgressFn = Callable[[TrainProgress], None]


@dataclass
class FitResult:
    model: INR
    stage_psnr: list[float]
    """Float (unquantized) PSNR per stage at the kept weights, full image."""
    seconds: float
    steps_run: int
    warnings: list[str] = field(default_factory=list)
    loss_history: list[float] = field(default_factory=list)
    steps: dict[int, float] = field(default_factory=dict)
    """Quantization steps decided while training, by ``id()`` of the tensor: a stage frozen at its
    codes (or trained through the quantizer) keeps them, and the encoder must quantize with them."""


def image_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (H, W, 3) -> (H*W, 3) targets in [-1, 1]."""
    return torch.from_numpy(image.reshape(-1, 3).astype(np.float32) / 127.5 - 1.0).to(device)


def split_steps(total: int, weights: list[float]) -> list[int]:
    """Split a step budget across stages proportionally to their weights; every stage gets >= 1."""
    raw = [total * w / sum(weights) for w in weights]
    steps = [max(1, int(r)) for r in raw]
    # Hand out what rounding left over, largest remainders first.
    order = sorted(range(len(raw)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    for i in order[: max(0, total - sum(steps))]:
        steps[i] += 1
    return steps


def copy_into(dst: Sequence[torch.Tensor], src: Sequence[torch.Tensor]) -> None:
    with torch.no_grad():
        for d, s in zip(dst, src, strict=True):
            d.copy_(s)


def stage_loss(
    model: INR, stage: TrainingStage, x: torch.Tensor, y: torch.Tensor, cached: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error of the stage's prefix, or the weighted geometric mean over its exits.

    ``cached`` is ``stage.prefix(x)`` computed beforehand: the loss then runs only ``stage.rest``."""
    if cached is not None:
        assert stage.rest is not None
        return torch.mean((stage.rest(cached) - y) ** 2)
    if not stage.exits:
        return torch.mean((model(x, stage.depth) - y) ** 2)
    depths = [d for d, _ in stage.exits]
    total = sum(w for _, w in stage.exits)
    outs = model.forward_exits(x, depths)
    # Weighted geometric mean of the prefixes' MSEs, i.e. their mean PSNR: every prefix counts by its
    # relative improvement, so the coarse early prefixes' large errors cannot drown the deep ones.
    logs = [
        w / total * torch.log(torch.mean((o - y) ** 2)) for o, (_, w) in zip(outs, stage.exits, strict=True)
    ]
    return torch.exp(cast(torch.Tensor, sum(logs)))


def residual_rate(moved: torch.Tensor, norm: str, dim: int | None = None) -> torch.Tensor:
    """R of the residual penalty: mean |Δ| (``l1``) or mean Δ² (``l2``) of ``moved`` (θ − θ0), over
    everything or along ``dim`` (the batched loop's one row per model)."""
    r = moved.abs() if norm == "l1" else moved * moved
    return r.mean() if dim is None else r.mean(dim=dim)


def flat(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """``params`` as one vector (a copy): the anchor θ0 a residual penalty measures drift from."""
    return torch.cat([p.reshape(-1) for p in params])


def drift_penalised(
    loss: torch.Tensor, params: Sequence[torch.Tensor], anchor: torch.Tensor, norm: str, strength: float
) -> torch.Tensor:
    """``loss`` with the residual penalty of ``params`` drifting from ``anchor`` (``flat`` of their start)."""
    return with_residual_penalty(loss, residual_rate(flat(params) - anchor, norm), strength)


def with_residual_penalty(loss: torch.Tensor, rate: torch.Tensor, strength: float) -> torch.Tensor:
    """``loss · exp(λ R)``: log-MSE plus λ R, the same trade whatever the image's error level (an
    additive penalty would take over as the loss falls)."""
    return loss * torch.exp(strength * rate)


def loss_to_psnr(loss: float) -> float:
    # Targets live in [-1, 1]: MSE on [0, 1] is loss / 4.
    if loss <= 0:
        return math.inf
    return -math.inf if math.isinf(loss) else 10.0 * math.log10(4.0 / loss)

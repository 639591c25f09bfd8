"""The sine layers' arithmetic, plain or fused: what the fast training loop switches on.

Sine networks spend about a third of a CPU training step in ``sin`` and its backward's ``cos``
(docs/SPINR.md, "Speed"), and torch's CPU float32 ``sin``/``cos`` run at 4.7-5.5 ns per value here
against numpy's SIMD kernels' 1.7-3. The fused form also multiplies the weights by omega_0 instead
of the activations: ``sin(w0 * (x W^T + b)) = sin(x (w0 W)^T + w0 b)`` costs one pass over a
(width x width) matrix instead of two passes (forward and backward) over a (pixels x width) one.
Both change results only by float rounding (about 1e-7 relative per step).

The models call :func:`sine_linear` and :func:`sine`; which arithmetic runs is chosen by the trainer
with :func:`use_kernels` for the duration of a forward pass (a context variable, so it never leaks
into another fit, thread or decoder). Outside it, the plain ``torch.sin(w0 * linear(x))`` runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from codec.config import TrainConfig


@dataclass(frozen=True)
class Kernels:
    """Which arithmetic the sine layers use."""

    fold_omega: bool = False
    """Scale the weights by omega_0 instead of the activations."""
    numpy_sine: bool = False
    """On CPU, float32: ``sin`` and its gradient's ``cos`` through numpy's SIMD kernels."""


PLAIN = Kernels()
FUSED = Kernels(fold_omega=True, numpy_sine=True)
"""The fast loop's default."""
FUSED_TORCH = Kernels(fold_omega=True, numpy_sine=False)
"""For ``torch.compile`` (it generates its own sine) and devices other than the CPU."""


def kernels_for(cfg: TrainConfig, device: torch.device) -> Kernels:
    """The kernels a fit of ``cfg`` on ``device`` trains with: the plain loop's are always plain."""
    if cfg.loop == "plain" or cfg.kernels == "plain":
        return PLAIN
    return FUSED if device.type == "cpu" and not cfg.compile else FUSED_TORCH


_ACTIVE: ContextVar[Kernels] = ContextVar("spinr_kernels", default=PLAIN)


@contextmanager
def use_kernels(kernels: Kernels) -> Iterator[None]:
    """Run the sine layers with ``kernels`` inside the block."""
    token = _ACTIVE.set(kernels)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


class _NumpySine(torch.autograd.Function):
    """``sin`` with numpy's kernels; the backward recomputes ``cos`` of the saved input the same way.

    The ``vmap`` rule lets the batched trainer use it on stacked (K, ...) activations: the function is
    elementwise, so the batch dimension passes straight through."""

    @staticmethod
    def forward(u: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.sin(u.detach().numpy()))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (u,) = ctx.saved_tensors
        return torch.from_numpy(np.cos(u.detach().numpy())).mul_(grad)

    @staticmethod
    def vmap(info: Any, in_dims: tuple[int | None], u: torch.Tensor) -> tuple[torch.Tensor, int | None]:
        return _NumpySine.apply(u), in_dims[0]


def sine(u: torch.Tensor) -> torch.Tensor:
    """``sin(u)``, through numpy where the active kernels say so and the tensor allows it."""
    if _ACTIVE.get().numpy_sine and u.device.type == "cpu" and u.dtype == torch.float32:
        return _NumpySine.apply(u)
    return torch.sin(u)


def sine_linear(x: torch.Tensor, linear: nn.Linear, omega_0: float) -> torch.Tensor:
    """``sin(omega_0 * linear(x))``, a SIREN layer, with the active kernels."""
    kernels = _ACTIVE.get()
    if not kernels.fold_omega:
        return torch.sin(omega_0 * linear(x))
    return sine(F.linear(x, linear.weight * omega_0, linear.bias * omega_0))

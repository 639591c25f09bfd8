"""Fit any registered INR to one image. Written once for every model: it walks the model's stages.

Runs synchronously; callers that must not block (the server's event loop) run it in a worker. Progress
goes to a callback, cancellation comes through a ``threading.Event``-like object.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from codec.config import QuantConfig, TrainConfig
from codec.coords import grid
from codec.device import resolve_device
from codec.errors import Cancelled, TrainingDiverged
from codec.models.base import INR, Stage


@dataclass
class Progress:
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
    """``step``, ``stage_done``, or ``diverged`` (the message is in ``note``)."""
    note: str = ""

    @property
    def fraction(self) -> float:
        return self.step / max(1, self.steps)


class CancelToken(Protocol):
    def is_set(self) -> bool: ...


ProgressFn = Callable[[Progress], None]


@dataclass
class FitResult:
    model: INR
    stage_psnr: list[float]
    """Float (unquantized) PSNR per stage at the kept weights, full image."""
    seconds: float
    steps_run: int
    warnings: list[str] = field(default_factory=list)
    loss_history: list[float] = field(default_factory=list)


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


def copy_into(dst: list[torch.Tensor], src: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for d, s in zip(dst, src, strict=True):
            d.copy_(s)


def quantize_in_place(params: list[torch.Tensor], quant: QuantConfig, precise: set[int]) -> None:
    """Replace weights by their dequantized codes (idempotent: quantizing them again gives the same codes)."""
    from codec.quant import quantize

    for p in params:
        a = p.detach().cpu().numpy().astype(np.float32)
        q = quantize("w", a, quant.bits_for(p, precise), quant.per_channel)
        p.copy_(torch.from_numpy(q.dequantize()).to(p.device))


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
    params: list[torch.Tensor], weights: list[torch.Tensor], quant: QuantConfig, precise: set[int]
) -> None:
    """Set ``params`` to the dequantized codes of ``weights`` (each at its own bits)."""
    with torch.no_grad():
        for p, w in zip(params, weights, strict=True):
            p.copy_(fake_quantize(w, quant, quant.bits_for(p, precise)))


def quantized_loss(
    model: INR,
    stage: Stage,
    weights: list[torch.Tensor],
    quant: QuantConfig,
    precise: set[int],
    x: torch.Tensor,
    y: torch.Tensor,
) -> float:
    """The stage's loss with its parameters set to the quantized ``weights`` (parameters left unchanged)."""
    current = [p.detach().clone() for p in stage.params]
    model.eval()
    load_quantized(stage.params, weights, quant, precise)
    with torch.no_grad():
        value = float(stage_loss(model, stage, x, y))
    copy_into(stage.params, current)
    return value


def stage_loss(model: INR, stage: Stage, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the stage's prefix, or the weighted geometric mean over its exits."""
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
    return torch.exp(sum(logs))


def loss_to_psnr(loss: float) -> float:
    # Targets live in [-1, 1]: MSE on [0, 1] is loss / 4.
    return math.inf if loss <= 0 else 10.0 * math.log10(4.0 / loss)


def fit(
    model: INR,
    image: np.ndarray,
    cfg: TrainConfig,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    progress_every: int = 10,
    quant: QuantConfig | None = None,
) -> FitResult:
    """Train ``model`` on ``image`` (uint8 H x W x 3) stage by stage; keep the best weights of each stage.

    With ``quant``, each stage's weights are quantized the moment they are frozen, so every later stage
    trains on exactly the activations a decoder will compute: quantization error cannot compound
    through a deep progressive trunk (docs/SPINR.md measures the difference)."""
    cfg.validate()
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    model.to(device)
    h, w = image.shape[:2]
    coords = torch.from_numpy(grid(w, h)).to(device)
    target = image_tensor(image, device)
    n = coords.shape[0]
    batch = n if cfg.batch_pixels <= 0 else min(cfg.batch_pixels, n)
    base_lr = cfg.lr if cfg.lr is not None else model.default_lr

    stages = model.stages()
    precise = model.precise_ids()
    budget = split_steps(cfg.steps, [s.weight for s in stages])
    for p in model.parameters():
        p.requires_grad_(False)

    start = time.perf_counter()
    done = 0
    warnings: list[str] = []
    history: list[float] = []
    stage_psnr: list[float] = []
    best_loss = math.inf

    def report(
        stage_index: int, loss: float, event: str = "step", note: str = "", psnr: float | None = None
    ) -> None:
        # Reads the loop's current step count and best loss.
        if progress is not None:
            shown = loss_to_psnr(best_loss) if psnr is None else psnr
            progress(
                Progress(
                    stage_index,
                    len(stages),
                    done,
                    cfg.steps,
                    loss,
                    shown,
                    time.perf_counter() - start,
                    event,
                    note,
                )
            )

    for si, (stage, n_steps) in enumerate(zip(stages, budget, strict=True)):
        if stage.on_start is not None:
            stage.on_start()
        for p in stage.params:
            p.requires_grad_(True)
        lr = base_lr * stage.lr_scale
        opt = torch.optim.Adam(stage.params, lr=lr)
        best_loss = math.inf
        best = [p.detach().clone() for p in stage.params]
        if stage.pass_through is not None:
            # Start "best" at the exact previous picture: training must beat it to replace it.
            start_weights = best
            with torch.no_grad():
                stage.pass_through()
                best = [p.detach().clone() for p in stage.params]
                best_loss = float(stage_loss(model, stage, coords, target))
            copy_into(stage.params, start_weights)
        restarts = 0
        seen_best = math.inf
        qat_from = n_steps - int(round(cfg.qat * n_steps)) if quant is not None else n_steps
        for step in range(n_steps):
            if cancel is not None and cancel.is_set():
                raise Cancelled("training was cancelled")
            # Cosine decay within each stage: late steps refine instead of bouncing around.
            frac = step / max(1, n_steps - 1)
            for group in opt.param_groups:
                group["lr"] = lr * (cfg.lr_decay + (1 - cfg.lr_decay) * 0.5 * (1 + math.cos(math.pi * frac)))
            if batch < n:
                idx = torch.randint(0, n, (batch,), generator=gen).to(device)
                x, y = coords[idx], target[idx]
            else:
                x, y = coords, target
            opt.zero_grad(set_to_none=True)
            if step == qat_from and math.isfinite(best_loss):
                # From here losses are measured at quantized weights: judge the kept weights that way too.
                best_loss = quantized_loss(model, stage, best, quant, precise, coords, target)
            model.train()
            floats = None
            if step >= qat_from:
                # Straight-through: loss and gradient at the quantized weights, the step on the floats.
                floats = [p.detach().clone() for p in stage.params]
                load_quantized(stage.params, floats, quant, precise)
            loss = stage_loss(model, stage, x, y)
            value = float(loss.detach())
            history.append(value)
            # Judged against what this stage's own steps reached, not the pass-through's loss: a fresh
            # layer may start far above the previous picture without anything going wrong.
            exploded = not math.isfinite(value) or (
                math.isfinite(seen_best) and value > cfg.explode_factor * seen_best
            )
            if math.isfinite(value):
                seen_best = min(seen_best, value)
            if exploded:
                restarts += 1
                note = (
                    f"{stage.name}: loss {'is not finite' if not math.isfinite(value) else f'exploded to {value:.4g}'}"
                    f" at step {step}; restored the best weights (loss {best_loss:.4g}) and halved the learning"
                    f" rate to {lr / 2:.3g}"
                )
                warnings.append(note)
                copy_into(stage.params, best)
                if restarts > cfg.max_restarts:
                    warnings.append(f"{stage.name}: stopped early after {cfg.max_restarts} restarts")
                    done += n_steps - step
                    break
                lr /= 2
                opt = torch.optim.Adam(stage.params, lr=lr)
                report(si, value, "diverged", note)
                done += 1
                continue
            if value < best_loss:
                best_loss = value
                copy_into(best, stage.params if floats is None else floats)
            loss.backward()
            if floats is not None:
                copy_into(stage.params, floats)  # after backward: autograd saved the quantized values
            opt.step()
            done += 1
            if step % progress_every == 0 or step == n_steps - 1:
                report(si, value)
        if not math.isfinite(best_loss):
            raise TrainingDiverged(
                f"{stage.name}: no finite loss in {n_steps} steps at learning rate {base_lr:g}; try a lower --lr"
            )
        copy_into(stage.params, best)
        model.eval()
        with torch.no_grad():
            if quant is not None and len(stages) > 1:
                quantize_in_place(stage.params, quant, precise)
            # The kept weights are judged on the whole image, not the last batch.
            full = float(torch.mean((model(coords, stage.depth) - target) ** 2))
        stage_psnr.append(loss_to_psnr(full))
        for p in stage.params:
            p.requires_grad_(False)
        report(si, full, "stage_done", psnr=stage_psnr[-1])
    if any(s.exits for s in stages):
        # A joint phase revised earlier stages' weights: judge every prefix again at the kept weights.
        with torch.no_grad():
            stage_psnr = [
                loss_to_psnr(float(torch.mean((model(coords, d) - target) ** 2))) for d in range(model.depths)
            ]
    for p in model.parameters():
        p.requires_grad_(True)
    model.to("cpu")
    return FitResult(model, stage_psnr, time.perf_counter() - start, done, warnings, history)

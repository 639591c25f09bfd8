"""Fit any registered INR to one image. Written once for every model: it walks the model's stages.

Runs synchronously; callers that must not block (the server's event loop) run it in a worker. Progress
goes to a callback, cancellation comes through a ``threading.Event``-like object.

:func:`fit` sets up a :class:`_Fit` (the data, the step budget, the bookkeeping every stage shares)
and runs one :class:`_StageFit` per training stage: steps with a cosine-decayed learning rate, the best
weights kept, a divergence answered by restoring them and halving the rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch

from codec.chunked import filled, full_mse, full_stage_loss
from codec.config import QuantConfig, TrainConfig
from codec.coords import grid
from codec.device import resolve_device
from codec.errors import Cancelled, SpinrError, TrainingDiverged
from codec.fit_core import (
    CancelToken,
    FitResult,
    ProgressFn,
    TrainProgress,
    copy_into,
    drift_penalised,
    flat,
    image_tensor,
    loss_to_psnr,
    split_steps,
    stage_loss,
)
from codec.kernels import kernels_for, use_kernels
from codec.models.base import INR, TrainingStage
from codec.stepalloc import multiplier_for_bits, steps_for
from codec.stepquant import load_quantized, measure_sensitivity, model_tensors, probe_data, quantize_in_place

__all__ = [
    "CancelToken",
    "FitResult",
    "ProgressFn",
    "TrainProgress",
    "copy_into",
    "fit",
    "host_loop_is_faster",
    "image_tensor",
    "loss_to_psnr",
    "quantized_loss",
    "split_steps",
    "stage_loss",
]


def quantized_loss(
    model: INR,
    stage: TrainingStage,
    weights: Sequence[torch.Tensor],
    steps: Sequence[float],
    x: torch.Tensor,
    y: torch.Tensor,
    cached: torch.Tensor | None = None,
    chunk: int = 0,
) -> float:
    """The stage's loss with its parameters set to the quantized ``weights`` (parameters left
    unchanged), ``chunk`` pixels at a time (codec/chunked.py; 0: all at once)."""
    current = [p.detach().clone() for p in stage.params]
    model.eval()
    load_quantized(stage.params, weights, steps)
    value = full_stage_loss(model, stage, x, y, cached, chunk)
    copy_into(stage.params, current)
    return value


class _Fit:
    """One call of :func:`fit`: the pixels, the stages and their step budget, and what every stage
    adds to (steps done, warnings, loss history, progress reports)."""

    def __init__(
        self,
        model: INR,
        image: np.ndarray,
        cfg: TrainConfig,
        quant: QuantConfig | None,
        progress: ProgressFn | None,
        cancel: CancelToken | None,
        progress_every: int,
    ) -> None:
        self.model, self.cfg, self.quant = model, cfg, quant
        self.progress, self.cancel, self.progress_every = progress, cancel, progress_every
        self.device = resolve_device(cfg.device)
        self.kernels = kernels_for(cfg, self.device)
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        model.to(self.device)
        h, w = image.shape[:2]
        self.coords = torch.from_numpy(grid(w, h)).to(self.device)
        self.target = image_tensor(image, self.device)
        self.pixels = self.coords.shape[0]
        self.batch = self.pixels if cfg.batch_pixels <= 0 else min(cfg.batch_pixels, self.pixels)
        self.base_lr = cfg.lr if cfg.lr is not None else model.default_lr
        self.stages = model.stages()
        self.quant_steps: dict[int, float] = {}
        if quant is not None:
            self.multiplier = multiplier_for_bits(quant.bits, sum(t.numel() for t in model_tensors(model)))
            self.probe = probe_data(image, self.device, seed=cfg.seed)
        self.budget = split_steps(cfg.steps, [s.weight for s in self.stages])
        for p in model.parameters():
            p.requires_grad_(False)
        self.start = time.perf_counter()
        self.done = 0
        self.warnings: list[str] = []
        self.history: list[float] = []

    def sample(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The step's pixels: all of them, or a random batch from the run's seeded generator (with
        its indices, which pick the same rows of a cached prefix)."""
        if self.batch < self.pixels:
            idx = torch.randint(0, self.pixels, (self.batch,), generator=self.gen).to(self.device)
            return self.coords[idx], self.target[idx], idx
        return self.coords, self.target, None

    def report(self, stage_index: int, loss: float, psnr: float, event: str = "step", note: str = "") -> None:
        if self.progress is not None:
            elapsed = time.perf_counter() - self.start
            self.progress(
                TrainProgress(
                    stage_index, len(self.stages), self.done, self.cfg.steps, loss, psnr, elapsed, event, note
                )
            )

    def stage_steps(self, stage: TrainingStage, weights: Sequence[torch.Tensor]) -> list[float]:
        """Steps for the stage's parameters at ``weights`` (allocated by sensitivity on the stage's
        own outputs, at the run's multiplier); remembered for the encoder."""
        current = [p.detach().clone() for p in stage.params]
        copy_into(stage.params, weights)
        depths: list[int | None] = [d for d, _ in stage.exits] or [stage.depth]
        sens = measure_sensitivity(self.model, stage.params, *self.probe, depths, self.cfg.seed)
        copy_into(stage.params, current)
        floats = [w.detach().cpu().numpy() for w in weights]
        steps = steps_for(floats, sens, self.multiplier)
        self.quant_steps.update({id(p): s for p, s in zip(stage.params, steps, strict=True)})
        return steps

    def prefix_loss(self, depth: int | None) -> float:
        """Mean squared error of one prefix on the whole image at the current weights."""
        return full_mse(lambda x: self.model(x, depth), self.coords, self.target, self.cfg.eval_pixels)

    def run(self) -> FitResult:
        with use_kernels(self.kernels):
            stage_psnr = [
                _StageFit(self, i, stage, steps).train()
                for i, (stage, steps) in enumerate(zip(self.stages, self.budget, strict=True))
            ]
            if any(s.exits for s in self.stages):
                # A joint phase revised earlier stages' weights: judge every prefix again at the kept weights.
                stage_psnr = [loss_to_psnr(self.prefix_loss(d)) for d in range(self.model.depths)]
        for p in self.model.parameters():
            p.requires_grad_(True)
        self.model.to("cpu")
        seconds = time.perf_counter() - self.start
        return FitResult(
            self.model, stage_psnr, seconds, self.done, self.warnings, self.history, self.quant_steps
        )


class _StageFit:
    """One training stage: its optimiser, its best weights so far and its restarts."""

    def __init__(self, fit: _Fit, index: int, stage: TrainingStage, steps: int) -> None:
        self.fit, self.index, self.stage, self.steps = fit, index, stage, steps
        if stage.on_start is not None:
            stage.on_start()
        for p in stage.params:
            p.requires_grad_(True)
        self.lr = fit.base_lr * stage.lr_scale
        self.opt = torch.optim.Adam(stage.params, lr=self.lr)
        self.best_loss = math.inf
        self.best = [p.detach().clone() for p in stage.params]
        self.cache = None
        if fit.cfg.prefix_cache and stage.prefix is not None:
            # The frozen part of the forward pass, once for the stage instead of at every step.
            prefix = stage.prefix
            self.cache = filled(lambda rows: prefix(fit.coords[rows]), fit.pixels, fit.cfg.eval_pixels)
        if stage.pass_through is not None:
            self._start_at_pass_through()
        self.restarts = 0
        self.seen_best = math.inf
        self.qat_from = steps - int(round(fit.cfg.qat * steps)) if fit.quant is not None else steps
        self.quant_steps: list[float] | None = None
        """The stage's quantization steps, once decided (at the first quantization-aware step)."""
        self.anchor: torch.Tensor | None = None
        """θ0, flat, when the stage pays for drifting from it (``TrainConfig.residual_penalty``)."""
        if stage.anchored and fit.cfg.penalty > 0:
            self.anchor = flat(stage.params).detach()

    def _start_at_pass_through(self) -> None:
        # Start "best" at the exact previous picture: training must beat it to replace it.
        stage, start_weights = self.stage, self.best
        assert stage.pass_through is not None
        with torch.no_grad():
            stage.pass_through()
            self.best = [p.detach().clone() for p in stage.params]
            self.best_loss = full_stage_loss(
                self.fit.model, stage, self.fit.coords, self.fit.target, self.cache, self.fit.cfg.eval_pixels
            )
        copy_into(stage.params, start_weights)

    def train(self) -> float:
        """Run the stage's steps, keep its best weights; returns its full-image PSNR."""
        for step in range(self.steps):
            if not self.step(step):
                break
        return self.finish()

    def _set_lr(self, step: int) -> None:
        # Cosine decay within each stage: late steps refine instead of bouncing around.
        frac = step / max(1, self.steps - 1)
        decay = self.fit.cfg.lr_decay
        for group in self.opt.param_groups:
            group["lr"] = self.lr * (decay + (1 - decay) * 0.5 * (1 + math.cos(math.pi * frac)))

    def step(self, step: int) -> bool:
        """One optimiser step; False when the stage stops early (too many restarts)."""
        fit, stage = self.fit, self.stage
        if fit.cancel is not None and fit.cancel.is_set():
            raise Cancelled("training was cancelled")
        self._set_lr(step)
        x, y, idx = fit.sample()
        cached = self.cache if self.cache is None or idx is None else self.cache[idx]
        self.opt.zero_grad(set_to_none=True)
        if step == self.qat_from:
            # The steps are chosen once, on the best weights so far, and kept to the end of the stage.
            self.quant_steps = fit.stage_steps(stage, self.best)
            if math.isfinite(self.best_loss):
                # From here losses are measured at quantized weights: judge the kept weights that way too.
                self.best_loss = quantized_loss(
                    fit.model, stage, self.best, self.quant_steps, fit.coords, fit.target, self.cache,
                    fit.cfg.eval_pixels,
                )  # fmt: skip
        fit.model.train()
        floats = None
        if step >= self.qat_from:
            # Straight-through: loss and gradient at the quantized weights, the step on the floats.
            assert self.quant_steps is not None
            floats = [p.detach().clone() for p in stage.params]
            load_quantized(stage.params, floats, self.quant_steps)
        loss = stage_loss(fit.model, stage, x, y, cached)
        value = float(loss.detach())
        fit.history.append(value)
        if self._exploded(value):
            return self._restart(step, value)
        if value < self.best_loss:
            self.best_loss = value
            copy_into(self.best, stage.params if floats is None else floats)
        if self.anchor is not None:
            loss = drift_penalised(loss, stage.params, self.anchor, fit.cfg.residual_norm, fit.cfg.penalty)
        loss.backward()
        if floats is not None:
            copy_into(stage.params, floats)  # after backward: autograd saved the quantized values
        self.opt.step()
        fit.done += 1
        if step % fit.progress_every == 0 or step == self.steps - 1:
            fit.report(self.index, value, loss_to_psnr(self.best_loss))
        return True

    def _exploded(self, value: float) -> bool:
        # Judged against what this stage's own steps reached, not the pass-through's loss: a fresh
        # layer may start far above the previous picture without anything going wrong.
        exploded = not math.isfinite(value) or (
            math.isfinite(self.seen_best) and value > self.fit.cfg.explode_factor * self.seen_best
        )
        if math.isfinite(value):
            self.seen_best = min(self.seen_best, value)
        return exploded

    def _restart(self, step: int, value: float) -> bool:
        """Restore the best weights and halve the learning rate; False once restarts are used up."""
        fit, name = self.fit, self.stage.name
        self.restarts += 1
        what = "is not finite" if not math.isfinite(value) else f"exploded to {value:.4g}"
        note = (
            f"{name}: loss {what} at step {step}; restored the best weights (loss {self.best_loss:.4g})"
            f" and halved the learning rate to {self.lr / 2:.3g}"
        )
        fit.warnings.append(note)
        copy_into(self.stage.params, self.best)
        if self.restarts > fit.cfg.max_restarts:
            fit.warnings.append(f"{name}: stopped early after {fit.cfg.max_restarts} restarts")
            fit.done += self.steps - step
            return False
        self.lr /= 2
        self.opt = torch.optim.Adam(self.stage.params, lr=self.lr)
        fit.report(self.index, value, loss_to_psnr(self.best_loss), "diverged", note)
        fit.done += 1
        return True

    def finish(self) -> float:
        """Keep the best weights (quantized when the run quantizes between stages), freeze them, and
        judge them on the whole image, not the last batch."""
        fit, stage = self.fit, self.stage
        if not math.isfinite(self.best_loss):
            raise TrainingDiverged(
                f"{stage.name}: no finite loss in {self.steps} steps at learning rate {fit.base_lr:g};"
                " try a lower --lr"
            )
        copy_into(stage.params, self.best)
        fit.model.eval()
        if fit.quant is not None and len(fit.stages) > 1:
            steps = self.quant_steps if self.quant_steps is not None else fit.stage_steps(stage, self.best)
            quantize_in_place(stage.params, steps)
        full = fit.prefix_loss(stage.depth)
        for p in stage.params:
            p.requires_grad_(False)
        fit.report(self.index, full, loss_to_psnr(full), "stage_done")
        return loss_to_psnr(full)


def host_loop_is_faster(cfg: TrainConfig) -> bool:
    """Whether one fit of the fast loop runs faster with the plain loop's host-side bookkeeping (and
    the fast loop's kernels and prefix cache): on the CPU in fp32 without ``torch.compile``, where
    reading the loss costs nothing and the batched loop's per-step device bookkeeping is overhead
    (0.48 against 0.38 CPU s for a SPINR 32 x 6 fit; docs/SPINR.md, "Speed")."""
    return resolve_device(cfg.device).type == "cpu" and cfg.precision == "fp32" and not cfg.compile


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

    With ``quant``, each stage's weights are quantized the moment they are frozen (at steps allocated by
    sensitivity, kept in ``FitResult.steps`` for the encoder), so every later stage trains on exactly the
    activations a decoder will compute: quantization error cannot compound through a deep progressive
    trunk (docs/SPINR.md measures the difference)."""
    cfg.validate()
    if cfg.loop == "fast" and not host_loop_is_faster(cfg):
        from codec.batched import fit_many

        (result,) = fit_many([model], [image], [cfg], [progress], cancel, progress_every, quant)
        if isinstance(result, SpinrError):
            raise result
        return result
    return _Fit(model, image, cfg, quant, progress, cancel, progress_every).run()

"""One training stage of a batched fit (``codec.batched``), every model in lock-step.

It mirrors ``codec.train._StageFit`` step for step, with each of its decisions made per model on the
device: whether the loss exploded, whether it is the best so far (then its weights are kept),
restoring the best weights and halving that model's learning rate after a divergence, stopping a
model whose restarts are used up. The host reads what happened every ``sync_every`` steps and reports
it in order: progress events, the loss history and the warnings come out as the plain loop's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from codec.chunked import chunked, combine, filled, stage_sse, summed
from codec.errors import TrainingDiverged
from codec.fit_core import loss_to_psnr, residual_rate, stage_loss, with_residual_penalty
from codec.stack import StackedAdam, per_model
from codec.stepquant import load_quantized, quantize_in_place

if TYPE_CHECKING:
    from codec.batched import BatchFit


def compiled(fn: Callable[..., torch.Tensor], on_fail: Callable[[str], None]) -> Callable[..., torch.Tensor]:
    """``torch.compile(fn)``, falling back to ``fn`` (and telling ``on_fail`` why) when compiling fails,
    e.g. where no C++ compiler is installed. Tracing reads ``.grad`` of the parameter views (not
    leaves): a harmless warning, silenced here."""
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(64, torch._dynamo.config.recompile_limit)  # a stage each
    inner = torch.compile(fn, dynamic=False)
    failed: list[str] = []

    def call(*args: Any) -> torch.Tensor:
        if failed:
            return fn(*args)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message=".*not a leaf Tensor is being accessed", category=UserWarning
                )
                return inner(*args)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: the eager path is the fallback
            failed.append(f"torch.compile failed ({type(exc).__name__}); trained without it")
            on_fail(failed[0])
            return fn(*args)

    return call


class BatchStage:
    """One stage: its trained columns of the stack (a leaf), their Adam, best weights and restarts."""

    def __init__(self, fit: BatchFit, index: int, steps: int) -> None:
        self.fit, self.index, self.steps = fit, index, steps
        self.mine = [s[index] for s in fit.stages]
        """Each model's own stage (its on_start, pass-through and parameters)."""
        self.stage = stage = self.mine[0]
        """Model 0's: its closures run on any model's slice under ``functional_call``."""
        for s in self.mine:
            if s.on_start is not None:
                s.on_start()
        self.start, end = fit.stack.span(stage.params)
        self.leaf = fit.stack.flat[:, self.start : end].detach().requires_grad_(True)
        fit.use_params(fit.stack.named(self.leaf, self.start))
        dev, k = fit.device, fit.k
        self.lr = fit.base_lr * stage.lr_scale
        self.host_lr = self.lr.tolist()
        self.adam = StackedAdam([self.leaf])
        self.best_loss = torch.full((k,), math.inf, device=dev)
        self.best = self.leaf.detach().clone()
        self.cache = None
        if fit.cfg.prefix_cache and stage.prefix is not None:
            prefix = stage.prefix
            self.cache = filled(
                lambda rows: fit.run(lambda m, x: prefix(x), fit.coords[rows], batched=(False,)),
                fit.pixels,
                fit.cfg.eval_pixels,
                dim=1,
            )
        ok = [f is None for f in fit.failed]
        self.active = torch.tensor(ok, device=dev)
        self.host_active = ok
        if stage.pass_through is not None:
            self._start_at_pass_through()
        self.restarts = torch.zeros(k, dtype=torch.int64, device=dev)
        self.host_restarts = [0] * k
        self.seen_best = torch.full((k,), math.inf, dtype=torch.float64, device=dev)
        self.qat_from = steps - int(round(fit.cfg.qat * steps)) if fit.quant is not None else steps
        self.quant_steps: list[list[float] | None] = [None] * k
        """Each model's steps for this stage, once decided (at the first quantization-aware step)."""
        self.anchor = self.leaf.detach().clone() if stage.anchored and fit.cfg.penalty > 0 else None
        """θ0's columns, when the stage pays for drifting from them (``TrainConfig.residual_penalty``)."""
        self.rec = torch.zeros(4, fit.cfg.sync_every, k, device=dev)
        """Per step of the current block: loss, best loss after it, exploded, ran (read at each sync)."""
        self._forward = self._losses
        if fit.cfg.compile:
            self._forward = compiled(self._losses, self._compile_failed)

    def _compile_failed(self, note: str) -> None:
        for warnings_of_model in self.fit.warnings:
            warnings_of_model.append(note)

    # -- losses ------------------------------------------------------------------------------------
    def _losses(
        self, x: torch.Tensor, y: torch.Tensor, h: torch.Tensor | None, x_batched: bool
    ) -> torch.Tensor:
        fit, stage = self.fit, self.stage
        bf16 = fit.cfg.precision == "bf16"
        with torch.autocast(fit.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = fit.run(
                lambda m, x, y, h: stage_loss(m, stage, x, y, h), x, y, h, batched=(x_batched, True, True)
            )
        return out.float() if bf16 else out

    def _full_losses(self) -> torch.Tensor:
        """(K,) stage loss on every pixel, no gradient, eval mode; in chunks of ``eval_pixels``
        (codec/chunked.py) when the whole image at once does not fit."""
        fit, stage, chunk = self.fit, self.stage, self.fit.cfg.eval_pixels
        fit.mode(False)
        if not chunked(fit.pixels, chunk):
            with torch.no_grad():
                return self._losses(fit.coords, fit.target, self.cache, False).detach()
        bf16 = fit.cfg.precision == "bf16"

        def part(rows: slice) -> torch.Tensor:
            h = None if self.cache is None else self.cache[:, rows]
            with torch.autocast(fit.device.type, dtype=torch.bfloat16, enabled=bf16):
                return fit.run(
                    lambda m, x, y, h: stage_sse(m, stage, x, y, h),
                    fit.coords[rows],
                    fit.target[:, rows],
                    h,
                    batched=(False, True, True),
                )

        return combine(stage, summed(part, fit.pixels, chunk), fit.pixels * 3).float()

    def _load_quantized(self, weights: torch.Tensor) -> None:
        """Set the trained columns to the dequantized codes of ``weights`` (K, n), model by model, at
        each model's steps for the stage (a model without them, stopped before they were chosen, is
        left as it is)."""
        fit = self.fit
        for k, s in enumerate(self.mine):
            steps = self.quant_steps[k]
            if steps is not None:
                load_quantized(s.params, fit.stack.unflatten(weights, self.start, s.params, k), steps)

    def _start_at_pass_through(self) -> None:
        # Start "best" at the exact previous picture: training must beat it to replace it.
        start = self.leaf.detach().clone()
        with torch.no_grad():
            for s in self.mine:
                assert s.pass_through is not None
                s.pass_through()
            self.best = self.leaf.detach().clone()
            self.best_loss = self._full_losses()
            self.leaf.copy_(start)

    # -- the stage ---------------------------------------------------------------------------------
    def train(self) -> list[float]:
        """Run the stage's steps; returns each model's full-image PSNR at its kept weights."""
        fit, every = self.fit, self.fit.cfg.sync_every
        s = 0
        while s < self.steps and any(self.host_active):
            n = min(every, self.steps - s)
            states = [g.get_state() for g in fit.gens]
            block = fit.pixel_block(n, self.host_active)
            for j in range(n):
                self._stop(fit.check_cancel())
                self.step(s + j, j, block)
            self.sync(s, n, states)
            s += n
        return self.finish()

    def _stop(self, cancelled: list[int]) -> None:
        """Models cancelled on their own take no further step (their steps so far are reported)."""
        if cancelled:
            for k in cancelled:
                self.host_active[k] = False
            self.active = self.active & torch.tensor(self.host_active, device=self.fit.device)

    def _batch(
        self, j: int, block: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, bool]:
        fit = self.fit
        if block is None:
            return fit.coords, fit.target, self.cache, False
        idx = block[:, j]
        rows = idx[..., None]
        y = torch.take_along_dim(fit.target, rows, dim=1)
        h = None if self.cache is None else torch.take_along_dim(self.cache, rows, dim=1)
        return fit.coords[idx], y, h, True

    def step(self, step: int, j: int, block: torch.Tensor | None) -> None:
        fit, cfg = self.fit, self.fit.cfg
        frac = step / max(1, self.steps - 1)
        lr = self.lr * (cfg.lr_decay + (1 - cfg.lr_decay) * 0.5 * (1 + math.cos(math.pi * frac)))
        x, y, h, x_batched = self._batch(j, block)
        self.adam.zero_grad()
        if step == self.qat_from:
            # From here losses are measured at quantized weights: judge the kept weights that way too.
            current = self.leaf.detach().clone()
            with torch.no_grad():
                # Each model's steps are chosen once, on its best weights so far, and kept to the end.
                for k, s in enumerate(self.mine):
                    if self.host_active[k]:
                        best = fit.stack.unflatten(self.best, self.start, s.params, k)
                        self.quant_steps[k] = fit.stage_steps(k, s, best)
                self._load_quantized(self.best)
                quantized = self._full_losses()
                self.leaf.copy_(current)
            self.best_loss = torch.where(torch.isfinite(self.best_loss), quantized, self.best_loss)
        floats = None
        if step >= self.qat_from:
            # Straight-through: loss and gradient at the quantized weights, the step on the floats.
            floats = self.leaf.detach().clone()
            self._load_quantized(floats)
        fit.mode(True)
        losses = self._forward(x, y, h, x_batched)
        value = losses.detach()
        active = self.active
        finite = torch.isfinite(value)
        wide = value.double()
        exploded = active & (
            ~finite | (torch.isfinite(self.seen_best) & (wide > cfg.explode_factor * self.seen_best))
        )
        self.seen_best = torch.where(active & finite, torch.minimum(self.seen_best, wide), self.seen_best)
        better = active & ~exploded & (value < self.best_loss)
        self.best_loss = torch.where(better, value, self.best_loss)
        with torch.no_grad():
            kept = self.leaf if floats is None else floats
            torch.where(per_model(better, kept), kept, self.best, out=self.best)
            self.rec[0, j] = value
            self.rec[1, j] = self.best_loss
            self.rec[2, j] = exploded
            self.rec[3, j] = active
        keep = active & ~exploded
        if self.anchor is not None:
            rate = residual_rate(self.leaf - self.anchor, cfg.residual_norm, dim=1)
            losses = with_residual_penalty(losses, rate, cfg.penalty)
        torch.where(keep, losses, torch.zeros_like(losses)).sum().backward()
        with torch.no_grad():
            if floats is not None:
                self.leaf.copy_(floats)  # after backward: autograd saved the quantized values
        self.adam.step(lr, keep)
        # A divergence: restore that model's best weights, halve its rate, forget its Adam state.
        self.restarts += exploded
        stop = exploded & (self.restarts > cfg.max_restarts)
        restart = exploded & ~stop
        with torch.no_grad():
            torch.where(per_model(exploded, self.leaf), self.best, self.leaf, out=self.leaf)
        self.lr = torch.where(restart, self.lr / 2, self.lr)
        self.adam.reset(restart)
        self.active = active & ~stop

    def sync(self, first: int, n: int, states: list[torch.Tensor]) -> None:
        """Read the block's record and report it, model by model, in the plain loop's order."""
        fit = self.fit
        rec = self.rec[:, :n].cpu().numpy()
        for k in range(fit.k):
            for j in np.flatnonzero(rec[3, :, k]):
                step, value, best = first + int(j), float(rec[0, j, k]), float(rec[1, j, k])
                fit.history[k].append(value)
                if rec[2, j, k]:
                    self._diverged(k, step, value, best, first, states[k])
                elif step % fit.progress_every == 0 or step == self.steps - 1:
                    fit.report(k, self.index, fit.done + step + 1, value, loss_to_psnr(best))

    def _diverged(
        self, k: int, step: int, value: float, best: float, first: int, state: torch.Tensor
    ) -> None:
        fit, name = self.fit, self.stage.name
        self.host_restarts[k] += 1
        what = "is not finite" if not math.isfinite(value) else f"exploded to {value:.4g}"
        note = (
            f"{name}: loss {what} at step {step}; restored the best weights (loss {best:.4g})"
            f" and halved the learning rate to {self.host_lr[k] / 2:.3g}"
        )
        fit.warnings[k].append(note)
        if self.host_restarts[k] > fit.cfg.max_restarts:
            fit.warnings[k].append(f"{name}: stopped early after {fit.cfg.max_restarts} restarts")
            self.host_active[k] = False
            if fit.batch < fit.pixels:
                # The plain loop drew no batch after this step: leave the generator where it would be.
                gen = fit.gens[k]
                gen.set_state(state)
                torch.randint(0, fit.pixels, (step - first + 1, fit.batch), generator=gen)
            return
        self.host_lr[k] /= 2
        fit.report(k, self.index, fit.done + step, value, loss_to_psnr(best), "diverged", note)

    def finish(self) -> list[float]:
        """Keep each model's best weights (quantized when the run quantizes between stages), freeze
        them, and judge them on the whole image."""
        fit, stage = self.fit, self.stage
        for k, loss in enumerate(self.best_loss.tolist()):
            if fit.failed[k] is None and not math.isfinite(loss):
                fit.failed[k] = TrainingDiverged(
                    f"{stage.name}: no finite loss in {self.steps} steps at learning rate"
                    f" {float(fit.base_lr[k]):g}; try a lower --lr"
                )
        if fit.k == 1 and fit.failed[0] is not None:
            raise fit.failed[0]
        with torch.no_grad():
            self.leaf.copy_(self.best)
            if fit.quant is not None and len(fit.stages[0]) > 1:
                for k, s in enumerate(self.mine):
                    if fit.failed[k] is not None:
                        continue  # its result is its error: no steps to choose
                    steps = self.quant_steps[k]
                    if steps is None:
                        steps = fit.stage_steps(k, s, [p.detach().clone() for p in s.params])
                    quantize_in_place(s.params, steps)
        fit.use_params(fit.stack.named())
        full = fit.prefix_losses(stage.depth).tolist()
        for k in range(fit.k):
            fit.report(k, self.index, fit.done + self.steps, full[k], loss_to_psnr(full[k]), "stage_done")
        return [loss_to_psnr(v) for v in full]

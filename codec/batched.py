"""The fast training loop: K models of one architecture fitted at once (K = 1 is one fast fit).

K networks (different seeds, different images of one size) train in lock-step, stage by stage. Their
parameters are stacked into (K, ...) tensors (``codec.stack``); one forward pass runs them all through
``torch.func.vmap`` (batched matmuls); one Adam moves the stack, with each model's own learning rate,
step count and restarts. Each model keeps its own best weights and recovers from its own divergences
exactly as :func:`codec.train.fit` does, so a model fitted in a batch ends where it would alone, up to
float rounding (tests/test_batched.py).

Besides batching, what makes it faster than the plain loop (measured in docs/SPINR.md, "Speed"):
- the bookkeeping stays on the device: best weights and losses are kept with ``torch.where``, and the
  host reads the losses every ``TrainConfig.sync_every`` steps in one transfer (progress, the loss
  history and divergence warnings are then reported in the order they happened);
- pixel batches are drawn ``sync_every`` steps at a time (the same random sequence as the plain loop);
- fused sine kernels (``codec.kernels``), the prefix cache, coordinate grids kept between fits, TF32
  on CUDA; bf16 autocast and ``torch.compile`` as options.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from codec.batched_stage import BatchStage
from codec.chunked import chunked, sq_error, summed
from codec.config import EncodeConfig, QuantConfig, TrainConfig
from codec.coords import grid
from codec.device import resolve_device
from codec.errors import ConfigError, SpinrError
from codec.fit_core import (
    CancelToken,
    FitResult,
    ProgressFn,
    TrainProgress,
    copy_into,
    image_tensor,
    loss_to_psnr,
    split_steps,
)
from codec.kernels import kernels_for, use_kernels
from codec.models.base import INR, TrainingStage
from codec.stack import ParamStack
from codec.stepalloc import multiplier_for_bits, steps_for
from codec.stepquant import measure_sensitivity, model_tensors, probe_data

_GRIDS: dict[tuple[int, int, str], torch.Tensor] = {}
"""Coordinate grids by (width, height, device), kept between fits (a worker fits many same-size images)."""


def coords_on(width: int, height: int, device: torch.device) -> torch.Tensor:
    key = (width, height, str(device))
    if key not in _GRIDS:
        if len(_GRIDS) >= 8:
            _GRIDS.pop(next(iter(_GRIDS)))
        _GRIDS[key] = torch.from_numpy(grid(width, height)).to(device)
    return _GRIDS[key]


def batch_problem(models: Sequence[INR], images: Sequence[np.ndarray], cfgs: Sequence[TrainConfig]) -> str:
    """Why these fits cannot train as one batch ("" when they can)."""
    if not (len(models) == len(images) == len(cfgs) >= 1):
        return f"need as many models, images and configs (got {len(models)}, {len(images)}, {len(cfgs)})"
    first = models[0]
    for m in models[1:]:
        if type(m) is not type(first) or _batch_options(m) != _batch_options(first):
            return f"models differ: {first.kind} {first.arch()} and {m.kind} {m.arch()}"
    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        return f"images differ in size: {sorted(shapes)}"
    base = dataclasses.replace(cfgs[0], seed=0)
    if any(dataclasses.replace(c, seed=0) != base for c in cfgs):
        return "training configs differ in more than the seed"
    if len(models) > 1 and getattr(first.options, "dropout", 0.0) > 0:
        return "neuron dropout draws from one random stream per fit; fits with dropout train one at a time"
    return ""


def batchable(cfg: EncodeConfig) -> bool:
    """Whether fits of this config may share a batch with others of its shape: the fast loop, and no
    neuron dropout (whose masks come from one random stream per fit)."""
    return cfg.train.loop == "fast" and not float(cfg.model.options.get("dropout", 0) or 0) > 0


def _batch_options(model: INR) -> tuple[Any, ...]:
    """What must agree between models of one batch: size and options, but for buffer seeds."""
    options = model.options
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        options = dataclasses.replace(options, **{name: 0 for name in model.seed_options})
    return model.width, model.hidden_layers, options


class _Call(nn.Module):
    """Holds model 0 so ``functional_call`` can run any function of it on one model's slice."""

    def __init__(self, model: INR) -> None:
        super().__init__()
        self.model = model
        self.fn: Callable[..., torch.Tensor] | None = None

    def forward(self, *args: Any) -> torch.Tensor:
        assert self.fn is not None
        return self.fn(self.model, *args)


class BatchFit:
    """One call of :func:`fit_many`: the stacked models, their images, budget and bookkeeping."""

    def __init__(
        self,
        models: Sequence[INR],
        images: Sequence[np.ndarray],
        cfgs: Sequence[TrainConfig],
        quant: QuantConfig | None,
        progress: Sequence[ProgressFn | None],
        cancel: CancelToken | Sequence[CancelToken | None] | None,
        progress_every: int,
    ) -> None:
        self.models, self.cfg, self.quant = list(models), cfgs[0], quant
        self.k = len(self.models)
        self.progress, self.progress_every = list(progress), progress_every
        self.cancel: CancelToken | None = None
        """Stops the whole fit."""
        self.cancels: list[CancelToken | None] = [None] * self.k
        """Stop one model each (the others train on)."""
        if isinstance(cancel, Sequence):
            self.cancels = list(cancel)
        else:
            self.cancel = cancel
        self.device = resolve_device(self.cfg.device)
        if self.device.type == "cuda" and self.cfg.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.kernels = kernels_for(self.cfg, self.device)
        torch.manual_seed(self.cfg.seed)  # dropout masks (a model with dropout trains alone)
        self.gens = [torch.Generator(device="cpu").manual_seed(c.seed) for c in cfgs]
        for m in self.models:
            m.to(self.device)
            for p in m.parameters():
                p.requires_grad_(False)
        h, w = images[0].shape[:2]
        self.coords = coords_on(w, h, self.device)
        self.target = torch.stack([image_tensor(img, self.device) for img in images])
        self.pixels = self.coords.shape[0]
        self.batch = self.pixels if self.cfg.batch_pixels <= 0 else min(self.cfg.batch_pixels, self.pixels)
        self.base_lr = torch.tensor(
            [c.lr if c.lr is not None else m.default_lr for c, m in zip(cfgs, self.models, strict=True)],
            dtype=torch.float64,
            device=self.device,
        )
        self.stages = [m.stages() for m in self.models]
        self.seeds = [c.seed for c in cfgs]
        self.quant_steps: list[dict[int, float]] = [{} for _ in self.models]
        """Each model's quantization steps decided while training (``FitResult.steps``)."""
        if quant is not None:
            weights = sum(t.numel() for t in model_tensors(self.models[0]))
            self.multiplier = multiplier_for_bits(quant.bits, weights)
            self.probes = [
                probe_data(img, self.device, seed=c.seed) for img, c in zip(images, cfgs, strict=True)
            ]
        self.budget = split_steps(self.cfg.steps, [s.weight for s in self.stages[0]])
        self.stack = ParamStack(self.models, self.device, [s.params for s in self.stages[0]])
        self.use_params(self.stack.named())
        self.call = _Call(self.models[0])
        self.start = time.perf_counter()
        self.done = 0
        """Steps of the stages finished so far (every model's count: a stopped stage counts in full)."""
        self.warnings: list[list[str]] = [[] for _ in self.models]
        self.history: list[list[float]] = [[] for _ in self.models]
        self.failed: list[SpinrError | None] = [None] * self.k

    def stage_steps(self, k: int, stage: TrainingStage, weights: Sequence[torch.Tensor]) -> list[float]:
        """Model ``k``'s steps for its stage's parameters at ``weights``, as ``codec.train`` chooses
        them (sensitivity on the stage's own outputs, at the run's multiplier); remembered for the
        encoder."""
        current = [p.detach().clone() for p in stage.params]
        copy_into(stage.params, weights)
        depths: list[int | None] = [d for d, _ in stage.exits] or [stage.depth]
        sens = measure_sensitivity(self.models[k], stage.params, *self.probes[k], depths, self.seeds[k])
        copy_into(stage.params, current)
        steps = steps_for([w.detach().cpu().numpy() for w in weights], sens, self.multiplier)
        self.quant_steps[k].update({id(p): s for p, s in zip(stage.params, steps, strict=True)})
        return steps

    # -- forward passes over the stack ------------------------------------------------------------
    def use_params(self, named: dict[str, torch.Tensor]) -> None:
        """The stacked parameters ``functional_call`` sees from now on (a stage swaps in its trained leaf)."""
        self.params_now = named
        if self.k == 1:  # one model runs without vmap, on its slice
            self.params_now = {name: t[0] for name, t in named.items()}
            self.buffers_now = {name: t[0] for name, t in self.stack.buffers.items()}
        else:
            self.buffers_now = self.stack.buffers

    def mode(self, training: bool) -> None:
        """Model 0's train/eval mode (dropout), switched only when it changes (it walks every module)."""
        if self.call.model.training != training:
            self.call.model.train(training)

    def run(
        self, fn: Callable[..., torch.Tensor], *args: torch.Tensor | None, batched: Sequence[bool]
    ) -> Any:
        """``fn(model_k, *args_k)`` for every model at once; ``batched`` says which args have a K axis."""
        self.call.fn = fn

        def one(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], *xs: Any) -> Any:
            return functional_call(self.call, (params, buffers), xs, tie_weights=False)

        with use_kernels(self.kernels):
            if self.k == 1:
                # One model: its slice, no vmap (whose per-op dispatch costs more than a small step).
                xs = [a[0] if b and a is not None else a for a, b in zip(args, batched, strict=True)]
                return one(self.params_now, self.buffers_now, *xs).unsqueeze(0)
            dims = (0, 0, *(0 if b and a is not None else None for a, b in zip(args, batched, strict=True)))
            return vmap(one, in_dims=dims, randomness="different")(self.params_now, self.buffers_now, *args)

    def prefix_losses(self, depth: int | None) -> torch.Tensor:
        """(K,) mean squared error of one prefix on the whole image at the current weights, in
        chunks of ``eval_pixels`` (codec/chunked.py) when the whole image at once does not fit."""
        self.mode(False)
        chunk = self.cfg.eval_pixels
        if chunked(self.pixels, chunk):
            sse = summed(
                lambda rows: self.run(
                    lambda m, x, y: sq_error(m(x, depth), y), self.coords[rows], self.target[:, rows],
                    batched=(False, True),
                ),
                self.pixels,
                chunk,
            )  # fmt: skip
            return sse / (self.pixels * 3)
        with torch.no_grad():
            out = self.run(
                lambda m, x, y: torch.mean((m(x, depth) - y) ** 2),
                self.coords,
                self.target,
                batched=(False, True),
            )
        return out.detach()

    def pixel_block(self, steps: int, active: Sequence[bool]) -> torch.Tensor | None:
        """(K, steps, batch) pixel indices for the next ``steps`` steps (None: full batch), drawn from
        each model's generator as the plain loop draws them, one batch per step."""
        if self.batch >= self.pixels:
            return None
        rows = [
            torch.randint(0, self.pixels, (steps, self.batch), generator=g)
            if on
            else torch.zeros(steps, self.batch, dtype=torch.int64)
            for g, on in zip(self.gens, active, strict=True)
        ]
        return torch.stack(rows).to(self.device)

    # -- reporting ---------------------------------------------------------------------------------
    def report(
        self, k: int, stage: int, done: int, loss: float, psnr: float, event: str = "step", note: str = ""
    ) -> None:
        fn = self.progress[k]
        if fn is not None:
            elapsed = time.perf_counter() - self.start
            fn(
                TrainProgress(
                    stage, len(self.stages[0]), done, self.cfg.steps, loss, psnr, elapsed, event, note
                )
            )

    def check_cancel(self) -> list[int]:
        """Raise :class:`Cancelled` when the whole fit's token is set; returns the models whose own
        token was set since the last check (each then stops, its result a :class:`Cancelled`)."""
        from codec.errors import Cancelled

        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("training was cancelled")
        stopped = []
        for k, token in enumerate(self.cancels):
            if token is not None and self.failed[k] is None and token.is_set():
                self.failed[k] = Cancelled("training was cancelled")
                stopped.append(k)
        return stopped

    # -- the whole fit -----------------------------------------------------------------------------
    def fit(self) -> list[FitResult | SpinrError]:
        stage_psnr: list[list[float]] = [[] for _ in self.models]
        for i, steps in enumerate(self.budget):
            if all(f is not None for f in self.failed):
                break  # every model cancelled or diverged: nothing left to train
            psnrs = BatchStage(self, i, steps).train()
            for k, value in enumerate(psnrs):
                stage_psnr[k].append(value)
            self.done += steps
        if any(s.exits for s in self.stages[0]):
            # A joint phase revised earlier stages' weights: judge every prefix again at the kept weights.
            losses = [self.prefix_losses(d).cpu().tolist() for d in range(self.models[0].depths)]
            stage_psnr = [[loss_to_psnr(per_depth[k]) for per_depth in losses] for k in range(self.k)]
        self.stack.release()
        seconds = (time.perf_counter() - self.start) / self.k
        results: list[FitResult | SpinrError] = []
        for k, m in enumerate(self.models):
            for p in m.parameters():
                p.requires_grad_(True)
            m.to("cpu")
            failed = self.failed[k]
            results.append(
                failed
                if failed is not None
                else FitResult(
                    m,
                    stage_psnr[k],
                    seconds,
                    self.cfg.steps,
                    self.warnings[k],
                    self.history[k],
                    self.quant_steps[k],
                )
            )
        return results


def fit_many(
    models: Sequence[INR],
    images: Sequence[np.ndarray],
    cfgs: Sequence[TrainConfig],
    progress: Sequence[ProgressFn | None] | None = None,
    cancel: CancelToken | Sequence[CancelToken | None] | None = None,
    progress_every: int = 10,
    quant: QuantConfig | None = None,
) -> list[FitResult | SpinrError]:
    """Fit ``models[k]`` to ``images[k]`` with ``cfgs[k]``, all at once; one result per model, or the
    :class:`TrainingDiverged` error of a model that found no finite loss (the others are unaffected).
    ``cancel`` is one token for the whole fit (raising :class:`Cancelled`) or one per model: a model
    whose token is set stops at its next step and comes back as a :class:`Cancelled` error.

    The models must share their architecture and options, the images their size, and the configs
    everything but the seed (:func:`batch_problem` says what differs). Memory grows K-fold over one fit."""
    for c in cfgs:
        c.validate()
    problem = batch_problem(models, images, cfgs)
    if problem:
        raise ConfigError(f"cannot fit these models as one batch: {problem}")
    callbacks = list(progress) if progress is not None else [None] * len(models)
    return BatchFit(models, images, cfgs, quant, callbacks, cancel, progress_every).fit()

"""Reptile (Nichol et al. 2018), the first-order meta-learning of a shared initialisation θ0.

Each meta step fits a copy of θ0 to one random crop of the corpus for a few Adam steps (φ), then moves
θ0 toward it: θ0 ← θ0 + ε (φ − θ0), ε decaying linearly. The inner loss is the one an encode from θ0
fine-tunes on: a SIREN's MSE, or for SPINR the geometric mean of every prefix's MSE (the joint phase's
loss), so every stage and head of θ0 decodes a picture after fine-tuning. A checkpoint (the same
``.spnri`` container, its ``meta`` saying where to resume) is written every ``checkpoint_every`` steps;
each step's crop is drawn from a generator seeded by (seed, step), so a resumed run is the run that
was interrupted.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codec.coords import grid
from codec.errors import ConfigError
from codec.fit_core import drift_penalised, flat
from codec.meta.corpus import random_crop
from codec.meta.initfile import InitFile, read_init, write_init
from codec.models.base import INR, build_model


@dataclass
class MetaConfig:
    """What θ0 is learned for, and how."""

    model: str = "spinr"
    """``spinr`` or ``siren``."""
    width: int = 24
    """Neurons per hidden layer (the size model's choice for the rate, codec/sizemodel.py)."""
    hidden_layers: int = 3
    """Hidden layers."""
    pe_frequencies: int = 10
    """Positional-encoding frequencies L."""
    pe_scale: float = 1.4
    """Positional-encoding base."""
    crop_width: int = 192
    """Task crops are this wide (the mini-Kodak width)."""
    crop_height: int = 128
    """...and this high."""
    downscale: int = 4
    """Corpus images are box-shrunk by this factor first (mini Kodak is Kodak / 4)."""
    meta_steps: int = 120
    """Reptile steps (``meta_batch`` tasks each)."""
    inner_steps: int = 400
    """Adam steps per task."""
    inner_lr: float = 3e-3
    """The inner loop's Adam learning rate (also, unless overridden, the rate an encode from θ0
    fine-tunes at: ``meta["finetune"]["lr"]``)."""
    inner_decay: float = 0.1
    """The inner rate decays on a cosine to this fraction of ``inner_lr`` (1: constant; 0.1: the
    encoder's own schedule, so a long inner loop is the fine-tune an encode from θ0 runs)."""
    meta_batch: int = 2
    """Tasks (crops) per meta step; θ0 moves toward the mean of their fits (batched Reptile)."""
    inner_pixels: int = 8192
    """Pixels per inner step (a random subset; 0: every pixel of the crop)."""
    inner_penalty: float = 0.0
    """The inner loop's residual penalty λ: each task trains on ``loss · exp(λ R)``, R the mean |φ − θ0|
    (an encode's ``--residual-penalty``, l1), so θ0 learns a start whose penalised fine-tunes stay near
    it and still fit. The file carries it for the encoder (``meta["finetune"]["residual_penalty"]``).
    0: none."""
    outer_lr: float = 0.5
    """ε at the first step; it decays linearly to ``outer_lr_end``."""
    outer_lr_end: float = 0.05
    """ε at the last step."""
    seed: int = 0
    """Seeds θ0's random start and every task's crop."""
    checkpoint_every: int = 50
    """Meta steps between checkpoints."""

    def validate(self) -> MetaConfig:
        if self.model not in ("spinr", "siren"):
            raise ConfigError(f"meta-training model {self.model!r} is not one of spinr, siren")
        for name in (
            "width",
            "meta_steps",
            "inner_steps",
            "meta_batch",
            "crop_width",
            "crop_height",
            "downscale",
            "checkpoint_every",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} {getattr(self, name)} must be at least 1")
        if not 0 < self.outer_lr_end <= self.outer_lr <= 1:
            raise ConfigError(
                f"outer_lr {self.outer_lr} and outer_lr_end {self.outer_lr_end}: need 0 < end <= start <= 1"
            )
        if not 0 <= self.inner_penalty <= 1e6:
            raise ConfigError(f"inner_penalty {self.inner_penalty} is out of range: allowed 0..1e6")
        if not 0 < self.inner_decay <= 1:
            raise ConfigError(f"inner_decay {self.inner_decay} is out of range: allowed 0 < inner_decay <= 1")
        return self

    def options(self) -> dict[str, Any]:
        return {"pe_frequencies": self.pe_frequencies, "pe_scale": self.pe_scale}

    def build(self) -> INR:
        return build_model(self.model, self.width, self.hidden_layers, self.options())

    def to_meta(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def inner_loss(model: INR, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MSE, or every prefix's MSE's geometric mean for a progressive model (the fine-tuning loss)."""
    if not model.progressive:
        return torch.mean((model(x) - y) ** 2)
    outs = model.forward_exits(x, list(range(model.depths)))
    return torch.exp(torch.stack([torch.log(torch.mean((o - y) ** 2)) for o in outs]).mean())


def targets(image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = image.shape[:2]
    return torch.from_numpy(grid(w, h)), torch.from_numpy(
        image.reshape(-1, 3).astype(np.float32) / 127.5 - 1.0
    )


def adapt(
    model: INR, image: np.ndarray, steps: int, lr: float, pixels: int, gen: torch.Generator,
    record: Callable[[int], None] | None = None, decay: float = 1.0, penalty: float = 0.0,
) -> None:  # fmt: skip
    """``steps`` Adam steps of ``model`` on ``image`` (in place), the rate cosine-decayed to ``decay``
    x ``lr`` as in codec/train.py; ``record(k)`` after step k (and k=0). ``penalty`` λ > 0 trains on
    ``loss · exp(λ R)``, R the mean |θ − start| (the encoder's residual penalty, codec/fit_core.py)."""
    x, y = targets(image)
    start = flat(list(model.parameters())).detach() if penalty > 0 else None
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    if record is not None:
        record(0)
    for k in range(1, steps + 1):
        if decay < 1:
            frac = (k - 1) / max(1, steps - 1)
            opt.param_groups[0]["lr"] = lr * (decay + (1 - decay) * 0.5 * (1 + math.cos(math.pi * frac)))
        if 0 < pixels < x.shape[0]:
            idx = torch.randint(0, x.shape[0], (pixels,), generator=gen)
            xb, yb = x[idx], y[idx]
        else:
            xb, yb = x, y
        opt.zero_grad(set_to_none=True)
        loss = inner_loss(model, xb, yb)
        if start is not None:
            loss = drift_penalised(loss, list(model.parameters()), start, "l1", penalty)
        if not torch.isfinite(loss):
            break  # a diverged task moves θ0 by what it learned before, never by NaN
        loss.backward()
        opt.step()
        if record is not None:
            record(k)
    model.eval()


def snapshot(model: INR) -> InitFile:
    weights = {
        u: {n: t.detach().cpu().numpy().astype(np.float32).copy() for n, t in tensors}
        for u, (_, tensors) in enumerate(model.units())
    }
    return InitFile(model.kind, model.arch(), weights)


def load_weights(model: INR, init: InitFile) -> None:
    """Set ``model``'s units to θ0 (its kind and arch must match: InitError naming the difference)."""
    init.check_matches(model.kind, model.arch())
    with torch.no_grad():
        for u, (_, tensors) in enumerate(model.units()):
            for n, t in tensors:
                t.copy_(torch.from_numpy(init.weights[u][n]))


def finetune_meta(cfg: MetaConfig, lr: float | None = None) -> dict[str, float]:
    """How an encode from the θ0 of ``cfg`` fine-tunes (codec/meta/residual.py): at ``lr`` (default
    the inner rate), with the inner loop's residual penalty when it had one."""
    out = {"lr": cfg.inner_lr if lr is None else lr}
    if cfg.inner_penalty > 0:
        out["residual_penalty"] = cfg.inner_penalty
    return out


ProgressFn = Callable[[int, int, float], None]
"""(meta step done, total, seconds so far)."""


def meta_train(
    cfg: MetaConfig,
    images: list[np.ndarray],
    checkpoint: Path | None = None,
    progress: ProgressFn | None = None,
) -> InitFile:
    """Reptile over random crops of ``images``; resumes from ``checkpoint`` when it holds a run of the
    same config, and rewrites it every ``cfg.checkpoint_every`` steps."""
    cfg.validate()
    torch.manual_seed(cfg.seed)
    model = cfg.build()
    start, seconds = 0, 0.0
    if checkpoint is not None and checkpoint.exists():
        saved = read_init(checkpoint)
        state = saved.meta.get("checkpoint", {})
        if state.get("config") != cfg.to_meta():
            raise ConfigError(
                f"checkpoint {str(checkpoint)!r} is of another meta-training config; delete it or use the same options"
            )
        load_weights(model, saved)
        start, seconds = int(state["step"]), float(state.get("seconds", 0.0))
    theta = [p.detach().clone() for p in model.parameters()]
    began = time.perf_counter() - seconds
    for step in range(start, cfg.meta_steps):
        rng = np.random.default_rng([cfg.seed, step])
        moved = [torch.zeros_like(t) for t in theta]
        for _ in range(cfg.meta_batch):
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            crop = random_crop(images, cfg.crop_width, cfg.crop_height, rng)
            adapt(
                model, crop, cfg.inner_steps, cfg.inner_lr, cfg.inner_pixels, gen,
                decay=cfg.inner_decay, penalty=cfg.inner_penalty,
            )  # fmt: skip
            with torch.no_grad():
                for p, t, m in zip(model.parameters(), theta, moved, strict=True):
                    m.add_(p - t)
                    p.copy_(t)  # the next task of the batch starts from θ0 too
        eps = cfg.outer_lr + (cfg.outer_lr_end - cfg.outer_lr) * step / max(1, cfg.meta_steps - 1)
        with torch.no_grad():
            for p, t, m in zip(model.parameters(), theta, moved, strict=True):
                t.add_(m, alpha=eps / cfg.meta_batch)
                p.copy_(t)
        done = step + 1
        if progress is not None:
            progress(done, cfg.meta_steps, time.perf_counter() - began)
        if checkpoint is not None and (done % cfg.checkpoint_every == 0 or done == cfg.meta_steps):
            ck = snapshot(model)
            ck.meta = {
                "checkpoint": {"step": done, "seconds": time.perf_counter() - began, "config": cfg.to_meta()}
            }
            write_init(checkpoint, ck)
    out = snapshot(model)
    out.meta = {
        "trained": {"method": "reptile", "seconds": round(time.perf_counter() - began, 1), **cfg.to_meta()},
        # The rate θ0 was meta-trained for is the one an encode from it fine-tunes at (codec/meta/residual.py).
        "finetune": finetune_meta(cfg),
    }
    return out

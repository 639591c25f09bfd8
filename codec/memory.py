"""How much memory an encode needs, and what it does when that will not fit its limit.

An encode's peak grows with pixels x width x layers: a 12 KB upload of a 2000x2000 image made a worker
peak at 9 GB (issue 11, item 2). :func:`estimate` gives an upper estimate from the planned config
before anything trains; :func:`fit_memory` accepts it as it is, trains it on pixel batches
(``batch_pixels``, which the training loops support) when only the training step's activations are
too many, or refuses it naming the numbers. ``codec.rate.plan_encode`` applies it to every encode
(``--max-memory``; the server's ``--max-job-memory``), so the CLI and the server plan alike.

The model was measured on CPU (peak RSS over a warmed-up worker, 400x400 pixels, 2 steps; spinr
32x4, 64x4, 32x8 and siren 32x4, 128x4, full batch and 4096-pixel batches): the measured peaks are
0.5 to 1.0 times the estimate. Full-image passes (the best-weights evaluation, the quantized decode of
every stage for its PSNR) are not batched by the codec today: they set the floor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from codec.config import EncodeConfig
from codec.errors import ConfigError

GIB = 1 << 30
TRAIN_PER_UNIT = 8.0
"""Bytes per batch pixel per (width x layer): autograd's saved activations and their gradients."""
TRAIN_PER_PIXEL = 1100.0
"""Bytes per batch pixel besides the layers (coordinates, targets, losses, per-exit outputs)."""
FULL_PER_UNIT = 3.5
"""Bytes per image pixel per (width x layer) of the full-image passes (no autograd)."""
FULL_PER_PIXEL = 1100.0
"""Bytes per image pixel besides the layers (the image as floats, coordinates, decoded pictures)."""
PARAM_BYTES = 32
"""Bytes per parameter: the weights, their gradient, Adam's two moments, the best-so-far copies."""
MIN_BATCH = 4096
"""Smallest pixel batch the planner chooses by itself (a smaller one trains poorly)."""


def amount(n: float) -> str:
    """Bytes in GiB, or in MiB under a tenth of a GiB."""
    return f"{n / GIB:.2f} GiB" if n >= GIB / 10 else f"{n / 2**20:.1f} MiB"


@dataclass(frozen=True)
class Estimate:
    pixels: int
    batch: int
    """Pixels per training step (``pixels`` when not batched)."""
    width: int
    layers: int
    """Hidden layers + the input and output layers."""
    params: int

    @property
    def training(self) -> float:
        return self.batch * (TRAIN_PER_UNIT * self.width * self.layers + TRAIN_PER_PIXEL)

    @property
    def full_image(self) -> float:
        return self.pixels * (FULL_PER_UNIT * self.width * self.layers + FULL_PER_PIXEL)

    @property
    def total(self) -> float:
        return self.training + self.full_image + self.params * PARAM_BYTES

    def describe(self) -> str:
        batch = "every pixel per step" if self.batch == self.pixels else f"{self.batch} pixels per step"
        return (
            f"{self.pixels} pixels x width {self.width} x {self.layers} layers, {batch}: about "
            f"{amount(self.total)}"
        )


def estimate(cfg: EncodeConfig, pixels: int) -> Estimate:
    """``cfg``'s network must be decided (``codec.rate.plan_encode`` picks it under a rate target)."""
    width, hidden = cfg.model.width, cfg.model.hidden_layers
    if width is None or hidden is None:
        raise ConfigError("internal: a memory estimate needs the network planned (codec.rate.plan_encode)")
    batch = pixels if cfg.train.batch_pixels <= 0 else min(cfg.train.batch_pixels, pixels)
    params = width * width * hidden + width * 8 + 3 * width  # the MLP's weights; heads and biases ~ width
    return Estimate(pixels, batch, width, hidden + 2, params)


class MemoryTooLarge(ConfigError):
    """The encode cannot fit in its memory limit; the message names the numbers and what to change."""


def fit_memory(cfg: EncodeConfig, pixels: int, limit: int, limit_hint: str = "--max-memory") -> EncodeConfig:
    """``cfg`` (its network planned) as it fits ``limit`` bytes: unchanged when it fits, with
    ``train.batch_pixels`` set when batching the training step makes it fit, else MemoryTooLarge naming
    the estimate, the limit (``limit_hint``: the option that sets it) and what would fit."""
    est = estimate(cfg, pixels)
    if est.total <= limit:
        return cfg
    fixed = est.full_image + est.params * PARAM_BYTES
    per_batch_pixel = TRAIN_PER_UNIT * est.width * est.layers + TRAIN_PER_PIXEL
    batch = int((limit - fixed) // per_batch_pixel)
    chosen = cfg.train.batch_pixels > 0
    if not chosen and batch >= MIN_BATCH:
        return cfg.replace(**{"train.batch_pixels": batch})
    budget = f"the limit is {amount(limit)} ({limit_hint})"
    if chosen and batch >= 1:
        raise MemoryTooLarge(
            f"this encode needs {est.describe()}; {budget}: batch_pixels of at most {batch} fits"
        )
    per_pixel = FULL_PER_UNIT * est.width * est.layers + FULL_PER_PIXEL
    fits = max(0, int((limit - est.params * PARAM_BYTES - MIN_BATCH * per_batch_pixel) // per_pixel))
    raise MemoryTooLarge(
        f"this encode needs {est.describe()}; {budget}, which holds at most about {fits} pixels at this "
        f"width and depth: use a smaller image, a smaller width or depth, or raise {limit_hint}"
    )


def limit_bytes(cfg: EncodeConfig) -> int:
    """The memory limit of ``cfg`` in bytes: ``train.max_memory`` GiB, or :func:`default_limit`."""
    return int(cfg.train.max_memory * GIB) if cfg.train.max_memory > 0 else default_limit(1)


def default_limit(workers: int = 1) -> int:
    """Half of this machine's memory (or its cgroup's limit) shared by the workers."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            total = min(total, int(text))
    except OSError:
        pass
    return max(GIB // 4, total // 2 // max(1, workers))

"""How much memory an encode needs, and what it does when that will not fit its limit.

An encode's peak grows with pixels x width x layers: a 12 KB upload of a 2000x2000 image made a worker
peak at 9 GB (issue 11, item 2). :func:`estimate` gives an upper estimate from the planned config
before anything trains; :func:`fit_memory` accepts it as it is, trains it on pixel batches
(``batch_pixels``, which the training loops support) when only the training step's activations are
too many, or refuses it naming the numbers. ``codec.rate.plan_encode`` applies it to every encode
(``--max-memory``; the server's ``--max-job-memory``), so the CLI and the server plan alike.

The model was measured on CPU (peak RSS over a warmed-up worker, 400x400 pixels, 2 steps; spinr
32x4, 64x4, 32x8 and siren 32x4, 128x4, full batch and 4096-pixel batches): the measured peaks are
0.5 to 1.0 times the estimate.

The full-image passes (the loss of a stage's kept weights, every prefix's PSNR, the prefix cache)
run over the whole image at once while that fits; over the limit they run in chunks of
:data:`EVAL_CHUNK` pixels first (``train.eval_pixels``, codec/chunked.py; the loss is the same to
float rounding), and only then does training sample pixel batches. What stays per image pixel is
the image, its targets and coordinates, the prefix cache of a staged model (width floats) and the
decoded pictures: a 2000x2000 encode at the default rate (width 319, 3 hidden layers) was refused at
76.5 GiB and now plans 11.8 GiB under the 12 GiB default (measured peaks: docs/SPINR.md, "Memory").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from codec.config import EncodeConfig
from codec.errors import ConfigError
from codec.stepalloc import PROBE_PIXELS

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
EVAL_CHUNK = 65_536
"""Pixels per chunk of the full-image passes when the whole image at once does not fit (a chunk of
this size keeps a matrix multiply's per-pixel speed; its activations are MiBs, not GiBs)."""
HELD_PER_PIXEL = 400.0
"""Bytes per image pixel a chunked encode still holds: the image, its float targets, coordinates,
the decoded pictures and the float64 copies their PSNR compares."""
CACHE_PER_UNIT = 4.0
"""Bytes per image pixel per width of a staged model's prefix cache (one float32 activation)."""


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
    chunk: int = 0
    """Pixels per chunk of the full-image passes (0 or ``pixels``: the whole image at once)."""
    cache: bool = True
    """Whether a staged model's prefix cache is kept (``train.prefix_cache``)."""
    finetune: int = 0
    """Pixels of sequential quantization's fine-tuning steps (0: none), a training step of their own."""

    @property
    def per_batch_pixel(self) -> float:
        return TRAIN_PER_UNIT * self.width * self.layers + TRAIN_PER_PIXEL

    @property
    def per_eval_pixel(self) -> float:
        return FULL_PER_UNIT * self.width * self.layers + FULL_PER_PIXEL

    @property
    def held_per_pixel(self) -> float:
        """Bytes per image pixel of a chunked encode, whatever the chunk."""
        return HELD_PER_PIXEL + (CACHE_PER_UNIT * self.width if self.cache else 0.0)

    @property
    def chunked(self) -> bool:
        return 0 < self.chunk < self.pixels

    @property
    def training(self) -> float:
        return max(self.batch, self.finetune) * self.per_batch_pixel

    @property
    def full_image(self) -> float:
        if not self.chunked:
            return self.pixels * self.per_eval_pixel
        return self.pixels * self.held_per_pixel + self.chunk * self.per_eval_pixel

    @property
    def total(self) -> float:
        return self.training + self.full_image + self.params * PARAM_BYTES

    def describe(self) -> str:
        batch = "every pixel per step" if self.batch == self.pixels else f"{self.batch} pixels per step"
        passes = f", full-image passes in chunks of {self.chunk} pixels" if self.chunked else ""
        return (
            f"{self.pixels} pixels x width {self.width} x {self.layers} layers, {batch}{passes}: about "
            f"{amount(self.total)}"
        )


def estimate(cfg: EncodeConfig, pixels: int) -> Estimate:
    """``cfg``'s network must be decided (``codec.rate.plan_encode`` picks it under a rate target)."""
    width, hidden = cfg.model.width, cfg.model.hidden_layers
    if width is None or hidden is None:
        raise ConfigError("internal: a memory estimate needs the network planned (codec.rate.plan_encode)")
    batch = pixels if cfg.train.batch_pixels <= 0 else min(cfg.train.batch_pixels, pixels)
    params = width * width * hidden + width * 8 + 3 * width  # the MLP's weights; heads and biases ~ width
    # Under a byte target (set by plan_encode) sequential quantization fine-tunes on the probe pixels.
    seq = cfg.rate.bytes is not None and cfg.train.seq_steps > 0
    finetune = min(PROBE_PIXELS, pixels) if seq else 0
    chunk = min(cfg.train.eval_pixels, pixels) if cfg.train.eval_pixels > 0 else pixels
    return Estimate(pixels, batch, width, hidden + 2, params, chunk, cfg.train.prefix_cache, finetune)


class MemoryTooLarge(ConfigError):
    """The encode cannot fit in its memory limit; the message names the numbers and what to change."""


def fit_memory(cfg: EncodeConfig, pixels: int, limit: int, limit_hint: str = "--max-memory") -> EncodeConfig:
    """``cfg`` (its network planned) as it fits ``limit`` bytes: unchanged when it fits; else with the
    full-image passes in chunks (``train.eval_pixels``), then pixel batches (``train.batch_pixels``),
    then without the prefix cache, the first of these that fits; else MemoryTooLarge naming the
    estimate, the limit (``limit_hint``: the option that sets it) and what would fit."""
    est = estimate(cfg, pixels)
    if est.total <= limit:
        return cfg
    if cfg.train.eval_pixels == 0 and pixels > EVAL_CHUNK:
        # The full-image passes in chunks first: the same training, the same losses to float rounding.
        cfg = cfg.replace(**{"train.eval_pixels": EVAL_CHUNK})
        est = estimate(cfg, pixels)
        if est.total <= limit:
            return cfg
    fitted = _batched(cfg, est, limit)
    if fitted is None and est.chunked and est.cache:
        # Then without the prefix cache: a stage recomputes its frozen layers at every step instead.
        plain = cfg.replace(**{"train.prefix_cache": False})
        fitted = _batched(plain, estimate(plain, pixels), limit)
    if fitted is not None:
        return fitted
    batch = int((limit - est.full_image - est.params * PARAM_BYTES) // est.per_batch_pixel)
    chosen = cfg.train.batch_pixels > 0
    budget = f"the limit is {amount(limit)} ({limit_hint})"
    if chosen and batch >= max(1, est.finetune):
        raise MemoryTooLarge(
            f"this encode needs {est.describe()}; {budget}: batch_pixels of at most {batch} fits"
        )
    least = max(MIN_BATCH, est.finetune) * est.per_batch_pixel + est.params * PARAM_BYTES
    if est.chunked:
        least += est.chunk * est.per_eval_pixel
    per_pixel = est.held_per_pixel if est.chunked else est.per_eval_pixel
    fits = max(0, int((limit - least) // per_pixel))
    raise MemoryTooLarge(
        f"this encode needs {est.describe()}; {budget}, which holds at most about {fits} pixels at this "
        f"width and depth: use a smaller image, a smaller width or depth, or raise {limit_hint}"
    )


def _batched(cfg: EncodeConfig, est: Estimate, limit: int) -> EncodeConfig | None:
    """``cfg`` (estimated ``est``) as it fits ``limit``: unchanged when it fits, with the largest
    pixel batch that fits unless the user chose one, or None."""
    if est.total <= limit:
        return cfg
    if cfg.train.batch_pixels > 0:
        return None
    batch = int((limit - est.full_image - est.params * PARAM_BYTES) // est.per_batch_pixel)
    return cfg.replace(**{"train.batch_pixels": batch}) if batch >= max(MIN_BATCH, est.finetune) else None


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

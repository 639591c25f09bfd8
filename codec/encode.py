"""Image -> trained, quantized INR -> bitstream; and the evaluation of a bitstream against a reference.

This is the one path every model takes (fit, quantize, serialise); the numpy decoder measures the
quantized PSNR so the numbers reported are the ones a receiver gets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codec import __version__
from codec.bitstream import Bitstream, StreamHeader, new_stream_id
from codec.budget import DEFAULT_BUDGET, DecodeBudget
from codec.config import EncodeConfig
from codec.decoder import ProgressiveDecoder
from codec.errors import ConfigError, ImageError, SpinrError
from codec.header import EXT_LADDER, psnr_as_sent
from codec.ladder import measure
from codec.metrics import psnr, ssim


@dataclass
class EncodeResult:
    bitstream: Bitstream
    psnr: float
    """PSNR (dB) of the full decode after quantization."""
    float_psnr: float
    """PSNR before quantization (the trained float weights)."""
    stage_psnr: list[float]
    """PSNR after quantization for every prefix depth (one value for a non-progressive model)."""
    float_stage_psnr: list[float]
    params: int
    seconds: float
    bytes: int
    """Size of the ``.spnr`` file."""
    warnings: list[str] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    """The quantization step of every tensor, in ``model.units()`` order."""

    @property
    def bpp(self) -> float:
        return self.bytes * 8 / (self.bitstream.header.width * self.bitstream.header.height)

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.bitstream.header.model,
            "width": self.bitstream.header.width,
            "height": self.bitstream.header.height,
            "psnr": round(self.psnr, 3),
            "psnr_float": round(self.float_psnr, 3),
            "stage_psnr": [round(p, 3) for p in self.stage_psnr],
            "bytes": self.bytes,
            "bpp": round(self.bpp, 4),
            "params": self.params,
            "packets": 1 + len(self.bitstream.units),
            "header_bytes": len(self.bitstream.packets()[0].to_bytes()),
            "seconds": round(self.seconds, 2),
            "warnings": self.warnings,
        }


def check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected a uint8 (height, width, 3) RGB array, got {image.dtype} {image.shape}")
    if min(image.shape[:2]) < 1 or max(image.shape[:2]) > 65535:
        raise ImageError(f"image sides must be 1..65535 pixels, got {image.shape[1]}x{image.shape[0]}")


def stage_psnrs(decoder: ProgressiveDecoder, reference: np.ndarray) -> list[float]:
    """PSNR of every decodable prefix depth, shallow to deep (each reuses the cached activations)."""
    if decoder.arch is None or decoder.plan() is None:
        return []
    if not decoder.arch.progressive:
        return [psnr(decoder.decode().rgb, reference)]
    out = []
    for depth in range(decoder.depths):
        plan = decoder.plan(depth)
        if plan is None or plan[0] != depth:
            break
        out.append(psnr(decoder.decode(depth=depth + 1).rgb, reference))
    return out


def encode_image(
    image: np.ndarray,
    cfg: EncodeConfig,
    progress: Any = None,
    cancel: Any = None,
    meta: bool = False,
) -> EncodeResult:
    """Fit ``cfg.model`` to ``image``, quantize it and build its (format v2) bitstream. ``meta`` writes
    the encoder's name, steps and timing into the header (an optional extension of ~60 bytes)."""
    from codec.train import fit

    start = time.perf_counter()
    model = _build(image, cfg)
    result = fit(model, image, cfg.train, progress=progress, cancel=cancel, quant=cfg.quant)
    return _finish(model, image, cfg, result, time.perf_counter() - start, meta)


def encode_images(
    images: Sequence[np.ndarray],
    cfgs: Sequence[EncodeConfig],
    progress: Sequence[Any] | None = None,
    cancel: Any = None,
) -> list[EncodeResult | SpinrError]:
    """:func:`encode_image` for several same-size images and configs that differ only in the seed,
    their networks trained as one batch (``codec.batched.fit_many``); a fit that diverged comes back
    as its error, the others are unaffected; so does one cancelled through its own token when
    ``cancel`` is a list (one token per image, ``codec.batched.fit_many``). ``seconds`` is each one's
    share of the batch's time."""
    from codec.batched import fit_many

    start = time.perf_counter()
    for cfg in cfgs:
        if cfg.quant != cfgs[0].quant:
            raise ConfigError("a batch of encodes must share its quantization settings")
    models = [_build(image, cfg) for image, cfg in zip(images, cfgs, strict=True)]
    results = fit_many(
        models, images, [c.train for c in cfgs], progress=progress, cancel=cancel, quant=cfgs[0].quant
    )
    share = (time.perf_counter() - start) / max(1, len(models))
    out: list[EncodeResult | SpinrError] = []
    for model, image, cfg, result in zip(models, images, cfgs, results, strict=True):
        out.append(result if isinstance(result, SpinrError) else _finish(model, image, cfg, result, share))
    return out


def _build(image: np.ndarray, cfg: EncodeConfig) -> Any:
    """The configured model, initialised from the config's seed and sized for the image."""
    from codec.models import build_model  # torch is imported only when encoding

    check_image(image)
    cfg.validate()
    import torch

    torch.manual_seed(cfg.train.seed)
    spec = cfg.model
    model = build_model(spec.name, spec.width, spec.hidden_layers, spec.options)
    model.set_image_size(image.shape[1], image.shape[0])  # e.g. DINER's per-pixel table
    return model


def _finish(
    model: Any, image: np.ndarray, cfg: EncodeConfig, result: Any, fit_seconds: float, meta: bool = False
) -> EncodeResult:
    """Quantize a fitted model (the steps its training fixed kept), build its bitstream and measure
    what a receiver decodes."""
    from codec.stepalloc import multiplier_for_bits
    from codec.stepquant import model_steps, model_tensors, quantize_model

    start = time.perf_counter()
    weights = sum(t.numel() for t in model_tensors(model))
    multiplier = multiplier_for_bits(cfg.quant.bits, weights)
    steps = model_steps(model, image, multiplier, fixed=result.steps, seed=cfg.train.seed)
    units = quantize_model(model, steps)
    header = StreamHeader(model.kind, model.arch(), int(image.shape[1]), int(image.shape[0]))
    bs = Bitstream(header, {u.index: u for u in units}, new_stream_id())
    decoder = ProgressiveDecoder.from_bitstream(bs)
    q_stage = stage_psnrs(decoder, image)
    if len(q_stage) != (model.depths if model.progressive else 1):
        raise ConfigError(f"internal: decoded {len(q_stage)} depths, model has {model.depths}")
    header.stage_psnr = [psnr_as_sent(p) for p in q_stage]
    sizes = [len(p.to_bytes()) for p in bs.packets()[1:]]  # unit packets, in index order
    assert decoder.arch is not None
    header.extensions[EXT_LADDER] = measure(decoder.arch.plan, header.stage_psnr, sizes).to_bytes()
    if meta:
        header.meta = {
            "encoder": f"spinr {__version__}",
            "steps": result.steps_run,
            "seconds": round(result.seconds, 3),
            "params": model.num_params(),
            "lr": cfg.train.lr if cfg.train.lr is not None else model.default_lr,
            "seed": cfg.train.seed,
            "bits": cfg.quant.bits,
        }
    return EncodeResult(
        bitstream=bs,
        psnr=q_stage[-1],
        float_psnr=result.stage_psnr[-1],
        stage_psnr=q_stage,
        float_stage_psnr=result.stage_psnr,
        params=model.num_params(),
        seconds=fit_seconds + time.perf_counter() - start,
        bytes=len(bs.to_bytes()),
        warnings=result.warnings,
        steps=steps,
    )


def evaluate(bs: Bitstream, reference: np.ndarray, budget: DecodeBudget = DEFAULT_BUDGET) -> dict[str, Any]:
    """``spinr eval``: PSNR for every prefix depth, SSIM of the deepest decode, size and bpp."""
    h, w = reference.shape[:2]
    if (w, h) != (bs.header.width, bs.header.height):
        raise ImageError(
            f"reference image is {w}x{h} but the bitstream encodes {bs.header.width}x{bs.header.height}"
        )
    decoder = ProgressiveDecoder.from_bitstream(bs, budget=budget)
    by_layers = stage_psnrs(decoder, reference)
    full = decoder.decode()
    size = len(bs.to_bytes())
    return {
        "psnr_by_layers": [round(p, 4) for p in by_layers],
        "psnr": round(psnr(full.rgb, reference), 4),
        "ssim": round(ssim(full.rgb, reference), 5),
        "layers_used": full.units,
        "missing": bs.missing(),
        "bytes": size,
        "bpp": round(size * 8 / (w * h), 5),
    }

"""A fitted model -> its bitstream: quantize (to a byte target, or by ``--bits``), trim a progressive
network to the prefix that decodes best under the target, write the header and the rate-quality ladder,
and measure what a receiver decodes (the numpy decoder), so the numbers reported are a receiver's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from codec import __version__
from codec.bitstream import Bitstream, StreamHeader, make_header_packet, new_stream_id, units_bytes
from codec.budget import OWN_STREAM_BUDGET
from codec.config import EncodeConfig
from codec.decoder import ProgressiveDecoder, stage_psnrs
from codec.errors import ConfigError
from codec.header import EXT_LADDER, psnr_as_sent
from codec.ladder import measure

if TYPE_CHECKING:  # torch is imported only when encoding
    from codec.fit_core import FitResult, ProgressFn, TrainProgress

__all__ = ["EncodeResult", "finish", "quantizing"]


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
    target_bytes: int | None = None
    """The file size the encode had to meet (None: quantized at --bits)."""
    network_stages: int = 0
    """Stages of the fitted network: more than the stream's (``len(stage_psnr)``) when ``--trim`` sent
    a prefix of it."""

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
            "arch": self.bitstream.header.arch,
            "target_bytes": self.target_bytes,
            "packets": len(self.bitstream.packets()),
            "header_bytes": len(self.bitstream.packets()[0].to_bytes()),
            "seconds": round(self.seconds, 2),
            "warnings": self.warnings,
        }


def quantizing(model: Any, cfg: EncodeConfig, result: FitResult, target: int | None) -> TrainProgress:
    """The progress event of a quantization about to run: training is done (its last stage, every
    step), the note says what is quantized to what."""
    from codec.fit_core import TrainProgress

    stages = len(result.stage_psnr)
    what = f"{model.depths} stage(s)" if model.progressive else model.kind
    to = f"to {target} bytes" if target is not None else f"at {cfg.quant.bits} bits"
    return TrainProgress(
        stages - 1, stages, result.steps_run, result.steps_run, math.nan, result.stage_psnr[-1],
        result.seconds, "quantize", f"quantizing {what} {to}",
    )  # fmt: skip


def finish(
    model: Any,
    image: np.ndarray,
    cfg: EncodeConfig,
    result: FitResult,
    fit_seconds: float,
    *,
    meta: bool = False,
    target: int | None = None,
    seq: int = 0,
    cancel: Any = None,
    init: Any = None,
    progress: ProgressFn | None = None,
) -> EncodeResult:
    """:func:`_finish_one`, and under a rate target with ``trim`` on, the same for ever shorter prefixes
    of a progressive network while that decodes better: at a low rate the sequential quantizer leaves
    the last stages too few bytes to help, and a prefix spends them on its own stages instead. A
    target too small for the whole network is met by the longest prefix that fits it. ``progress``
    hears a ``quantize`` event before each quantization (training's progress is done by then)."""

    def one(m: Any) -> EncodeResult:
        if progress is not None:
            progress(quantizing(m, cfg, result, target))
        return _finish_one(m, image, cfg, result, fit_seconds, meta, target, seq, cancel, init)

    trim = target is not None and cfg.rate.trim == "auto" and model.can_trim()
    refused: ConfigError | None = None
    try:
        best: EncodeResult | None = one(model)
    except ConfigError as too_small:  # the quantizer's "too small for this network"
        if not trim:
            raise
        best, refused = None, too_small
    if not trim:
        assert best is not None
        return best
    full = model.hidden_layers
    for k in range(full - 1, -1, -1):
        try:
            shorter = one(model.prefix(k))
        except ConfigError:
            if best is None:
                continue  # still too small: a shorter prefix may fit
            break
        if best is not None and shorter.psnr <= best.psnr:
            break
        best = shorter
    if best is None:
        assert refused is not None
        raise refused
    best.network_stages = full + 1
    sent = best.bitstream.header.arch["hidden_layers"]
    if sent < full:
        why = (
            "the whole network does not fit" if refused is not None else "the shorter network decodes better"
        )
        best.warnings.append(
            f"sent {sent + 1} of the network's {full + 1} stages: at {target} bytes {why}"
            " (--trim off sends every stage)"
        )
    return best


def _finish_one(
    model: Any,
    image: np.ndarray,
    cfg: EncodeConfig,
    result: FitResult,
    fit_seconds: float,
    meta: bool = False,
    target: int | None = None,
    seq: int = 0,
    cancel: Any = None,
    init: Any = None,
) -> EncodeResult:
    """Quantize a fitted model (by ``--bits``, keeping the steps its training fixed, or to ``target``
    bytes), build its bitstream with the rate-quality ladder and measure what a receiver decodes.
    With a θ0 (``init``) the units carry θ − θ0 and the header names θ0 (extension 0x83)."""
    from codec.ladder import Ladder
    from codec.meta.residual import base_tensors
    from codec.rate import WINDOW_LOW

    start = time.perf_counter()
    depths = model.depths if model.progressive else 1
    header = StreamHeader(model.kind, model.arch(), int(image.shape[1]), int(image.shape[0]), [0.0] * depths)
    base = base_tensors(model, init)
    if init is not None:
        header.init = init.hash
    if meta:
        header.meta = _meta(model, cfg, result)
    warnings: list[str] = []
    if target is None:
        units, steps = _quantize_at_bits(model, image, cfg, result.steps, base)
    else:
        # The ladder is written after quantization; reserve its largest size (every packet as big as
        # the whole target, every rung with a PSNR) so the file stays within the target.
        n = len(model.units())
        header.extensions[EXT_LADDER] = Ladder.from_sizes([target] * n, [0.0] * n).to_bytes()
        header_bytes = len(make_header_packet(header, 1).to_bytes())
        units, steps = _quantize_to_target(model, image, cfg, target - header_bytes, seq, cancel, base)
        size = header_bytes + units_bytes(units)
        if size < WINDOW_LOW * target:
            warnings.append(
                f"the file is {size} bytes, under {WINDOW_LOW:.0%} of the target {target}:"
                " this network cannot use more (a wider one, or no --width/--depth, would)"
            )
    bs = Bitstream(header, {u.index: u for u in units}, new_stream_id())
    decoder = ProgressiveDecoder.from_bitstream(bs, budget=OWN_STREAM_BUDGET)
    q_stage = stage_psnrs(decoder, image)
    if len(q_stage) != depths:
        raise ConfigError(f"internal: decoded {len(q_stage)} depths, model has {model.depths}")
    header.stage_psnr = [psnr_as_sent(p) for p in q_stage]
    sizes = [len(p.to_bytes()) for p in bs.packets()[1:]]  # unit packets, in index order
    assert decoder.arch is not None
    header.extensions[EXT_LADDER] = measure(decoder.arch.plan, header.stage_psnr, sizes).to_bytes()
    if cfg.quant.refinements:
        from codec.refined import refine_stream

        bs = refine_stream(bs, image, cfg.quant.refinements, cfg.quant.refinement_bits)
    # A prefix's (--trim) float PSNRs are its own depths'; a non-progressive model's are per training stage.
    float_stage = result.stage_psnr[:depths] if model.progressive else result.stage_psnr
    return EncodeResult(
        bitstream=bs,
        psnr=q_stage[-1],
        float_psnr=float_stage[-1],
        stage_psnr=q_stage,
        float_stage_psnr=float_stage,
        params=model.num_params(),
        seconds=fit_seconds + time.perf_counter() - start,
        bytes=len(bs.to_bytes()),
        warnings=result.warnings + warnings,
        steps=steps,
        target_bytes=target,
        network_stages=depths,
    )


def _quantize_at_bits(
    model: Any, image: np.ndarray, cfg: EncodeConfig, fixed: dict[int, float], base: Any = None
) -> tuple[list, list[float]]:
    from codec.stepalloc import multiplier_for_bits
    from codec.stepquant import model_steps, model_tensors, quantize_model

    weights = sum(t.numel() for t in model_tensors(model))
    multiplier = multiplier_for_bits(cfg.quant.bits, weights)
    steps = model_steps(model, image, multiplier, fixed=fixed, seed=cfg.train.seed, base=base)
    return quantize_model(model, steps, base), steps


def _quantize_to_target(
    model: Any, image: np.ndarray, cfg: EncodeConfig, budget: int, seq: int, cancel: Any, base: Any = None
) -> tuple[list, list[float]]:
    from codec.device import resolve_device
    from codec.seqquant import quantize_to_bytes

    done = quantize_to_bytes(
        model, image, budget, seq, seed=cfg.train.seed, device=resolve_device(cfg.train.device), cancel=cancel,
        base=base,
    )  # fmt: skip
    return done.units, done.steps


def _meta(model: Any, cfg: EncodeConfig, result: Any) -> dict[str, Any]:
    return {
        "encoder": f"spinr {__version__}",
        "steps": result.steps_run,
        "seconds": round(result.seconds, 3),
        "params": model.num_params(),
        "lr": cfg.train.lr if cfg.train.lr is not None else model.default_lr,
        "seed": cfg.train.seed,
        "bits": cfg.quant.bits,
    }

"""Image -> trained, quantized INR -> bitstream; and the evaluation of a bitstream against a reference.

This is the one path every model takes (fit, quantize, serialise); the numpy decoder measures the
quantized PSNR so the numbers reported are the ones a receiver gets.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codec import __version__
from codec.bitstream import Bitstream, StreamHeader, make_header_packet, new_stream_id, units_bytes
from codec.budget import DEFAULT_BUDGET, OWN_STREAM_BUDGET, DecodeBudget
from codec.config import EncodeConfig
from codec.decoder import ProgressiveDecoder, stage_psnrs
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


def check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected a uint8 (height, width, 3) RGB array, got {image.dtype} {image.shape}")
    if min(image.shape[:2]) < 1 or max(image.shape[:2]) > 65535:
        raise ImageError(f"image sides must be 1..65535 pixels, got {image.shape[1]}x{image.shape[0]}")


def encode_image(
    image: np.ndarray,
    cfg: EncodeConfig,
    progress: Any = None,
    cancel: Any = None,
    meta: bool = False,
) -> EncodeResult:
    """Fit ``cfg.model`` to ``image``, quantize it and build its (format v2) bitstream. With a rate
    target (codec/rate.py) the network may come from the size model, training runs in float and
    sequential quantization meets the target; otherwise steps follow ``--bits``. ``meta`` writes the
    encoder's name, steps and timing into the header (an optional extension of ~60 bytes)."""
    from codec.train import fit

    start = time.perf_counter()
    cfg, target, init, notes = _plan(image, cfg)
    model = _build(image, cfg, init)
    seq = seq_steps(cfg, len(model.units())) if target is not None else 0
    result = fit(model, image, _train_config(cfg, model, seq), progress=progress, cancel=cancel,
                 quant=cfg.quant if target is None else None)  # fmt: skip
    result.warnings += notes
    return _finish(model, image, cfg, result, time.perf_counter() - start, meta, target, seq, cancel, init)


def encode_at_rates(
    image: np.ndarray, cfg: EncodeConfig, bpps: Sequence[float], progress: Any = None
) -> list[EncodeResult | ConfigError]:
    """:func:`encode_image` of a fixed network (``--width``/``--depth`` set) at several rates (bpp)
    from **one** fit: under a rate target the float fit does not depend on the target (sequential
    quantization's steps per unit do not either), so each result is the encode of that target, the
    fit's time counted in each. A target this network cannot reach comes back as its ConfigError."""
    from codec.train import fit

    if cfg.model.width is None or not bpps:
        raise ConfigError("encode_at_rates needs a fixed network (width set) and at least one rate")
    plans = [_plan(image, cfg.replace(**{"rate.bpp": b, "rate.bytes": None})) for b in bpps]
    first, _, init, notes = plans[0]
    start = time.perf_counter()
    model = _build(image, first, init)
    seq = seq_steps(first, len(model.units()))
    result = fit(model, image, _train_config(first, model, seq), progress=progress)
    result.warnings += notes
    seconds = time.perf_counter() - start
    out: list[EncodeResult | ConfigError] = []
    for c, target, _, _ in plans:
        try:
            out.append(
                _finish(copy.deepcopy(model), image, c, result, seconds, False, target, seq, None, init)
            )
        except ConfigError as e:
            out.append(e)
    return out


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
    share of the batch's time. Rate targets are met per image after the batched fit."""
    from codec.batched import fit_many

    start = time.perf_counter()
    for cfg in cfgs:
        if cfg.quant != cfgs[0].quant:
            raise ConfigError("a batch of encodes must share its quantization settings")
    plans = [_plan(image, cfg) for image, cfg in zip(images, cfgs, strict=True)]
    targets = {target is None for _, target, _, _ in plans}
    if len(targets) > 1:
        raise ConfigError("a batch of encodes must all have a rate target or all have none")
    models = [_build(image, cfg, init) for image, (cfg, _, init, _) in zip(images, plans, strict=True)]
    seqs = [
        seq_steps(cfg, len(m.units())) if t is not None else 0
        for m, (cfg, t, _, _) in zip(models, plans, strict=True)
    ]
    train = [_train_config(cfg, m, s) for m, (cfg, _, _, _), s in zip(models, plans, seqs, strict=True)]
    quant = plans[0][0].quant if plans[0][1] is None else None
    results = fit_many(models, images, train, progress=progress, cancel=cancel, quant=quant)
    share = (time.perf_counter() - start) / max(1, len(models))
    out: list[EncodeResult | SpinrError] = []
    for model, image, (cfg, target, init, notes), seq, result in zip(
        models, images, plans, seqs, results, strict=True
    ):
        if isinstance(result, SpinrError):
            out.append(result)
        else:
            result.warnings += notes
            out.append(_finish(model, image, cfg, result, share, False, target, seq, init=init))
    return out


def _plan(image: np.ndarray, cfg: EncodeConfig) -> tuple[EncodeConfig, int | None, Any, list[str]]:
    """The config with the network the size model picked (when a rate target leaves it open), the
    target in bytes (None: quantize by ``--bits``), and with ``--init meta`` the θ0 it starts from
    (the network snapped to it by ``plan_encode``, codec/meta/residual.py) and notes about the snap."""
    from codec.rate import plan_encode

    check_image(image)
    rate = plan_encode(cfg, int(image.shape[1]), int(image.shape[0]))
    rate.cfg.validate()
    return rate.cfg, rate.target_bytes, rate.init, list(rate.init_notes)


def _train_config(cfg: EncodeConfig, model: Any, seq: int) -> Any:
    """Training's share of the step budget: sequential quantization spends ``seq`` steps per later unit."""
    if not seq:
        return cfg.train
    return dataclasses.replace(cfg.train, steps=max(1, cfg.train.steps - seq * (len(model.units()) - 1)))


def _build(image: np.ndarray, cfg: EncodeConfig, init: Any = None) -> Any:
    """The configured model, initialised from the config's seed (or set to θ0) and sized for the image."""
    import torch

    from codec.models import build_model  # torch is imported only when encoding

    torch.manual_seed(cfg.train.seed)
    spec = cfg.model
    assert spec.width is not None and spec.hidden_layers is not None
    model = build_model(spec.name, spec.width, spec.hidden_layers, spec.options)
    model.set_image_size(image.shape[1], image.shape[0])  # e.g. DINER's per-pixel table
    if init is not None:
        from codec.meta.residual import start_from

        start_from(model, init)
    return model


def _finish(
    model: Any,
    image: np.ndarray,
    cfg: EncodeConfig,
    result: Any,
    fit_seconds: float,
    meta: bool = False,
    target: int | None = None,
    seq: int = 0,
    cancel: Any = None,
    init: Any = None,
) -> EncodeResult:
    """:func:`_finish_one`, and under a rate target with ``trim`` on, the same for ever shorter prefixes
    of a progressive network while that decodes better: at a low rate the sequential quantizer leaves
    the last stages too few bytes to help, and a prefix spends them on its own stages instead. A
    target too small for the whole network is met by the longest prefix that fits it."""

    def one(m: Any) -> EncodeResult:
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
    result: Any,
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


def seq_steps(cfg: EncodeConfig, units: int) -> int:
    """Fine-tuning steps per unit of sequential quantization: ``seq_steps``, at most a quarter of the
    step budget over all units."""
    if units < 2:
        return 0
    return min(cfg.train.seq_steps, cfg.train.steps // (4 * (units - 1)))


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

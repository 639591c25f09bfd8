"""Image -> trained, quantized INR -> bitstream; and the evaluation of a bitstream against a reference.

This is the one path every model takes: plan the network (codec/rate.py), fit it (codec/train.py or, for
a batch, codec/batched.py), then quantize and serialise it (codec/finish.py, whose numpy decode
measures the PSNR a receiver gets).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from codec.bitstream import Bitstream
from codec.budget import DEFAULT_BUDGET, DecodeBudget
from codec.config import EncodeConfig
from codec.decoder import ProgressiveDecoder, stage_psnrs
from codec.errors import ConfigError, ImageError, SpinrError
from codec.finish import EncodeResult, finish
from codec.metrics import psnr, ssim

__all__ = [
    "EncodeResult",
    "check_image",
    "encode_at_rates",
    "encode_image",
    "encode_images",
    "evaluate",
    "seq_steps",
]


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
    return finish(
        model, image, cfg, result, time.perf_counter() - start,
        meta=meta, target=target, seq=seq, cancel=cancel, init=init, progress=progress,
    )  # fmt: skip


def encode_at_rates(
    image: np.ndarray, cfg: EncodeConfig, bpps: Sequence[float], progress: Any = None
) -> list[EncodeResult | ConfigError]:
    """:func:`encode_image` of a fixed network (``--width``/``--depth`` set) at several rates (bpp)
    from **one fit per training config**: under a rate target the float fit does not depend on the
    target (sequential quantization's steps per unit do not either), so each result is the encode of
    that target, its fit's time counted in each. Rates whose plans train differently (an ``--init
    meta`` residual penalty that depends on the rate) get a fit each. A target this network cannot
    reach comes back as its ConfigError."""
    from codec.train import fit

    if cfg.model.width is None or not bpps:
        raise ConfigError("encode_at_rates needs a fixed network (width set) and at least one rate")
    plans = [_plan(image, cfg.replace(**{"rate.bpp": b, "rate.bytes": None})) for b in bpps]
    fits: list[tuple[Any, Any, Any, int, float]] = []  # (train config, model, result, seq, seconds)
    out: list[EncodeResult | ConfigError] = []
    for c, target, init, notes in plans:
        done = next((f for f in fits if f[0] == c.train), None)
        if done is None:
            start = time.perf_counter()
            model = _build(image, c, init)
            seq = seq_steps(c, len(model.units()))
            result = fit(model, image, _train_config(c, model, seq), progress=progress)
            result.warnings += notes
            done = (c.train, model, result, seq, time.perf_counter() - start)
            fits.append(done)
        _, model, result, seq, seconds = done
        try:
            out.append(
                finish(copy.deepcopy(model), image, c, result, seconds, target=target, seq=seq, init=init)
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
    for i, (model, image, (cfg, target, init, notes), seq, result) in enumerate(
        zip(models, images, plans, seqs, results, strict=True)
    ):
        if isinstance(result, SpinrError):
            out.append(result)
        else:
            result.warnings += notes
            report = progress[i] if progress is not None else None
            out.append(
                finish(model, image, cfg, result, share, target=target, seq=seq, init=init, progress=report)
            )
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


def seq_steps(cfg: EncodeConfig, units: int) -> int:
    """Fine-tuning steps per unit of sequential quantization: ``seq_steps``, at most a quarter of the
    step budget over all units."""
    if units < 2:
        return 0
    return min(cfg.train.seq_steps, cfg.train.steps // (4 * (units - 1)))


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

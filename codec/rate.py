"""Rate control, the torch-free half: which file size an encode must meet and which network it trains.

An encode has a **target** in bytes when it names one (``--bytes N`` or ``--bpp B``), or when its
network is left to the size model (``width``/``depth`` unset) and it names none: then the target is
``DEFAULT_BPP`` (codec/config.py). A fixed network without a target is quantized at ``--bits``.

With a target, the size model (codec/sizemodel.py) picks the width, depth and positional encoding of a
network left unset, training runs in float, and sequential quantization (codec/seqquant.py) sets the
steps so the whole file (header and every packet) is at most the target and at least
``WINDOW_LOW`` of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from codec.config import DEFAULT_BPP, EncodeConfig
from codec.errors import ConfigError
from codec.sizemodel import HIDDEN, MODELS, Plan, plan, smallest_bytes

WINDOW_LOW = 0.9
"""A rate-controlled file is at least this share of its target."""


@dataclass
class RatePlan:
    """What an encode will do, decided before training (shown to the user, then run)."""

    cfg: EncodeConfig
    """The config with the network filled in (width, depth, encoding)."""
    target_bytes: int | None
    """The file size to meet; None: quantize at ``cfg.quant.bits``."""
    sized: Plan | None
    """The size model's choice, when it chose the network."""

    def describe(self) -> str:
        m = self.cfg.model
        pe = m.options.get("pe_frequencies", 0)
        net = f"{m.name} {m.width} wide x {m.hidden_layers} hidden" + (
            f", positional encoding L={pe}" if pe else ""
        )
        if self.target_bytes is None:
            return f"{net}, quantized at {self.cfg.quant.bits} bits"
        how = " (size model)" if self.sized is not None else ""
        return f"{net}{how}, target {self.target_bytes} bytes"


def target_bytes(cfg: EncodeConfig, width_px: int, height_px: int) -> int | None:
    """The byte target of ``cfg`` for an image of that size, or None (a fixed network at --bits)."""
    if cfg.rate.bytes is not None:
        return int(cfg.rate.bytes)
    if cfg.rate.bpp is not None:
        return max(1, int(cfg.rate.bpp * width_px * height_px / 8))
    if cfg.model.width is not None:
        return None
    # The default rate, but never below what the size model's smallest network needs (a tiny image),
    # and never above the raw pixels.
    raw = 3 * width_px * height_px
    hidden = HIDDEN if cfg.model.hidden_layers is None else cfg.model.hidden_layers
    least = smallest_bytes(cfg.model.name, hidden) if cfg.model.name in MODELS else 0
    target = max(int(DEFAULT_BPP * width_px * height_px / 8), least)
    if target > raw:
        raise ConfigError(
            f"a {width_px}x{height_px} image is too small for a {cfg.model.name} stream smaller than its"
            f" {raw} raw bytes (the smallest is about {least}); give --width/--depth and --bits to force one"
        )
    return target


def plan_encode(cfg: EncodeConfig, width_px: int, height_px: int) -> RatePlan:
    """The network and the target of an encode of a ``width_px`` x ``height_px`` image."""
    cfg = cfg.replace()
    cfg.validate()
    target = target_bytes(cfg, width_px, height_px)
    if target is not None and cfg.train.qat > 0:
        raise ConfigError(
            "qat applies to a fixed network quantized at --bits; a rate target quantizes sequentially"
        )
    sized = None
    if cfg.model.width is None:
        assert target is not None  # no width: the default rate applies
        hidden = HIDDEN if cfg.model.hidden_layers is None else cfg.model.hidden_layers
        sized = plan(width_px, height_px, target, cfg.model.name, hidden)
        cfg.model.width, cfg.model.hidden_layers = sized.width, sized.hidden_layers
        # An encoding the user chose is kept; otherwise the size model's.
        for key, value in sized.options.items():
            cfg.model.options.setdefault(key, value)
    elif cfg.model.hidden_layers is None:
        cfg.model.hidden_layers = HIDDEN  # a width alone: the size model's depth
    if target is not None:
        # The planned config names its target: planning it again (encode_image does) changes nothing.
        cfg.rate.bytes, cfg.rate.bpp = target, None
    return RatePlan(cfg.validate(), target, sized)

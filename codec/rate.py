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

from dataclasses import dataclass, field
from typing import Any

from codec.config import DEFAULT_BPP, EncodeConfig
from codec.errors import ConfigError
from codec.memory import Estimate, estimate, fit_memory, limit_bytes
from codec.sizemodel import HIDDEN, MODELS, Plan, params_of, plan, smallest_bytes

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
    memory: Estimate | None = None
    """The memory estimate of the planned config (codec/memory.py), pixel batches included."""
    notes: list[str] = field(default_factory=list)
    """What the plan changed from what was asked, in words (pixel batches, a width cap)."""
    uncapped_width: int | None = None
    """The width the size model chose before ``max_width`` capped it (None: not capped)."""
    init: Any = None
    """``--init meta``: the θ0 (``codec.meta.initfile.InitFile``) the network was snapped to."""
    init_notes: list[str] = field(default_factory=list)
    """What snapping to θ0 changed, in words (also in ``notes``)."""

    def network(self) -> str:
        m = self.cfg.model
        pe = m.options.get("pe_frequencies", 0)
        return f"{m.name} {m.width} wide x {m.hidden_layers} hidden" + (
            f", positional encoding L={pe}" if pe else ""
        )

    def params(self) -> int | None:
        """Parameters of the network, for the networks the size model counts (SIREN; SPINR with a
        head per stage); None for the others."""
        m = self.cfg.model
        if m.name not in MODELS or m.options.get("head", "per_stage") != "per_stage":
            return None
        pe = int(m.options.get("pe_frequencies", 0))
        return params_of(m.name, m.width or 0, m.hidden_layers or 0, pe)

    def describe(self, notes: bool = True) -> str:
        net = self.network()
        if self.target_bytes is None:
            text = f"{net}, quantized at {self.cfg.quant.bits} bits"
        else:
            how = " (size model)" if self.sized is not None else ""
            text = f"{net}{how}, target {self.target_bytes} bytes"
        return "; ".join([text, *(self.notes if notes else [])])

    def to_json(self, width_px: int, height_px: int) -> dict[str, Any]:
        """The plan as the server's job shows it (docs/API.md, "Plan")."""
        m, t = self.cfg.model, self.target_bytes
        return {
            "network": self.network(),
            "model": m.name,
            "width": m.width,
            "depth": m.hidden_layers,
            "pe_frequencies": int(m.options.get("pe_frequencies", 0)),
            "params": self.params(),
            "target_bytes": t,
            "target_bpp": None if t is None else round(t * 8 / (width_px * height_px), 4),
            "steps": self.cfg.train.steps,
            "batch_pixels": self.cfg.train.batch_pixels,
            "eval_pixels": self.cfg.train.eval_pixels,
            "memory_bytes": None if self.memory is None else int(self.memory.total),
            "notes": list(self.notes),
        }


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


def plan_encode(
    cfg: EncodeConfig,
    width_px: int,
    height_px: int,
    max_width: int | None = None,
    limit_hint: str = "--max-memory",
) -> RatePlan:
    """The network, the target and the pixel batches of an encode of a ``width_px`` x ``height_px``
    image. ``max_width`` caps the width the size model may pick (a server's cap); the memory limit is
    ``cfg.train.max_memory`` (``limit_hint`` names the option that sets it in a refusal)."""
    cfg = cfg.replace()
    cfg.validate()
    notes: list[str] = []
    target = target_bytes(cfg, width_px, height_px)
    if target is not None and cfg.train.qat > 0:
        raise ConfigError(
            "qat applies to a fixed network quantized at --bits; a rate target quantizes sequentially"
        )
    sized, wanted = None, None
    if cfg.model.width is None:
        assert target is not None  # no width: the default rate applies
        hidden = HIDDEN if cfg.model.hidden_layers is None else cfg.model.hidden_layers
        sized = plan(width_px, height_px, target, cfg.model.name, hidden)
        if max_width is not None and sized.width > max_width:
            wanted = sized.width
            sized = plan(width_px, height_px, target, cfg.model.name, hidden, max_width=max_width)
            if sized.width > max_width:
                raise ConfigError(
                    f"the width cap {max_width} is below the size model's narrowest network ({sized.width})"
                )
            notes.append(
                f"width capped at {max_width} (the size model chose {wanted} for the target): the file"
                " may come in under the target"
            )
        cfg.model.width, cfg.model.hidden_layers = sized.width, sized.hidden_layers
        # An encoding the user chose is kept; otherwise the size model's.
        for key, value in sized.options.items():
            cfg.model.options.setdefault(key, value)
    elif cfg.model.hidden_layers is None:
        cfg.model.hidden_layers = HIDDEN  # a width alone: the size model's depth
    init: Any = None
    init_notes: list[str] = []
    if cfg.train.init == "meta":
        # Snapped to θ0's network before the memory estimate: θ0's network is the one that trains.
        from codec.meta.residual import choose

        planned = sized.params if sized is not None else 0
        cfg, init, init_notes = choose(cfg, sized is not None, planned, target)
        notes += init_notes
    if target is not None:
        # The planned config names its target: planning it again (encode_image does) changes nothing.
        cfg.rate.bytes, cfg.rate.bpp = target, None
    asked = cfg.train
    cfg = fit_memory(cfg.validate(), width_px * height_px, limit_bytes(cfg), limit_hint)
    within = f"to stay within the memory limit ({limit_hint})"
    if cfg.train.batch_pixels != asked.batch_pixels:
        notes.append(f"training on {cfg.train.batch_pixels} pixels per step {within}")
    if cfg.train.eval_pixels != asked.eval_pixels:
        notes.append(f"judging the whole image in chunks of {cfg.train.eval_pixels} pixels {within}")
    if cfg.train.prefix_cache != asked.prefix_cache:
        notes.append(f"recomputing the frozen layers at every step (no prefix cache) {within}")
    return RatePlan(
        cfg,
        target,
        sized,
        estimate(cfg, width_px * height_px),
        notes,
        wanted,
        init=init,
        init_notes=init_notes,
    )

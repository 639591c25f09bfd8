"""Typed configuration for encoding: the model, its training and its quantization, with named presets,
and the one table of the options a user may set (``ENCODE_OPTIONS``), from which the CLI flags, the
server's form and ``/api/config`` are generated and against which every config is checked."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from codec.device import check_device_name
from codec.errors import ConfigError
from codec.model_options import MODEL_OPTIONS
from codec.options import EncodeOption, Kind, declared_options


@dataclass
class ModelSpec:
    """Which INR to fit and its size."""

    name: str = "spinr"
    """Registered model name (``spinr``, ``siren``, and the study's zoo: ``fourier``, ``mfn``, ``wire``, ``diner``;
    ``codec.model_options.MODEL_OPTIONS`` lists them)."""
    width: int | None = None
    """Neurons per hidden layer; None: chosen with the depth and the positional encoding by the size
    model (codec/sizemodel.py) for the image size and the rate target."""
    hidden_layers: int | None = None
    """Hidden (width x width) layers between the input and output layers (16 at width 64 gives the
    study's ~66.8 K parameters); None: chosen by the size model."""
    options: dict[str, Any] = field(default_factory=dict)
    """Model-specific options (e.g. ``head`` for SPINR, ``omega_0`` for SIREN); each model validates its own."""

    def validate(self) -> None:
        _check_section(self, "model")


INITS = ("random", "meta")
"""Training starts: the model's random initialisation, or a shipped meta-learned θ0 (codec/meta)."""
TRIMS = ("auto", "off")
"""``--trim``: drop stages that do not pay at the rate target, or send every stage."""
LOOPS = ("plain", "fast")
"""Training loops: ``codec.train``'s reference loop and ``codec.batched``'s fast one."""
KERNELS = ("fused", "plain")
PRECISIONS = ("fp32", "bf16")
RESIDUAL_NORMS = ("l1", "l2")


@dataclass
class TrainConfig:
    """How the network is fitted to the image."""

    steps: int = 2000
    """Total optimiser steps; a staged model splits them across its stages."""
    lr: float | None = None
    """Adam learning rate; None uses the model's recommended default."""
    batch_pixels: int = 0
    """Pixels sampled per step; 0 uses every pixel (full batch, as in the study)."""
    max_memory: float = 0.0
    """Memory the encode may use, in GiB (codec/memory.py's estimate): over it, training samples pixel
    batches when that fits, else the encode is refused naming the numbers. 0: half this machine's
    memory (or its cgroup's limit)."""
    seed: int = 0
    """Seeds weight initialisation and pixel sampling."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``."""
    explode_factor: float = 10.0
    """A loss above this multiple of the best loss so far counts as an explosion (like a non-finite loss)."""
    max_restarts: int = 3
    """After a divergence the best weights are restored and the learning rate halved, at most this many times per stage."""
    seq_steps: int = 40
    """Sequential quantization under a rate target (codec/seqquant.py): after each unit is quantized,
    the later float units are fine-tuned this many steps (taken from ``steps``, at most a quarter of it)."""
    lr_decay: float = 0.1
    """Cosine-decay the learning rate down to this fraction of its start over each stage (1.0 keeps it constant)."""
    qat: float = 0.0
    """Share of each stage's last steps that train through the quantizer (forward and loss on the
    dequantized weights at the steps the stage will be sent with, the gradient applied to the float
    ones), so the kept weights are those that survive quantization. 0 is off; needs a quantization
    config."""
    eval_pixels: int = 0
    """Pixels per chunk of the trainer's full-image passes (a stage's judged losses, its prefix cache;
    codec/chunked.py); 0 runs each over the whole image at once. Set by the memory plan
    (codec/memory.py) when the whole image at once does not fit the limit."""
    prefix_cache: bool = True
    """Compute the part of a stage's forward pass that no trained parameter touches (SPINR's frozen
    layers, FourierNet's encoding) once per stage instead of at every step. The same loss, bit for bit."""
    loop: str = "fast"
    """``fast``: fused kernels, and the batched loop of ``codec.batched`` (device-side bookkeeping;
    the same training up to float rounding, docs/SPINR.md "Speed") except for one fp32 fit on the
    CPU, which runs faster with the plain loop's bookkeeping (``codec.train.host_loop_is_faster``);
    ``plain``: the reference loop, plain kernels."""
    sync_every: int = 25
    """Fast loop: the host reads the losses (progress, history, divergences) every this many steps."""
    kernels: str = "fused"
    """Fast loop: ``fused`` sine layers (omega_0 folded into the weights, numpy's sine on CPU) or ``plain``."""
    precision: str = "fp32"
    """Fast loop: ``bf16`` runs the forward pass under bfloat16 autocast."""
    compile: bool = False
    """Fast loop: ``torch.compile`` the loss (compiled once per stage)."""
    tf32: bool = True
    """Fast loop on CUDA: TF32 matmuls."""
    init: str = "random"
    """Where training starts: ``random`` (the model's own initialisation, weights sent as they are) or
    ``meta`` (a shipped meta-learned θ0, fine-tuned, and the residual θ − θ0 sent; codec/meta)."""
    residual_penalty: float | None = None
    """``--init meta``: rate-aware fine-tuning. The loss becomes ``mse · exp(λ · R)`` (log-MSE plus λ R),
    R the mean |θ − θ0| (``residual_norm`` l1) or mean (θ − θ0)² (l2) over the trained parameters, so the
    fit trades distortion against how far the residual it sends drifts from θ0. 0: off; None: the θ0
    file's own λ (the one it was meta-trained with), faded as the target's bits per parameter grow
    (codec/meta/residual.py ``finetune_penalty``); off for a θ0 that names none."""
    residual_norm: str = "l1"
    """The residual penalty's norm: ``l1`` (Strümpler et al.'s) or ``l2``."""

    @property
    def penalty(self) -> float:
        """The residual penalty λ in force (an unset one, before θ0 is known, is none)."""
        return self.residual_penalty or 0.0

    def validate(self) -> None:
        _check_section(self, "train")
        check_device_name(self.device)
        if not 0.0 < self.lr_decay <= 1.0:
            raise ConfigError(f"lr_decay {self.lr_decay} is out of range: allowed 0 < lr_decay <= 1")
        if not (0.0 <= self.penalty <= 1e6):
            raise ConfigError(f"residual_penalty {self.residual_penalty} is out of range: allowed 0..1e6")
        if self.penalty > 0 and self.init != "meta":
            raise ConfigError(
                f"residual_penalty {self.residual_penalty} applies to init=meta only (it keeps a fine-tune"
                f" near θ0), not init={self.init!r}"
            )
        for name, allowed in (
            ("loop", LOOPS),
            ("kernels", KERNELS),
            ("precision", PRECISIONS),
            ("residual_norm", RESIDUAL_NORMS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name} {value!r} is not one of {', '.join(allowed)}")
        if self.eval_pixels < 0:
            raise ConfigError(f"eval_pixels {self.eval_pixels} must be >= 0 (0: the whole image at once)")
        if not 1 <= self.sync_every <= 10_000:
            raise ConfigError(f"sync_every {self.sync_every} is out of range: allowed 1..10000")
        if self.loop == "plain" and (self.compile or self.precision != "fp32"):
            raise ConfigError("compile and bf16 precision need the fast loop (loop='fast')")


@dataclass
class QuantConfig:
    """How weights become integers: one uniform step per tensor, allocated by sensitivity
    (codec/stepalloc.py); ``bits`` sets how fine all the steps are together."""

    bits: int = 8
    """Precision, 2..16: each bit more halves every step (6 dB less quantization noise, about one bit
    more per weight). 8 keeps about the PSNR format v1's 8-bit quantizer reached, in fewer bytes."""
    refinements: int = 0
    """Precision refinement packets per unit (codec/refine.py): each unit travels as coarse codes plus
    this many packets that each add ``refinement_bits`` of precision; 0: one packet per unit."""
    refinement_bits: int = 2
    """Bits of precision each refinement level adds (the base is this many bits coarser per level)."""

    def validate(self) -> None:
        _check_section(self, "quant")


DEFAULT_BPP = 0.5
"""The rate of an encode whose network is left to the size model and that names no target: where SPINR
led JPEG at equal bytes the most (docs/SPINR.md, "Default rate": sun80 at 96x64, +0.55 dB at 2 bpp,
+0.31 at 4; below 2 bpp JPEG cannot make a file that small at that size). Never above raw RGB (24)."""
MAX_BPP = 24.0
"""A target above raw RGB makes no sense for a codec."""


@dataclass
class RateConfig:
    """The file size to meet (at most the target, at least 90 % of it): give one of the two."""

    bpp: float | None = None
    """Bits per pixel of the whole file."""
    bytes: int | None = None
    """Bytes of the whole file."""
    trim: str = "auto"
    """``auto``: a progressive network whose last stages do not pay at the target is sent without them
    (the bytes go to the stages before); ``off``: every stage is sent."""

    def validate(self) -> None:
        _check_section(self, "rate")
        if self.bpp is not None and self.bytes is not None:
            raise ConfigError(f"give a rate target as bpp ({self.bpp}) or as bytes ({self.bytes}), not both")


@dataclass
class EncodeConfig:
    """Everything ``spinr encode`` needs besides the image."""

    model: ModelSpec = field(default_factory=ModelSpec)
    """The network to fit."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """How to fit it."""
    quant: QuantConfig = field(default_factory=QuantConfig)
    """How to quantize it without a rate target (a fixed network)."""
    rate: RateConfig = field(default_factory=RateConfig)
    """The file size to meet; with it the quantization (and, for a network left unset, the network)
    is chosen to meet it (codec/rate.py)."""

    def validate(self) -> EncodeConfig:
        self.model.validate()
        self.train.validate()
        self.quant.validate()
        self.rate.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> EncodeConfig:
        """Copy with top-level dotted overrides, e.g. ``replace(**{"train.steps": 10})``."""
        cfg = EncodeConfig(
            model=dataclasses.replace(self.model, options=dict(self.model.options)),
            train=dataclasses.replace(self.train),
            quant=dataclasses.replace(self.quant),
            rate=dataclasses.replace(self.rate),
        )
        for key, value in changes.items():
            section, _, name = key.partition(".")
            target = getattr(cfg, section, None)
            if target is None or not hasattr(target, name):
                raise ConfigError(f"unknown option {key!r}")
            setattr(target, name, value)
        return cfg


def _core(name: str, path: str, kind: Kind, help: str, **limits: Any) -> EncodeOption:  # noqa: A002
    section, _, attr = path.partition(".")
    default = getattr(getattr(EncodeConfig(), section), attr)
    return EncodeOption(name=name, field=path, kind=kind, default=default, help=help, **limits)


def _model_options() -> tuple[EncodeOption, ...]:
    """Every registered model's declared user options; one entry per name, applying to every model
    that declares it (the declarations must agree apart from the model)."""
    merged: dict[str, EncodeOption] = {}
    for model, options_cls in MODEL_OPTIONS.items():
        for opt in declared_options(options_cls, model):
            seen = merged.get(opt.name)
            if seen is None:
                merged[opt.name] = opt
            elif dataclasses.replace(seen, models=opt.models) != opt:
                raise TypeError(f"models {seen.models} and {model!r} declare option {opt.name!r} differently")
            else:
                merged[opt.name] = dataclasses.replace(seen, models=(*(seen.models or ()), model))
    return tuple(merged.values())


ENCODE_OPTIONS: tuple[EncodeOption, ...] = (
    _core("bpp", "rate.bpp", "float", "file size to meet, in bits per pixel (at most this, at least 90 %)",
          min=0.0, max=MAX_BPP, min_exclusive=True),
    _core("bytes", "rate.bytes", "int", "file size to meet, in bytes (at most this, at least 90 %)",
          min=1, max=2**28),
    _core("trim", "rate.trim", "choice",
          "with a rate target: send a progressive network without the last stages when they do not pay"
          " (auto), or always every stage (off)", choices=TRIMS, models=("spinr",)),
    _core("model", "model.name", "choice", "model family; spinr decodes progressively, layer by layer",
          choices=tuple(MODEL_OPTIONS)),
    _core("width", "model.width", "int", "neurons per hidden layer; unset: the size model picks the network",
          min=1, max=4096),
    _core("depth", "model.hidden_layers", "int", "hidden layers; unset: the size model picks", min=0, max=256),
    *_model_options(),
    _core("steps", "train.steps", "int", "total training steps, split across stages", min=1, max=10_000_000),
    _core("lr", "train.lr", "float", "Adam learning rate; unset: the model's own default",
          min=0.0, max=1.0, min_exclusive=True, max_exclusive=True),
    _core("batch_pixels", "train.batch_pixels", "int", "pixels sampled per step; 0 uses every pixel", min=0),
    _core("max_memory", "train.max_memory", "float",
          "memory the encode may use, in GiB: over it training samples pixel batches, or the encode is"
          " refused; 0: half this machine's memory", min=0.0, max=1e6),
    _core("init", "train.init", "choice",
          "start from a random initialisation, or fine-tune a shipped meta-learned one and send the residual",
          choices=INITS, models=("spinr", "siren")),
    _core("residual_penalty", "train.residual_penalty", "float",
          "init=meta: how hard fine-tuning is kept near θ0 (log-MSE + λ·mean|θ−θ0|); a smaller residual"
          " costs fewer bytes; unset: the λ θ0 was meta-trained with, less at higher rates; 0: off", min=0.0, max=1e6,
          models=("spinr", "siren")),
    _core("seed", "train.seed", "int", "random seed of initialisation and pixel sampling", min=0, max=2**31 - 1),
    _core("device", "train.device", "str", "training device: auto (CUDA when present), cpu, cuda or cuda:N"),
    _core("seq_steps", "train.seq_steps", "int",
          "under a rate target: fine-tuning steps of the later units after each unit is quantized", min=0,
          max=100_000),
    _core("qat", "train.qat", "float",
          "share of each stage's last steps trained through the quantizer; helps at low bits", min=0.0, max=1.0),
    _core("bits", "quant.bits", "int",
          "precision of a fixed network's weights without a rate target: each bit more halves every step",
          min=2, max=16),
    _core("refinements", "quant.refinements", "int",
          "precision refinement packets per unit (a coarse base packet plus this many finer ones); 0: none",
          min=0, max=15),
    _core("refinement_bits", "quant.refinement_bits", "int",
          "bits of precision each refinement packet adds", min=1, max=8),
)  # fmt: skip
"""The encode options a user may set, in display order: the CLI flags, the server's form,
``/api/config`` and the config's own checks all come from this table."""


def option_value(cfg: EncodeConfig, opt: EncodeOption) -> Any:
    """The value ``opt`` has in ``cfg`` (a model option not set, or not the model's: its default)."""
    if opt.model_option is None:
        return getattr(getattr(cfg, opt.group), opt.attr)
    return (
        cfg.model.options.get(opt.model_option, opt.default)
        if opt.applies_to(cfg.model.name)
        else opt.default
    )


def _set_option(cfg: EncodeConfig, opt: EncodeOption, value: Any) -> None:
    if opt.model_option is None:
        setattr(getattr(cfg, opt.group), opt.attr, value)
    else:
        cfg.model.options[opt.model_option] = value


def _check_section(section: object, group: str) -> None:
    """A config section's fields against the table (no label: a program, not a user, built it)."""
    for opt in ENCODE_OPTIONS:
        if opt.group == group and opt.model_option is None and opt.kind != "str":
            value = getattr(section, opt.attr)
            if value is not None:
                opt.check(value)


def _prefix(label: Callable[[str], str], name: str) -> str:
    typed = label(name)
    return "" if typed == name else f"{typed}: "


def apply_overrides(
    cfg: EncodeConfig,
    values: Mapping[str, Any],
    label: Callable[[str], str] = str,
    table: Sequence[EncodeOption] = ENCODE_OPTIONS,
) -> EncodeConfig:
    """``cfg`` with a user's choices (None = keep) applied and validated; shared by the CLI and the API.

    Every option of ``table`` (the server passes a narrowed copy, with its caps) is checked for its
    type, for the model it applies to, and, on the resulting config, for its range, so a preset's own
    value over a server's cap is refused too. Choosing another model drops the preset's model
    options (they belong to the preset's model). ``label`` names an option in errors as the user
    typed it (the CLI's ``--joint`` for ``joint``); keys of ``values`` outside the table are ignored."""
    by_name = {opt.name: opt for opt in table}
    if values.get("model") is not None and "model" in by_name:
        model = by_name["model"].check(values["model"], _prefix(label, "model"))
        if model != cfg.model.name:
            cfg.model.name = model
            cfg.model.options = {}
    for opt in table:
        value = values.get(opt.name)
        if opt.name == "model" or value is None:
            continue
        value = opt.coerce(value, _prefix(label, opt.name))
        if not opt.applies_to(cfg.model.name):
            only = " and ".join(opt.models or ())
            raise ConfigError(f"{label(opt.name)} applies to the {only} model only, not {cfg.model.name!r}")
        _set_option(cfg, opt, value)
    for opt in table:
        if opt.applies_to(cfg.model.name) and opt.kind != "str":
            value = option_value(cfg, opt)
            if value is not None:
                opt.check(value, _prefix(label, opt.name))
    return cfg.validate()


PRESETS: dict[str, EncodeConfig] = {
    # Rate/effort presets: the network comes from the size model for the image and the rate (--bpp or
    # --bytes, else DEFAULT_BPP); they differ in how long they train. rd-report recipe: Adam 1e-3 with
    # cosine decay, SPINR staged 20 % + joint 80 %, sequential quantization 40 steps per unit.
    "standard": EncodeConfig(ModelSpec("spinr"), TrainConfig(steps=2000)),
    # Several times faster, for previews and busy servers (fewer steps: less quality at the same bytes).
    "quick": EncodeConfig(ModelSpec("spinr"), TrainConfig(steps=300, seq_steps=15)),
    # Longer training for the last fraction of a dB (GPU, or patience).
    "thorough": EncodeConfig(ModelSpec("spinr"), TrainConfig(steps=6000, seq_steps=60)),
    # The study's fixed network, for reproducing it (not a rate preset): width 64, 16 hidden layers
    # (~66.9 K parameters), staged training only, 2000 steps, --bits precision.
    "paper": EncodeConfig(ModelSpec("spinr", 64, 16, {"joint": 0.0}), TrainConfig(steps=2000)),
    # Seconds, a fixed tiny network; for tests and smoke runs on tiny crops.
    "tiny": EncodeConfig(ModelSpec("spinr", 16, 2), TrainConfig(steps=60)),
}
DEFAULT_PRESET = "standard"


def preset(name: str) -> EncodeConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name].replace()

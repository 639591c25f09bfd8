"""Typed configuration for encoding: the model, its training and its quantization, with named presets."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codec.errors import ConfigError


@dataclass
class ModelSpec:
    """Which INR to fit and its size."""

    name: str = "spinr"
    """Registered model name (``spinr``, ``siren``, and the study's zoo: ``fourier``, ``mfn``, ``wire``, ``diner``)."""
    width: int = 64
    """Neurons per hidden layer."""
    hidden_layers: int = 16
    """Hidden (width x width) layers between the input and output layers; 16 at width 64 gives the study's ~66.8 K parameters."""
    options: dict[str, Any] = field(default_factory=dict)
    """Model-specific options (e.g. ``head`` for SPINR, ``omega_0`` for SIREN); each model validates its own."""

    def validate(self) -> None:
        if not 1 <= self.width <= 4096:
            raise ConfigError(f"width {self.width} is out of range: allowed 1..4096")
        if not 0 <= self.hidden_layers <= 256:
            raise ConfigError(f"depth (hidden layers) {self.hidden_layers} is out of range: allowed 0..256")


@dataclass
class TrainConfig:
    """How the network is fitted to the image."""

    steps: int = 2000
    """Total optimiser steps; a staged model splits them across its stages."""
    lr: float | None = None
    """Adam learning rate; None uses the model's recommended default."""
    batch_pixels: int = 0
    """Pixels sampled per step; 0 uses every pixel (full batch, as in the study)."""
    seed: int = 0
    """Seeds weight initialisation and pixel sampling."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``."""
    explode_factor: float = 10.0
    """A loss above this multiple of the best loss so far counts as an explosion (like a non-finite loss)."""
    max_restarts: int = 3
    """After a divergence the best weights are restored and the learning rate halved, at most this many times per stage."""
    lr_decay: float = 0.1
    """Cosine-decay the learning rate down to this fraction of its start over each stage (1.0 keeps it constant)."""
    qat: float = 0.0
    """Share of each stage's last steps that train through the quantizer (forward and loss on the
    dequantized weights, the gradient applied to the float ones), so the kept weights are those
    that survive quantization. 0 is off; needs a quantization config."""

    def validate(self) -> None:
        if not 1 <= self.steps <= 10_000_000:
            raise ConfigError(f"steps {self.steps} is out of range: allowed 1..10000000")
        if self.lr is not None and not (0.0 < self.lr < 1.0):
            raise ConfigError(f"learning rate {self.lr} is out of range: allowed 0 < lr < 1")
        if self.batch_pixels < 0:
            raise ConfigError(f"batch_pixels {self.batch_pixels} must be >= 0 (0 = all pixels)")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ConfigError(f"lr_decay {self.lr_decay} is out of range: allowed 0 < lr_decay <= 1")
        if not 0.0 <= self.qat <= 1.0:
            raise ConfigError(f"qat {self.qat} is out of range: allowed 0 <= qat <= 1")


@dataclass
class QuantConfig:
    """How weights become integers."""

    bits: int = 8
    """Bits per weight, 2..16."""
    per_channel: bool = False
    """One scale and offset per output channel (row) instead of per tensor."""
    precise_bits: int = 16
    """Bits for the few tensors a model marks precise (``INR.precise()``: a SIREN's input layer, whose
    quantization step ω0 = 30 turns into a phase error over the whole picture). A few hundred numbers:
    16 bits for them costs a few hundred bytes and saves 2 dB or more (docs/SPINR.md)."""

    def validate(self) -> None:
        if not 2 <= self.bits <= 16:
            raise ConfigError(f"bits {self.bits} is out of range: allowed 2..16")
        if not 2 <= self.precise_bits <= 16:
            raise ConfigError(f"precise_bits {self.precise_bits} is out of range: allowed 2..16")

    def bits_for(self, tensor: object, precise: set[int]) -> int:
        """The bits of one tensor, given the ``id()`` of the model's precise tensors."""
        return max(self.bits, self.precise_bits) if id(tensor) in precise else self.bits


@dataclass
class EncodeConfig:
    """Everything ``spinr encode`` needs besides the image."""

    model: ModelSpec = field(default_factory=ModelSpec)
    """The network to fit."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """How to fit it."""
    quant: QuantConfig = field(default_factory=QuantConfig)
    """How to quantize it."""

    def validate(self) -> EncodeConfig:
        self.model.validate()
        self.train.validate()
        self.quant.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> EncodeConfig:
        """Copy with top-level dotted overrides, e.g. ``replace(**{"train.steps": 10})``."""
        cfg = EncodeConfig(
            model=dataclasses.replace(self.model, options=dict(self.model.options)),
            train=dataclasses.replace(self.train),
            quant=dataclasses.replace(self.quant),
        )
        for key, value in changes.items():
            section, _, name = key.partition(".")
            target = getattr(cfg, section, None)
            if target is None or not hasattr(target, name):
                raise ConfigError(f"unknown option {key!r}")
            setattr(target, name, value)
        return cfg


OVERRIDES: dict[str, str] = {
    "width": "model.width",
    "depth": "model.hidden_layers",
    "steps": "train.steps",
    "lr": "train.lr",
    "batch_pixels": "train.batch_pixels",
    "seed": "train.seed",
    "device": "train.device",
    "qat": "train.qat",
    "bits": "quant.bits",
    "precise_bits": "quant.precise_bits",
}
"""User-facing option names (CLI flags, API form fields) -> the config field each sets."""
SPINR_OPTIONS = ("head", "joint", "dropout")
"""User-facing options that are SPINR model options."""


def apply_overrides(
    cfg: EncodeConfig, values: dict[str, Any], label: Callable[[str], str] = str
) -> EncodeConfig:
    """``cfg`` with a user's choices (None = keep) applied and validated; shared by the CLI and the API.

    Choosing another model drops the preset's model options (they belong to the preset's model).
    ``label`` names an option in errors as the user typed it (the CLI's ``--joint`` for ``joint``)."""
    model = values.get("model")
    if model is not None and model != cfg.model.name:
        cfg.model.name = model
        cfg.model.options = {}
    for key, path in OVERRIDES.items():
        if values.get(key) is not None:
            section, _, name = path.partition(".")
            setattr(getattr(cfg, section), name, values[key])
    if values.get("per_channel"):
        cfg.quant.per_channel = True
    for key in SPINR_OPTIONS:
        if values.get(key) is not None:
            if cfg.model.name != "spinr":
                raise ConfigError(f"{label(key)} applies to the spinr model only, not {cfg.model.name!r}")
            cfg.model.options[key] = values[key]
    return cfg.validate()


PRESETS: dict[str, EncodeConfig] = {
    # The study's small setting: width 64, 16 hidden layers (~66.9 K parameters), 2000 steps.
    "paper": EncodeConfig(ModelSpec("spinr", 64, 16), TrainConfig(steps=2000)),
    # Minutes on a 2-core CPU for a small image. A joint phase over half the steps: +2.3 dB at this
    # shallow size (docs/SPINR.md, "Joint phase").
    "quick": EncodeConfig(ModelSpec("spinr", 32, 4, {"joint": 0.5}), TrainConfig(steps=300)),
    # Seconds; for tests and smoke runs on tiny crops.
    "tiny": EncodeConfig(ModelSpec("spinr", 16, 2), TrainConfig(steps=60)),
}


def preset(name: str) -> EncodeConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name].replace()

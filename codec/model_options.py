"""Every model family's Options dataclass, registered by model name.

They live here, apart from the torch modules in ``codec.models``, so that the option table
(``codec.config.ENCODE_OPTIONS``), the command-line parser and the server can read which models exist
and which options each takes without importing torch (a decoder-only install has none). A field
with :func:`codec.options.option` metadata is an option a user may set; the table collects it, so a
new model brings its user options with it: register its Options here with :func:`model_options` and
point the model's ``Options`` class attribute at it. The order of registration is the order users
see (``spinr`` and ``siren`` first, then the study's zoo).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codec import posenc
from codec.errors import ConfigError
from codec.options import check_declared, option

MODEL_OPTIONS: dict[str, type] = {}
"""Model name -> its Options dataclass; kept in step with ``codec.models.MODELS`` (tests/test_models.py)."""


def model_options(name: str) -> Callable[[type], type]:
    """Register an Options dataclass as model ``name``'s."""

    def wrap(cls: type) -> type:
        MODEL_OPTIONS[name] = cls
        return cls

    return wrap


HEADS = ("per_stage", "shared")
"""SPINR's readouts (codec/models/spinr.py)."""


def _pe_frequencies() -> Any:
    """The positional-encoding frequency count of SIREN and SPINR (one definition for both)."""
    return field(
        default=0,
        metadata=option(
            "positional encoding of (x, y): frequencies per axis, 0 = off (set by the size model under a rate target)",
            min=0,
            max=posenc.MAX_FREQUENCIES,
        ),
    )


def _pe_scale() -> Any:
    """The ratio between successive positional-encoding frequencies of SIREN and SPINR."""
    return field(
        default=posenc.DEFAULT_SCALE,
        metadata=option(
            "ratio between successive positional-encoding frequencies",
            min=posenc.SCALE_RANGE[0],
            max=posenc.SCALE_RANGE[1],
            min_exclusive=True,
        ),
    )


@model_options("spinr")
@dataclass
class SpinrOptions:
    head: str = field(
        default="per_stage",
        metadata=option(
            "SPINR readout: one per stage (measured best) or the study's shared one", choices=HEADS
        ),
    )
    """``per_stage`` (a readout per stage, the default by measurement) or ``shared`` (the study's)."""
    first_omega_0: float = 30.0
    """Frequency factor of the first layer."""
    hidden_omega_0: float = 30.0
    """Frequency factor of the hidden layers."""
    pe_frequencies: int = _pe_frequencies()
    """L: the first layer sees (x, y) and sin/cos of f_k x, f_k y for k < L (codec/posenc.py); 0 is off."""
    pe_scale: float = _pe_scale()
    """f_k = pe_scale^k * pi; Strümpler's dense 1.4 measured best (octave 2 gains nothing at equal bytes)."""
    residual: bool = True
    """Each hidden layer adds to its input (h_k = h_{k-1} + sin(...)), so a new stage starts from the
    previous stage's picture and can only refine it; ``False`` is the study's plain chain."""
    residual_init: float = 0.7
    """With ``residual``, a new hidden layer's initial weights are scaled by this (small: starts near the previous stage)."""
    stage0_weight: float = 2.0
    """Stage 0 gets this many times the steps of each later stage (it learns the input mapping every later stage builds on)."""
    joint: float = field(
        default=0.0,
        metadata=option(
            "share of the steps for a last phase training all layers on every prefix's loss;"
            " the size model's 3-layer nets use 0.8 (rd-report); 0 suits deep staged nets",
            min=0.0,
            max=1.0,
            max_exclusive=True,
        ),
    )
    """Share of the step budget for a last phase that trains every layer and head at once on the
    mean loss of all prefixes (every prefix keeps decoding; the deep ones catch up with SIREN). 0.8:
    staged 20 % + joint 80 % makes every stage of a 3-hidden-layer PE net worth 2.7-2.8 dB and the
    final prefix within 0.3 dB of SIREN at equal bytes (rd-report, "SPINR"), so a network the size
    model plans gets 0.8 (codec/sizemodel.py); harmful at 16 layers, so the option's own default is 0."""
    joint_lr: float = 1.0
    """The joint phase's learning rate as a multiple of the stages' (it moves a whole trained
    network, where a stage moves one fresh layer)."""
    dropout: float = field(
        default=0.0,
        metadata=option("SPINR neuron dropout while training", min=0.0, max=0.5, max_exclusive=True),
    )
    """While training, each hidden neuron is silenced for a whole step with this probability (the
    same neurons for every pixel, as a lost neuron would be), so no picture hangs on one neuron."""

    def __post_init__(self) -> None:
        check_declared(self, "spinr", "SPINR ")
        if not self.stage0_weight > 0:
            raise ConfigError(f"stage0_weight {self.stage0_weight} must be > 0")
        if not 0.0 < self.joint_lr <= 10.0:
            raise ConfigError(f"SPINR joint_lr {self.joint_lr} is out of range: allowed 0 < joint_lr <= 10")


@model_options("siren")
@dataclass
class SirenOptions:
    first_omega_0: float = 30.0
    """Frequency factor of the first layer (the paper's omega_0)."""
    hidden_omega_0: float = 30.0
    """Frequency factor of the hidden layers."""
    pe_frequencies: int = _pe_frequencies()
    """L: the first layer sees (x, y) and sin/cos of f_k x, f_k y for k < L (codec/posenc.py); 0 is off."""
    pe_scale: float = _pe_scale()
    """f_k = pe_scale^k * pi; Strümpler's dense 1.4 measured best (octave 2 gains nothing at equal bytes)."""

    def __post_init__(self) -> None:
        check_declared(self, "siren", "SIREN ")


@model_options("fourier")
@dataclass
class FourierOptions:
    sigma: float = 10.0
    """Standard deviation of the Gaussian B (authors' image default 10)."""
    mapping_size: int = 256
    """Number of random frequencies; the encoding has 2 * mapping_size features."""
    b_seed: int = 0
    """Seed of B (stored in the header; the experiments set it to the run's seed)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.sigma <= 1e4:
            raise ConfigError(f"fourier sigma {self.sigma} is out of range: allowed 0 < sigma <= 10000")
        if not 1 <= self.mapping_size <= 4096:
            raise ConfigError(f"fourier mapping_size {self.mapping_size} is out of range: allowed 1..4096")
        if not 0 <= self.b_seed < 2**32:
            raise ConfigError(f"fourier b_seed {self.b_seed} is out of range: allowed 0..2^32-1")


FILTERS = ("gabor", "fourier")
"""MFN's filter families (codec/models/mfn.py)."""


@model_options("mfn")
@dataclass
class MfnOptions:
    filter: str = "gabor"
    """``gabor`` (GaborNet) or ``fourier`` (the MFN paper's FourierNet)."""
    input_scale: float = 256.0
    """Scale of the filter frequencies (divided by sqrt(H + 1) over the filters)."""
    weight_scale: float = 1.0
    """Scale of the linear layers' uniform init."""
    alpha: float = 6.0
    """Gabor: gamma ~ Gamma(alpha / (H + 1), beta)."""
    beta: float = 1.0

    def __post_init__(self) -> None:
        if self.filter not in FILTERS:
            raise ConfigError(f"MFN filter {self.filter!r} is not one of {', '.join(FILTERS)}")


@model_options("wire")
@dataclass
class WireOptions:
    omega_0: float = 20.0
    """Frequency of the wavelet (all layers)."""
    scale_0: float = 10.0
    """Width (inverse) of the Gaussian envelope."""


@model_options("diner")
@dataclass
class DinerOptions:
    features: int = 2
    """Learnable features per pixel (the table's second dimension)."""
    omega_0: float = 30.0
    """SIREN frequency factor of the MLP (first and hidden layers)."""

    def __post_init__(self) -> None:
        if not 1 <= self.features <= 64:
            raise ConfigError(f"DINER features {self.features} is out of range: allowed 1..64")

"""How big a run of the study is (profiles), and the study's model sizes and recipes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codec.errors import ConfigError

# The study's two sizes per family (parameter counts match the paper's Table 1 exactly, see docs/STUDY.md):
# "*" rows and the half-width / double-depth rows.
STUDY_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "fourier": {"large": (128, 4), "small": (64, 8)},
    "siren": {"large": (256, 2), "small": (128, 4)},
    "mfn": {"large": (256, 2), "small": (128, 4)},
    "wire": {"small": (128, 4)},
    "diner": {"small": (64, 2)},
    "spinr": {"small": (128, 4)},
}


STUDY_OPTIONS: dict[str, dict[str, Any]] = {
    # At the study's shallow 128 x 4 size a joint phase over the last 85 % of the steps lifts SPINR
    # past SIREN (docs/SPINR.md, "Joint phase"); a variant's own options override these.
    "spinr": {"joint": 0.85},
}
SPINR_PAPER: dict[str, Any] = {"head": "shared", "residual": False, "joint": 0.0}
"""The study's own SPINR recipe: one shared readout, a plain chain, stages only."""


@dataclass
class Profile:
    """How big a run is."""

    name: str
    seeds: int
    steps: int
    crop: int
    """Centre crop side in pixels; 0 keeps full images."""
    images: int
    """Images taken from the dataset folder (sorted by name); 0 takes all."""
    width_scale: float = 1.0
    """Multiplies every model width (the paper profile uses 1: the study's sizes)."""
    trials: int = 3
    """Random draws per lost-neuron count."""
    downscale: int = 1
    """Shrink every image by this integer factor (box filter) before cropping. With ``width_scale`` =
    1/downscale the model keeps the study's parameters per pixel (and so its bits per pixel): a
    miniature of the paper profile that a CPU can run."""
    mtu_scale: float = 1.0
    """Multiplies the loss experiment's MTU, so a miniature splits each layer into as many datagrams
    as the full-size model does."""


PROFILES = {
    "tiny": Profile("tiny", seeds=2, steps=30, crop=32, images=2, width_scale=0.125, trials=2),
    "quick": Profile("quick", seeds=3, steps=300, crop=64, images=2, width_scale=0.25, trials=3),
    "paper": Profile("paper", seeds=10, steps=2000, crop=0, images=0, width_scale=1.0, trials=5),
    # The paper profile at 1/4 scale in each direction: images 1/16 the pixels, widths 1/4 (hidden
    # layers ~1/16 the weights), the same 2000 steps. CPU: ~15 s per fit on Set14.
    "mini": Profile(
        "mini",
        seeds=3,
        steps=2000,
        crop=0,
        images=0,
        width_scale=0.25,
        trials=8,
        downscale=4,
        mtu_scale=1 / 16,
    ),
}


def profile_from_args(args: Any) -> Profile:
    base = PROFILES[args.profile]
    p = Profile(**{**base.__dict__})
    for key in ("seeds", "steps", "images", "crop", "trials", "downscale"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(p, key, value)
    if getattr(args, "width_scale", None) is not None:
        p.width_scale = args.width_scale
    if p.seeds < 1 or p.steps < 1:
        raise ConfigError(f"--seeds {p.seeds} and --steps {p.steps} must both be >= 1")
    if not 1 <= p.downscale <= 64:
        raise ConfigError(f"--downscale {p.downscale} is out of range: allowed 1..64")
    return p


def scaled(width: int, profile: Profile) -> int:
    return max(4, int(round(width * profile.width_scale)))

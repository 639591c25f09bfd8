"""One fit of the study: an image through the codec (fit -> quantize -> bitstream -> numpy decode).

Every fit goes through ``codec.encode.encode_image``, so the numbers are the codec's. Perturbation
experiments (noise, lost neurons) take the torch model a receiver holds from the bitstream
(``codec.models.received_model``) and render it with :func:`render`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from codec.metrics import ssim
from experiments.profiles import STUDY_OPTIONS, Profile

if TYPE_CHECKING:
    from codec.bitstream import Bitstream


@dataclass
class Fit:
    """One encode of one image: the codec's numbers plus what the perturbation experiments need."""

    model: str
    width: int
    hidden_layers: int
    options: dict[str, Any]
    seed: int
    psnr_float: float
    psnr: float
    """After quantization, numpy decode (what a receiver gets)."""
    ssim: float
    bytes: int
    params: int
    stage_psnr: list[float]
    bitstream: Bitstream = field(repr=False)


def fit_image(
    image: np.ndarray,
    model: str,
    width: int,
    hidden_layers: int,
    seed: int,
    steps: int,
    device: str = "cpu",
    options: dict[str, Any] | None = None,
    lr: float | None = None,
    bits: int = 8,
    width_scale: float = 1.0,
) -> Fit:
    """Encode ``image`` with the study's options for ``model`` (``options`` override them).

    ``width_scale`` is the profile's: FourierNet's mapping size shrinks with the widths, so a
    miniature keeps the study's share of parameters in the input layer."""
    from codec.config import EncodeConfig, ModelSpec, QuantConfig, TrainConfig
    from codec.decoder import ProgressiveDecoder
    from codec.encode import encode_image

    options = {**STUDY_OPTIONS.get(model, {}), **(options or {})}
    if device.startswith("cuda"):
        import torch

        # TF32 matmuls: ~5x faster fits on the H200 (measured), well below the PSNR noise across seeds.
        torch.backends.cuda.matmul.allow_tf32 = True
    if model == "fourier":
        from codec.models.fourier import FourierOptions

        options.setdefault("b_seed", seed)
        if width_scale != 1.0:
            options.setdefault("mapping_size", max(8, round(FourierOptions().mapping_size * width_scale)))
    cfg = EncodeConfig(
        ModelSpec(model, width, hidden_layers, options),
        TrainConfig(steps=steps, lr=lr, seed=seed, device=device),
        QuantConfig(bits=bits),
    )
    res = encode_image(image, cfg)
    rgb = ProgressiveDecoder.from_bitstream(res.bitstream).decode().rgb
    return Fit(
        model,
        width,
        hidden_layers,
        options,
        seed,
        res.float_psnr,
        res.psnr,
        ssim(rgb, image),
        res.bytes,
        res.params,
        list(res.stage_psnr),
        res.bitstream,
    )


@dataclass(kw_only=True)
class FitJob:
    """One fit of one image, as a worker process receives it; experiments extend it with their own fields."""

    image: np.ndarray = field(repr=False)
    image_name: str
    model: str
    width: int
    hidden: int
    """Hidden layers."""
    seed: int
    steps: int
    device: str = "cpu"
    scale: float = 1.0
    """The profile's width scale (FourierNet's mapping size follows it)."""

    def fit(self, **overrides: Any) -> Fit:
        """:func:`fit_image` on the job's fields; ``overrides`` add or replace keyword arguments
        (``options``, ``bits``, ``lr``, ``model``)."""
        args: dict[str, Any] = {"model": self.model, "device": self.device, "width_scale": self.scale}
        args.update(overrides)
        return fit_image(
            self.image, width=self.width, hidden_layers=self.hidden, seed=self.seed, steps=self.steps, **args
        )


def run_fields(profile: Profile, args: Any, name: str, image: np.ndarray) -> dict[str, Any]:
    """The :class:`FitJob` fields every fit of one run shares: the image and its name, the profile's
    steps and width scale, the run's device."""
    return {
        "image": image,
        "image_name": name,
        "steps": profile.steps,
        "scale": profile.width_scale,
        "device": getattr(args, "device", "cpu"),
    }


def render(model: Any, width: int, height: int, depth: int | None = None) -> np.ndarray:
    """uint8 image from a torch model (same coordinates and output mapping as the decoder)."""
    import torch

    from codec.coords import grid, to_rgb8

    dev = next(model.parameters()).device
    with torch.no_grad():
        y = model(torch.from_numpy(grid(width, height)).to(dev), depth).float().cpu().numpy()
    return to_rgb8(y, width, height)

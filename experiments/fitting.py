"""One fit of the study: an image through the codec (fit -> quantize -> bitstream -> numpy decode).

Every fit goes through ``codec.encode.encode_image``, so the numbers are the codec's. Perturbation
experiments (noise, lost neurons) take the torch model a receiver holds from the bitstream
(``codec.models.received_model``) and render it with :func:`render`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from codec.errors import SpinrError
from codec.metrics import ssim
from experiments.profiles import STUDY_OPTIONS, Profile

if TYPE_CHECKING:
    from codec.bitstream import Bitstream
    from codec.config import EncodeConfig
    from codec.encode import EncodeResult


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


def fit_config(
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
    compile: bool = False,  # noqa: A002 - TrainConfig's name
) -> EncodeConfig:
    """The codec config of one study fit: the study's options for ``model`` (``options`` override them).

    ``width_scale`` is the profile's: FourierNet's mapping size shrinks with the widths, so a
    miniature keeps the study's share of parameters in the input layer."""
    from codec.config import EncodeConfig, ModelSpec, QuantConfig, TrainConfig

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
    return EncodeConfig(
        ModelSpec(model, width, hidden_layers, options),
        TrainConfig(steps=steps, lr=lr, seed=seed, device=device, compile=compile),
        QuantConfig(bits=bits),
    )


def _record(image: np.ndarray, cfg: EncodeConfig, res: EncodeResult) -> Fit:
    from codec.decoder import ProgressiveDecoder

    rgb = ProgressiveDecoder.from_bitstream(res.bitstream).decode().rgb
    spec = cfg.model
    assert spec.width is not None and spec.hidden_layers is not None  # the study fixes its networks
    return Fit(
        spec.name,
        spec.width,
        spec.hidden_layers,
        spec.options,
        cfg.train.seed,
        res.float_psnr,
        res.psnr,
        ssim(rgb, image),
        res.bytes,
        res.params,
        list(res.stage_psnr),
        res.bitstream,
    )


def fit_image(
    image: np.ndarray, model: str, width: int, hidden_layers: int, seed: int, steps: int, **kw: Any
) -> Fit:
    """Encode ``image`` with the study's options for ``model``; keyword arguments as :func:`fit_config`."""
    from codec.encode import encode_image

    cfg = fit_config(model, width, hidden_layers, seed, steps, **kw)
    return _record(image, cfg, encode_image(image, cfg))


def fit_images(args: Sequence[dict[str, Any]]) -> list[Fit | SpinrError]:
    """:func:`fit_image` for several fits of one shape (same-size images, any seeds), trained as one
    batch (``codec.batched``); a fit that diverged comes back as its error."""
    from codec.encode import encode_images

    images = [a["image"] for a in args]
    cfgs = [fit_config(**{k: v for k, v in a.items() if k != "image"}) for a in args]
    results = encode_images(images, cfgs)
    return [
        r if isinstance(r, SpinrError) else _record(img, cfg, r)
        for img, cfg, r in zip(images, cfgs, results, strict=True)
    ]


def batch_key(args: dict[str, Any]) -> str:
    """Fits with equal keys can train as one batch: everything but the seed and the pixels agrees."""
    shape = args["image"].shape
    rest = {k: v for k, v in args.items() if k not in ("image", "seed")}
    return json.dumps({"shape": shape, **rest}, sort_keys=True, default=str)


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
    compile: bool = False
    """``torch.compile`` the training step (``TrainConfig.compile``)."""
    prefit: Fit | SpinrError | None = field(default=None, repr=False)
    """This job's fit, done beforehand in a batch with others of its shape (``experiments.pool``)."""

    def fit_overrides(self) -> dict[str, Any]:
        """What this kind of job sets in :func:`fit_config` beyond the common fields (model variant,
        options, bits, learning rate)."""
        return {}

    def fit_args(self) -> dict[str, Any]:
        """The keyword arguments of :func:`fit_image` for this job."""
        args: dict[str, Any] = {
            "image": self.image,
            "model": self.model,
            "width": self.width,
            "hidden_layers": self.hidden,
            "seed": self.seed,
            "steps": self.steps,
            "device": self.device,
            "width_scale": self.scale,
            "compile": self.compile,
        }
        args.update(self.fit_overrides())
        return args

    def fit(self) -> Fit:
        """The job's fit: the batched one when the pool made it, else one fit now."""
        if isinstance(self.prefit, SpinrError):
            raise self.prefit
        if self.prefit is not None:
            return self.prefit
        args = self.fit_args()
        return fit_image(args.pop("image"), **args)


def run_fields(profile: Profile, args: Any, name: str, image: np.ndarray) -> dict[str, Any]:
    """The :class:`FitJob` fields every fit of one run shares: the image and its name, the profile's
    steps and width scale, the run's device and whether it compiles."""
    return {
        "image": image,
        "image_name": name,
        "steps": profile.steps,
        "scale": profile.width_scale,
        "device": getattr(args, "device", "cpu"),
        "compile": bool(getattr(args, "compile", False)),
    }


def render(model: Any, width: int, height: int, depth: int | None = None) -> np.ndarray:
    """uint8 image from a torch model (same coordinates and output mapping as the decoder)."""
    import torch

    from codec.coords import grid, to_rgb8

    dev = next(model.parameters()).device
    with torch.no_grad():
        y = model(torch.from_numpy(grid(width, height)).to(dev), depth).float().cpu().numpy()
    return to_rgb8(y, width, height)

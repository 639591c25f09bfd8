"""The validation curve of a θ0: PSNR after k fine-tuning steps from θ0 against from a random start,
on held-out corpus images (JSON, and a PNG plot when matplotlib is installed)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codec.meta.corpus import center
from codec.meta.initfile import InitFile
from codec.meta.reptile import MetaConfig, adapt, load_weights, targets
from codec.metrics import psnr

CHECKPOINTS = (0, 10, 25, 50, 100, 200, 400)


def _psnr_now(model: Any, image: np.ndarray) -> float:
    x, _ = targets(image)
    with torch.no_grad():
        out = model(x).clamp(-1, 1).numpy()
    rgb = np.round((out + 1.0) * 127.5).astype(np.uint8).reshape(image.shape)
    return float(psnr(rgb, image))


def curve(model: Any, image: np.ndarray, steps: int, lr: float, decay: float = 1.0) -> list[float]:
    """PSNR of the full output after each step in CHECKPOINTS (<= steps), full-batch Adam, the rate
    cosine-decayed over ``steps`` to ``decay`` x ``lr`` (1: constant)."""
    out: list[float] = []

    def record(k: int) -> None:
        if k in CHECKPOINTS and k <= steps:
            out.append(_psnr_now(model, image))

    adapt(model, image, steps, lr, 0, torch.Generator().manual_seed(0), record, decay)
    return out


def validation(cfg: MetaConfig, init: InitFile, images: list[np.ndarray], steps: int = 400) -> dict[str, Any]:
    """Mean PSNR per checkpoint from θ0 and from random starts (seeds 0..) over the held-out crops."""
    ks = [k for k in CHECKPOINTS if k <= steps]
    meta, rand = [], []
    for i, img in enumerate(images):
        crop = center(img, cfg.crop_width, cfg.crop_height)
        m = cfg.build()
        load_weights(m, init)
        meta.append(curve(m, crop, steps, cfg.inner_lr, cfg.inner_decay))
        torch.manual_seed(1000 + i)
        rand.append(curve(cfg.build(), crop, steps, cfg.inner_lr, cfg.inner_decay))
    mean = lambda rows: [round(float(np.mean(c)), 3) for c in zip(*rows, strict=True)]  # noqa: E731
    return {
        "theta0": init.hash_hex,
        "images": len(images),
        "steps": ks,
        "psnr_meta": mean(meta),
        "psnr_random": mean(rand),
        "lr": cfg.inner_lr,
        "decay": cfg.inner_decay,
    }


def write_curve(result: dict[str, Any], json_path: Path, png_path: Path | None) -> str | None:
    """Writes the JSON (and the PNG when possible); returns a note when the PNG was not written."""
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    if png_path is None:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no PNG: matplotlib is missing (pip install 'spinr[experiments]')"
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ks = [max(k, 1) for k in result["steps"]]
    ax.plot(ks, result["psnr_meta"], "o-", label=f"from θ0 {result['theta0'][:8]}")
    ax.plot(ks, result["psnr_random"], "s--", label="from a random start")
    ax.set_xscale("log")
    ax.set_xlabel("fine-tuning steps (0 plotted at 1)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"held-out sun80 crops ({result['images']})")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return None


def steps_to_reach(ks: list[int], values: list[float], target: float) -> float:
    """The first checkpoint whose PSNR reaches ``target`` (inf when none does)."""
    for k, v in zip(ks, values, strict=True):
        if v >= target:
            return float(k)
    return math.inf

"""How long an encode will train, measured on the device before it starts.

A few real optimiser steps of the planned network on the image's pixels (after one warm-up step), times
the steps the encode will run: the estimate already includes the device, its load and the image size.
A staged SPINR trains one layer at a time for its first stages, so this (every layer every step) is an
upper bound for it; sensitivity probes and the entropy coder add a few seconds on small images.
"""

from __future__ import annotations

import time

import numpy as np

from codec.config import EncodeConfig

TIMED_STEPS = 3


def seconds_per_step(cfg: EncodeConfig, image: np.ndarray) -> float:
    """Wall seconds of one full-batch (or ``batch_pixels``) Adam step of ``cfg``'s network on ``image``
    (``cfg`` with the network decided: :func:`codec.rate.plan_encode`)."""
    import torch

    from codec.coords import grid
    from codec.device import resolve_device
    from codec.models import build_model
    from codec.train import image_tensor

    spec = cfg.model
    assert spec.width is not None and spec.hidden_layers is not None
    device = resolve_device(cfg.train.device)
    model = build_model(spec.name, spec.width, spec.hidden_layers, spec.options).to(device)
    model.set_image_size(image.shape[1], image.shape[0])
    h, w = image.shape[:2]
    x, y = torch.from_numpy(grid(w, h)).to(device), image_tensor(image, device)
    if 0 < cfg.train.batch_pixels < x.shape[0]:
        x, y = x[: cfg.train.batch_pixels], y[: cfg.train.batch_pixels]
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    depths = list(range(model.depths))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        outs = model.forward_exits(x, depths)
        loss = sum(torch.mean((o - y) ** 2) for o in outs)
        loss.backward()  # type: ignore[union-attr]
        opt.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(TIMED_STEPS):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / TIMED_STEPS


def estimate_seconds(cfg: EncodeConfig, image: np.ndarray) -> float:
    """Estimated training time of ``cfg`` on ``image``: its steps (training and sequential
    quantization together) at the measured seconds per step."""
    return cfg.train.steps * seconds_per_step(cfg, image)


def estimate_encode_seconds(cfg: EncodeConfig, image: np.ndarray) -> float:
    """:func:`estimate_seconds` of the encode ``cfg`` plans for ``image`` (``codec.rate.plan_encode``:
    the network, the target and the pixel batches it will train with)."""
    from codec.rate import plan_encode

    return estimate_seconds(plan_encode(cfg, int(image.shape[1]), int(image.shape[0])).cfg, image)

from __future__ import annotations

import threading

import numpy as np
import pytest

from codec.config import TrainConfig
from codec.errors import Cancelled
from codec.metrics import psnr
from codec.models import build_model
from codec.train import Progress, fit, split_steps


def test_split_steps_spends_the_whole_budget() -> None:
    assert sum(split_steps(2000, [2.0] + [1.0] * 16)) == 2000
    assert split_steps(5, [1.0] * 8) == [1] * 8  # every stage trains at least once
    s = split_steps(300, [2.0, 1.0, 1.0])
    assert s[0] == 150 and sum(s) == 300


def test_siren_fits_a_photo_crop(photo_crop: np.ndarray) -> None:
    events: list[Progress] = []
    m = build_model("siren", 32, 2)
    r = fit(m, photo_crop, TrainConfig(steps=150, lr=1e-3, device="cpu"), progress=events.append)
    assert 22.0 < r.stage_psnr[-1] < 60.0
    steps = [e.step for e in events]
    assert steps == sorted(steps) and steps[-1] == 150
    assert events[-1].event == "stage_done"


def test_spinr_quality_rises_with_stages(photo_crop: np.ndarray) -> None:
    m = build_model("spinr", 24, 3)
    r = fit(m, photo_crop, TrainConfig(steps=200, lr=2e-3, device="cpu"))
    assert len(r.stage_psnr) == 4
    assert r.stage_psnr[-1] > r.stage_psnr[0] + 1.0
    # Each stage keeps its best weights, and starts from the previous picture: never much worse.
    assert all(b > a - 0.5 for a, b in zip(r.stage_psnr, r.stage_psnr[1:], strict=False))


def test_divergence_is_reported_and_best_weights_kept(photo_crop: np.ndarray) -> None:
    m = build_model("siren", 32, 2)
    r = fit(m, photo_crop, TrainConfig(steps=60, lr=0.9, device="cpu", seed=1))
    assert any("restored the best weights" in w for w in r.warnings)
    # The kept weights are the best seen: the final full-image PSNR is at least the best step's.
    import torch

    from codec.coords import grid, to_rgb8

    with torch.no_grad():
        y = m(torch.from_numpy(grid(64, 48))).numpy()
    assert np.isfinite(y).all()
    assert abs(psnr(to_rgb8(y, 64, 48), photo_crop) - r.stage_psnr[-1]) < 0.3


def test_cancel_stops_training(photo_crop: np.ndarray) -> None:
    ev = threading.Event()

    def progress(p: Progress) -> None:
        if p.step >= 20:
            ev.set()

    with pytest.raises(Cancelled):
        fit(build_model("siren", 16, 1), photo_crop, TrainConfig(steps=1000, device="cpu"), progress, ev, 1)


def test_a_stage_never_leaves_the_picture_worse(photo_crop: np.ndarray) -> None:
    # A learning rate far too high for the late stages: without the pass-through, PSNR would drop.
    m = build_model("spinr", 24, 4)
    r = fit(m, photo_crop, TrainConfig(steps=120, lr=0.05, device="cpu", seed=2))
    assert all(b >= a - 1e-6 for a, b in zip(r.stage_psnr, r.stage_psnr[1:], strict=False)), r.stage_psnr
    # A stage that could not improve is an exact pass-through: zero layer, copied head.
    for k, (before, after) in enumerate(zip(r.stage_psnr, r.stage_psnr[1:], strict=False), start=1):
        if after == before:
            assert float(m.hidden[k - 1].linear.weight.detach().abs().max()) == 0.0

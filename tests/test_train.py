from __future__ import annotations

import threading

import numpy as np
import pytest

from codec.config import TrainConfig
from codec.errors import Cancelled
from codec.metrics import psnr
from codec.models import build_model
from codec.train import TrainProgress, fit, split_steps


def test_split_steps_spends_the_whole_budget() -> None:
    assert sum(split_steps(2000, [2.0] + [1.0] * 16)) == 2000
    assert split_steps(5, [1.0] * 8) == [1] * 8  # every stage trains at least once
    s = split_steps(300, [2.0, 1.0, 1.0])
    assert s[0] == 150 and sum(s) == 300


def test_siren_fits_a_photo_crop(photo_crop: np.ndarray) -> None:
    events: list[TrainProgress] = []
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

    def progress(p: TrainProgress) -> None:
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


def test_stages_freeze_at_the_codes_the_stream_carries(photo_crop: np.ndarray) -> None:
    """SPINR's quantize-on-freeze uses the stream's quantizer: every frozen tensor is exactly its codes
    times its step, and the encoder sends those very steps and codes."""
    import torch

    from codec.config import QuantConfig
    from codec.quant import quantize
    from codec.stepquant import fake_quantize, model_tensors

    m = build_model("spinr", 12, 2)
    r = fit(m, photo_crop, TrainConfig(steps=40, device="cpu"), quant=QuantConfig(bits=6))
    tensors = model_tensors(m)
    assert {id(t) for t in tensors} == set(r.steps)  # every stage froze at steps of its own
    for t in tensors:
        frozen = t.detach()
        assert torch.equal(fake_quantize(frozen, r.steps[id(t)]), frozen)
        q = quantize("t", frozen.numpy(), r.steps[id(t)])
        assert np.array_equal(q.dequantize(), frozen.numpy())


def test_quantization_aware_steps_keep_more_of_a_coarse_quantization(photo_crop: np.ndarray) -> None:
    from codec.config import EncodeConfig, ModelSpec, QuantConfig
    from codec.encode import encode_image

    def encode(qat: float) -> tuple[float, float]:
        cfg = EncodeConfig(
            ModelSpec("siren", 32, 4),
            TrainConfig(steps=300, lr=3e-4, device="cpu", qat=qat),
            QuantConfig(bits=4),  # coarse: quantization noise at 20 dB
        )
        r = encode_image(photo_crop, cfg)
        return r.psnr, r.float_psnr

    plain, plain_float = encode(0.0)
    aware, _ = encode(0.5)
    # 4 bits costs the plain fit many dB (measured ~9); training through the quantizer wins much back (~5).
    assert plain < plain_float - 4.0
    assert aware > plain + 2.5, (plain, aware)


def test_spinr_joint_phase_lifts_every_prefix_and_keeps_them_decoding(photo_crop: np.ndarray) -> None:
    plain = fit(build_model("spinr", 24, 3), photo_crop, TrainConfig(steps=300, lr=2e-3, device="cpu"))
    m = build_model("spinr", 24, 3, {"joint": 0.6})
    assert [s.name for s in m.stages()][-1] == "joint"
    joint = fit(m, photo_crop, TrainConfig(steps=300, lr=2e-3, device="cpu"))
    # Re-measured for every prefix after the joint phase moved the early layers.
    assert len(joint.stage_psnr) == 4
    assert joint.stage_psnr[-1] > plain.stage_psnr[-1] + 1.0, (plain.stage_psnr, joint.stage_psnr)
    assert all(p > 15.0 for p in joint.stage_psnr)
    assert joint.stage_psnr[-1] > joint.stage_psnr[0] + 1.0


def test_spinr_dropout_silences_whole_neurons_only_while_training() -> None:
    import torch

    m = build_model("spinr", 16, 2, {"dropout": 0.3, "residual": False, "head": "shared"})
    x = torch.rand(50, 2) * 2 - 1
    torch.manual_seed(0)
    m.train()
    acts = [h for _, h in m._trunk(x, 2)]
    for h in acts:
        dead = (h == 0).all(dim=0)
        assert 0 < int(dead.sum()) < 16  # some neurons silenced for every pixel, not all
        assert bool(((h == 0) == dead).all())  # a neuron is either off everywhere or nowhere
    m.eval()
    assert all(int((h == 0).all(dim=0).sum()) == 0 for _, h in m._trunk(x, 2))


@pytest.mark.parametrize("bad", [{"joint": 1.0}, {"joint": -0.1}, {"dropout": 0.5}])
def test_spinr_rejects_out_of_range_recipe_options(bad: dict) -> None:
    from codec.errors import ConfigError

    with pytest.raises(ConfigError, match=next(iter(bad))):
        build_model("spinr", 16, 2, bad)


def test_qat_out_of_range_is_rejected() -> None:
    from codec.errors import ConfigError

    with pytest.raises(ConfigError, match="qat 1.5"):
        TrainConfig(qat=1.5).validate()

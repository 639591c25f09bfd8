"""The trainer's full-image passes in pixel chunks (codec/chunked.py, issue 10 item 5): the same
losses, prefix cache and fits as one pass over the image, and the memory plan that chunks them keeps
a 2000x2000 encode at the default rate under this machine's cap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codec.batched import fit_many
from codec.chunked import filled, full_mse, full_stage_loss, spans, stage_sse
from codec.config import TrainConfig, apply_overrides, preset
from codec.coords import grid
from codec.fit_core import image_tensor, loss_to_psnr, stage_loss
from codec.memory import EVAL_CHUNK, GIB, MemoryTooLarge, estimate, fit_memory
from codec.models import build_model
from codec.rate import plan_encode
from codec.train import fit

SPINR = {"joint": 0.5, "pe_frequencies": 4}
CHUNKS = (1000, 777, 4095)


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[40:232:2, 120:376:2])  # 128 x 96: 12,288 pixels


def trained(crop: np.ndarray, eval_pixels: int = 0, seed: int = 0) -> tuple[torch.nn.Module, list[float]]:
    torch.manual_seed(seed)
    model = build_model("spinr", 24, 3, SPINR)
    result = fit(
        model, crop, TrainConfig(steps=60, lr=2e-3, device="cpu", eval_pixels=eval_pixels, seed=seed)
    )
    return model.eval(), result.stage_psnr


def test_spans_cover_every_pixel_once() -> None:
    assert spans(10, 0) == [slice(0, 10)] and spans(10, 10) == [slice(0, 10)] == spans(10, 11)
    assert spans(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    for pixels, chunk in ((12_288, 1000), (7, 1), (65_537, 65_536)):
        rows = np.concatenate([np.arange(pixels)[s] for s in spans(pixels, chunk)])
        assert np.array_equal(rows, np.arange(pixels))


def test_chunked_losses_equal_the_one_pass_losses(crop: np.ndarray) -> None:
    model, _ = trained(crop)
    h, w = crop.shape[:2]
    x, y = torch.from_numpy(grid(w, h)), image_tensor(crop, torch.device("cpu"))
    kinds = set()
    for stage in model.stages():  # the first stage, cached-prefix stages, and the joint phase's exits
        with torch.no_grad():
            cached = None if stage.prefix is None else stage.prefix(x)
            one = float(stage_loss(model, stage, x, y, cached))
            exact = stage_sse(model, stage, x, y, cached)  # the whole image, summed in float64
        kinds.add((cached is not None, bool(stage.exits)))
        # No chunks: the one-pass expression itself, bit for bit.
        assert full_stage_loss(model, stage, x, y, cached, 0) == one
        assert full_stage_loss(model, stage, x, y, cached, x.shape[0]) == one
        reference = float(exact[0] / y.numel()) if not stage.exits else None
        for chunk in CHUNKS:
            loss = full_stage_loss(model, stage, x, y, cached, chunk)
            # float32 summation of the one pass against float64 of the chunks: 1e-7 relative at most.
            assert loss == pytest.approx(one, rel=1e-6), (stage.name, chunk)
            assert loss_to_psnr(loss) == pytest.approx(loss_to_psnr(one), rel=1e-9, abs=1e-6)
            if reference is not None:
                assert loss == pytest.approx(reference, rel=1e-9), (stage.name, chunk)
    assert kinds == {(False, False), (True, False), (False, True)}


def test_chunked_prefix_cache_and_prefix_psnr_equal_the_one_pass(crop: np.ndarray) -> None:
    model, _ = trained(crop)
    h, w = crop.shape[:2]
    x, y = torch.from_numpy(grid(w, h)), image_tensor(crop, torch.device("cpu"))
    stage = model.stages()[2]
    assert stage.prefix is not None
    prefix = stage.prefix
    with torch.no_grad():
        one = prefix(x)
    for chunk in CHUNKS:
        cache = filled(lambda rows: prefix(x[rows]), x.shape[0], chunk)
        assert cache.shape == one.shape and cache.dtype == one.dtype
        assert torch.allclose(cache, one, rtol=0, atol=1e-6)
    for depth in range(model.depths):
        with torch.no_grad():
            whole = float(torch.mean((model(x, depth) - y) ** 2))
        for chunk in CHUNKS:
            part = full_mse(lambda c: model(c, depth), x, y, chunk)  # noqa: B023
            assert loss_to_psnr(part) == pytest.approx(loss_to_psnr(whole), rel=1e-9, abs=1e-6)


def test_a_fit_with_chunked_passes_is_the_fit_without(crop: np.ndarray) -> None:
    _, one = trained(crop)
    model, chunked = trained(crop, eval_pixels=1000)
    assert len(one) == len(chunked) == model.depths
    # The same steps, the same kept weights: PSNRs equal to the float rounding of the loss sums.
    assert chunked == pytest.approx(one, rel=1e-9, abs=1e-6)


def test_the_batched_loop_chunks_its_passes_alike(crop: np.ndarray) -> None:
    runs = []
    for eval_pixels in (0, 1000):
        models = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            models.append(build_model("spinr", 16, 2, SPINR))
        cfgs = [TrainConfig(steps=30, lr=2e-3, device="cpu", eval_pixels=eval_pixels, seed=s) for s in (0, 1)]
        results = fit_many(models, [crop, crop[::-1].copy()], cfgs)
        runs.append([r.stage_psnr for r in results])  # type: ignore[union-attr]
    for one, chunked in zip(*runs, strict=True):
        assert all(math.isfinite(p) for p in one)
        assert chunked == pytest.approx(one, rel=1e-9, abs=1e-6)


def test_the_plan_chunks_a_2000x2000_encode_under_the_cap() -> None:
    cap = 12 * GIB  # half of this 24 GiB machine: the default limit
    cfg = apply_overrides(preset("standard"), {"max_memory": cap / GIB})
    rate = plan_encode(cfg, 2000, 2000)
    assert rate.memory is not None and rate.memory.total <= cap
    assert rate.cfg.train.eval_pixels == EVAL_CHUNK and rate.cfg.train.batch_pixels >= 65_536
    assert any("in chunks of 65536 pixels" in n for n in rate.notes)
    # Unchunked, its full-image passes alone were ~25 GiB (the encode was refused at 76.5 GiB).
    whole = estimate(rate.cfg.replace(**{"train.eval_pixels": 0}), 2000 * 2000)
    assert whole.full_image > 3 * rate.memory.full_image and whole.full_image > 20 * GIB
    # An image that fits is planned as before: no chunks, no batches.
    small = plan_encode(cfg, 1024, 768)
    assert small.cfg.train.eval_pixels == 0 and small.cfg.train.batch_pixels == 0 and small.notes == []


def test_a_tighter_cap_drops_the_prefix_cache_before_refusing() -> None:
    cfg = plan_encode(apply_overrides(preset("standard"), {"max_memory": 1000.0}), 2000, 2000).cfg
    fitted = fit_memory(cfg.replace(**{"train.max_memory": 0.0}), 2000 * 2000, 6 * GIB)
    assert not fitted.train.prefix_cache and fitted.train.eval_pixels == EVAL_CHUNK
    assert estimate(fitted, 2000 * 2000).total <= 6 * GIB
    with pytest.raises(
        MemoryTooLarge, match=r"full-image passes in chunks of 65536 pixels: about .*; the limit is 1\.00 GiB"
    ):
        fit_memory(cfg, 2000 * 2000, GIB)

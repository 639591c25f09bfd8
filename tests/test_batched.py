"""Batched fitting (codec/batched.py) against single fits of the plain loop (codec/train.py), the prefix
cache, and the fast loop's options. Small nets on 64 x 48 crops: seconds each."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from codec.batched import batch_problem, fit_many
from codec.config import QuantConfig, TrainConfig
from codec.errors import Cancelled, ConfigError, TrainingDiverged
from codec.models import build_model
from codec.train import FitResult, TrainProgress, fit


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    """Three different photographs, one size (64 wide, 48 tall)."""
    from skimage import data

    return [
        np.ascontiguousarray(img[100:148, 180:244])
        for img in (data.astronaut(), data.coffee(), data.chelsea())
    ]


def build(name: str, width: int, depth: int, options: dict, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # as encode_image does: the seed draws the initial weights
    model = build_model(name, width, depth, options)
    model.set_image_size(64, 48)
    return model


def single_and_batched(
    crops: list[np.ndarray], name: str, width: int, depth: int, options: dict, train: dict, kernels: str
) -> tuple[list, list]:
    quant = QuantConfig() if train.get("qat") else None
    seeds = [0, 1, 2]
    single = []
    for seed, img in zip(seeds, crops, strict=True):
        m = build(name, width, depth, options, seed)
        events: list[TrainProgress] = []
        cfg = TrainConfig(steps=60, device="cpu", seed=seed, loop="plain", **train)
        single.append((m, fit(m, img, cfg, progress=events.append, quant=quant), events))
    models = [build(name, width, depth, options, s) for s in seeds]
    events_b: list[list[TrainProgress]] = [[] for _ in seeds]
    cfgs = [
        TrainConfig(steps=60, device="cpu", seed=s, loop="fast", kernels=kernels, sync_every=7, **train)
        for s in seeds
    ]
    results = fit_many(models, crops, cfgs, progress=[e.append for e in events_b], quant=quant)
    batched = [(m, r, e) for m, r, e in zip(models, results, events_b, strict=True)]
    return single, batched


CASES = [
    ("siren", 16, 2, {}, {}),
    ("spinr", 16, 3, {}, {}),
    ("spinr", 16, 3, {"joint": 0.5}, {}),  # the joint phase trains every layer on every prefix
    ("spinr", 16, 3, {"head": "shared", "residual": False}, {"batch_pixels": 500}),
    ("spinr", 16, 2, {}, {"qat": 0.3}),  # quantization-aware steps and quantize-on-freeze
    ("siren", 16, 2, {}, {"lr": 0.9}),  # diverges: restarts and warnings per model
    ("fourier", 16, 2, {"mapping_size": 16}, {}),
    ("mfn", 16, 2, {}, {}),
    ("diner", 16, 2, {}, {}),
]


@pytest.mark.parametrize(("name", "width", "depth", "options", "train"), CASES)
def test_a_batch_trains_each_model_as_the_plain_loop_trains_it_alone(
    crops: list[np.ndarray], name: str, width: int, depth: int, options: dict, train: dict
) -> None:
    # With the plain kernels the batched arithmetic is the plain loop's, op for op; the tolerance
    # is there for BLAS kernels that may round a batched matmul differently.
    single, batched = single_and_batched(crops, name, width, depth, options, train, "plain")
    for (m0, r0, e0), (m1, r1, e1) in zip(single, batched, strict=True):
        assert isinstance(r1, FitResult)
        for (k, a), b in zip(m0.state_dict().items(), m1.state_dict().values(), strict=True):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), k
        np.testing.assert_allclose(r1.loss_history, r0.loss_history, rtol=1e-4)
        np.testing.assert_allclose(r1.stage_psnr, r0.stage_psnr, atol=1e-3)
        assert r1.warnings == r0.warnings
        assert r1.steps_run == r0.steps_run == 60
        assert [(e.event, e.stage, e.step) for e in e1] == [(e.event, e.stage, e.step) for e in e0]
        np.testing.assert_allclose([e.loss for e in e1], [e.loss for e in e0], rtol=1e-4)
    if train.get("lr") == 0.9:
        assert any("restored the best weights" in w for _, r, _ in batched for w in r.warnings)


@pytest.mark.parametrize(
    ("name", "width", "depth", "options", "train"), [c for c in CASES if "lr" not in c[4]]
)
def test_fused_kernels_change_a_fit_by_rounding_only(
    crops: list[np.ndarray], name: str, width: int, depth: int, options: dict, train: dict
) -> None:
    single, batched = single_and_batched(crops, name, width, depth, options, train, "fused")
    for (_, r0, _), (_, r1, _) in zip(single, batched, strict=True):
        assert isinstance(r1, FitResult)
        if train.get("qat"):
            # Quantization turns rounding into a code or a sensitivity-allocated step that differs
            # (format v2's steps come from noise probes of the weights): the same start, then close.
            np.testing.assert_allclose(r1.loss_history[:20], r0.loss_history[:20], rtol=1e-3)
            np.testing.assert_allclose(r1.stage_psnr, r0.stage_psnr, atol=0.4)
            continue
        np.testing.assert_allclose(r1.stage_psnr, r0.stage_psnr, atol=0.01)
        np.testing.assert_allclose(r1.loss_history, r0.loss_history, rtol=1e-3)


def test_wire_batches_within_its_own_rounding_sensitivity(crops: list[np.ndarray]) -> None:
    # WIRE's complex Gabor layers amplify a rounding difference (2e-7 at step 4) to ~1e-2 in 60 steps
    # (batched or not): compare what it reaches, not the weights.
    single, batched = single_and_batched(crops, "wire", 16, 2, {}, {}, "plain")
    for (_, r0, _), (_, r1, _) in zip(single, batched, strict=True):
        assert isinstance(r1, FitResult)
        assert abs(r1.stage_psnr[-1] - r0.stage_psnr[-1]) < 0.1
        np.testing.assert_allclose(r1.loss_history[:4], r0.loss_history[:4], rtol=1e-6)


def test_the_fast_loop_of_one_model_is_the_batched_loop(crops: list[np.ndarray]) -> None:
    """``fit`` with the fast loop and a batch of three give each model the same weights."""
    alone = []
    for seed, img in enumerate(crops):
        m = build("spinr", 16, 3, {"joint": 0.4}, seed)
        fit(m, img, TrainConfig(steps=50, device="cpu", seed=seed, loop="fast"))
        alone.append(m)
    models = [build("spinr", 16, 3, {"joint": 0.4}, s) for s in range(3)]
    fit_many(models, crops, [TrainConfig(steps=50, device="cpu", seed=s, loop="fast") for s in range(3)])
    for a, b in zip(alone, models, strict=True):
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
            assert torch.allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loop", ["plain", "fast"])
@pytest.mark.parametrize("train", [{}, {"batch_pixels": 700}])
def test_the_prefix_cache_leaves_every_loss_unchanged(
    crops: list[np.ndarray], loop: str, train: dict
) -> None:
    """SPINR's frozen layers (and FourierNet's encoding) computed once per stage: the same losses."""
    for name, options in (("spinr", {}), ("spinr", {"head": "shared", "residual": False}), ("fourier", {})):
        histories = []
        for cache in (True, False):
            m = build(name, 16, 3, options, 0)
            cfg = TrainConfig(steps=48, device="cpu", loop=loop, prefix_cache=cache, **train)
            histories.append(fit(m, crops[0], cfg).loss_history)
        assert len(histories[0]) == 48
        np.testing.assert_array_equal(histories[0], histories[1])  # bit for bit


def test_spinr_stages_offer_their_frozen_prefix_only_without_dropout() -> None:
    x = torch.rand(40, 2) * 2 - 1
    m = build("spinr", 8, 3, {}, 0).eval()
    stages = m.stages()
    assert stages[0].prefix is None  # stage 0 trains the input layer
    for k, stage in enumerate(stages[1:], start=1):
        assert stage.prefix is not None and stage.rest is not None
        with torch.no_grad():
            assert torch.equal(stage.rest(stage.prefix(x)), m(x, k))
    assert all(s.prefix is None for s in build("spinr", 8, 3, {"dropout": 0.1}, 0).stages())


def test_one_models_divergence_leaves_the_others_alone(crops: list[np.ndarray]) -> None:
    models = [build("siren", 16, 2, {}, s) for s in range(3)]
    with torch.no_grad():
        models[1].input.linear.weight.fill_(float("nan"))  # never a finite loss
    cfgs = [TrainConfig(steps=40, device="cpu", seed=s, loop="fast", lr=1e-3) for s in range(3)]
    results = fit_many(models, crops, cfgs)
    assert isinstance(results[1], TrainingDiverged)
    assert "no finite loss" in str(results[1])
    for r in (results[0], results[2]):
        assert isinstance(r, FitResult) and r.stage_psnr[-1] > 12.0 and not r.warnings
    # Alone, the same model raises the error.
    bad = build("siren", 16, 2, {}, 1)
    with torch.no_grad():
        bad.input.linear.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged):
        fit(bad, crops[1], TrainConfig(steps=40, device="cpu", loop="fast"))


def test_cancelling_stops_the_fast_loop(crops: list[np.ndarray]) -> None:
    ev = threading.Event()

    def progress(p: TrainProgress) -> None:
        if p.step >= 20:
            ev.set()

    cfg = TrainConfig(steps=1000, device="cpu", loop="fast", sync_every=5)
    with pytest.raises(Cancelled):
        fit(build("siren", 8, 1, {}, 0), crops[0], cfg, progress, ev, 1)


def test_a_model_cancelled_on_its_own_stops_and_the_others_train_on(crops: list[np.ndarray]) -> None:
    ev = threading.Event()

    def progress(p: TrainProgress) -> None:
        if p.step >= 10:
            ev.set()

    models = [build("spinr", 8, 2, {}, s) for s in range(3)]
    cfgs = [TrainConfig(steps=45, device="cpu", seed=s, loop="fast", sync_every=4) for s in range(3)]
    results = fit_many(
        models, crops, cfgs, progress=[None, progress, None], cancel=[None, ev, None], progress_every=1
    )
    assert isinstance(results[1], Cancelled)
    for k in (0, 2):  # trained on as they would alone
        r = results[k]
        assert isinstance(r, FitResult) and len(r.loss_history) == 45
        alone = fit(build("spinr", 8, 2, {}, k), crops[k], cfgs[k])
        np.testing.assert_allclose(r.loss_history, alone.loss_history, rtol=1e-5)
    # Every model cancelled: the remaining stages are skipped, each result says why.
    ev2 = threading.Event()
    ev2.set()
    results = fit_many(models[:2], crops[:2], cfgs[:2], cancel=[ev2, ev2])
    assert all(isinstance(r, Cancelled) for r in results)


def test_what_cannot_share_a_batch_is_named(crops: list[np.ndarray]) -> None:
    cfgs = [TrainConfig(steps=5, device="cpu", loop="fast", seed=s) for s in range(2)]
    models = [build("siren", 8, 1, {}, s) for s in range(2)]
    assert batch_problem(models, crops[:2], cfgs) == ""
    assert "size" in batch_problem(models, [crops[0], crops[1][:40]], cfgs)
    assert "differ" in batch_problem([models[0], build("siren", 8, 2, {}, 0)], crops[:2], cfgs)
    other = [cfgs[0], TrainConfig(steps=6, device="cpu", loop="fast", seed=1)]
    assert "more than the seed" in batch_problem(models, crops[:2], other)
    dropout = [build("spinr", 8, 1, {"dropout": 0.1}, s) for s in range(2)]
    assert "dropout" in batch_problem(dropout, crops[:2], cfgs)
    with pytest.raises(ConfigError, match="cannot fit these models as one batch: images differ"):
        fit_many(models, [crops[0], crops[1][:40]], cfgs)
    # FourierNet's B seed differs from fit to fit: each model keeps its own B.
    fourier = [build("fourier", 8, 1, {"mapping_size": 8, "b_seed": s}, s) for s in range(2)]
    assert batch_problem(fourier, crops[:2], cfgs) == ""


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("loop", "turbo", "loop 'turbo' is not one of plain, fast"),
        ("precision", "fp8", "precision 'fp8' is not one of fp32, bf16"),
        ("kernels", "magic", "kernels 'magic' is not one of fused, plain"),
        ("sync_every", 0, "sync_every 0 is out of range"),
    ],
)
def test_bad_loop_options_are_refused_by_name(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value}).validate()  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="need the fast loop"):
        TrainConfig(loop="plain", precision="bf16").validate()


def test_bf16_autocast_trains_to_nearly_the_same_picture(crops: list[np.ndarray]) -> None:
    psnr = {}
    for precision in ("fp32", "bf16"):
        m = build("siren", 32, 2, {}, 0)
        cfg = TrainConfig(steps=150, lr=1e-3, device="cpu", loop="fast", precision=precision)
        psnr[precision] = fit(m, crops[0], cfg).stage_psnr[-1]
    assert psnr["fp32"] > 22.0
    assert abs(psnr["bf16"] - psnr["fp32"]) < 1.5, psnr


@pytest.mark.slow
def test_compiled_loop_matches_the_eager_one(crops: list[np.ndarray]) -> None:
    results = []
    for compiled in (False, True):
        m = build("spinr", 16, 2, {}, 0)
        cfg = TrainConfig(steps=60, device="cpu", loop="fast", compile=compiled)
        results.append(fit(m, crops[0], cfg))
    np.testing.assert_allclose(results[1].stage_psnr, results[0].stage_psnr, atol=0.05)


def test_threads_never_oversubscribe_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from codec import threads

    monkeypatch.setattr(threads, "cores", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.threads_per_worker(1) == 8
    assert threads.threads_per_worker(3) == 2
    assert threads.threads_per_worker(16) == 1
    assert threads.threads_per_worker(2, requested=1) == 1
    assert threads.threads_per_worker(2, requested=6) == 4  # capped at the share
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # asked for fewer: granted, within the share
    assert threads.threads_per_worker(1) == 3
    assert threads.threads_per_worker(4) == 2
    assert threads.threads_per_worker(1, requested=5) == 5
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")  # not a number: ignored
    assert threads.threads_per_worker(2) == 4


def torch_threads(job: object) -> tuple[int, int]:
    """A pool job: the torch threads and the pid of the process that ran it."""
    import os

    return torch.get_num_threads(), os.getpid()


@pytest.mark.parametrize(("workers", "requested"), [(2, 64), (1, 0)])
def test_the_experiments_pool_sizes_each_workers_threads_to_its_share(workers: int, requested: int) -> None:
    from codec.threads import cores, threads_per_worker
    from experiments.pool import JobPool

    before = torch.get_num_threads()
    try:
        pool = JobPool(workers=workers, quiet=True, threads=requested)
        out = pool.map(torch_threads, list(range(2 * workers)), "threads")
        per_process = dict((pid, n) for n, pid in out)
        assert all(n == threads_per_worker(workers, requested) for n in per_process.values()), per_process
        assert all(n <= max(1, cores() // workers) for n in per_process.values())
        assert len(per_process) * max(per_process.values()) <= max(cores(), len(per_process))
    finally:
        torch.set_num_threads(before)

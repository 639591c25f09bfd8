"""Residual coding from a θ0: the header names it, the units carry θ − θ0, a decoder adds θ0 back
(numpy decoder and torch model agree), every prefix decodes, a lost unit is concealed with θ0's, and a
decoder without the θ0 says which one it lacks (codec/meta/residual.py, codec/decoder.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from client.cli import main
from codec.bitstream import Bitstream, load_bitstream, write_file
from codec.config import preset
from codec.decoder import ProgressiveDecoder
from codec.encode import encode_image
from codec.errors import ConfigError, InitError
from codec.meta import store
from codec.meta.initfile import InitFile, write_init
from codec.meta.reptile import snapshot
from codec.metrics import psnr
from codec.models.base import build_model, received_model


def theta0(width: int = 16, hidden: int = 2, seed: int = 7) -> InitFile:
    import torch

    torch.manual_seed(seed)
    return snapshot(build_model("spinr", width, hidden, {}))


@pytest.fixture
def init_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, InitFile]:
    folder = tmp_path / "inits"
    folder.mkdir()
    init = theta0()
    write_init(folder / "t.spnri", init)
    monkeypatch.setenv(store.ENV_PATH, str(folder))
    monkeypatch.setattr(store, "_registered", {})
    return folder, init


def encode_meta(image: np.ndarray, target: int | None = None):
    cfg = preset("tiny")
    cfg.train.init = "meta"
    cfg.rate.bytes = target
    return encode_image(image, cfg)


@pytest.mark.parametrize("target", [None, 900])
def test_residual_stream_decodes_theta0_plus_delta(init_dir, photo_crop, target) -> None:
    _, init = init_dir
    r = encode_meta(photo_crop, target)
    bs = r.bitstream
    assert bs.header.init == init.hash
    if target is not None:
        assert 0.9 * target <= r.bytes <= target
    back, _ = load_bitstream(bs.to_bytes())
    assert back.header.init == init.hash
    dec = ProgressiveDecoder.from_bitstream(back)
    # The decoder holds θ0 + dequantized residual, exactly, in float32.
    for u, unit in back.units.items():
        for t in unit.tensors:
            want = init.weights[u][t.name] + t.dequantize()
            assert dec.params[u][t.name].dtype == np.float32 and np.array_equal(dec.params[u][t.name], want)
    # Every prefix decodes, each to the PSNR the header announces.
    for depth in range(1, dec.depths + 1):
        got = psnr(dec.decode(depth=depth).rgb, photo_crop)
        assert got == pytest.approx(r.stage_psnr[depth - 1], abs=1e-6)
    assert r.psnr > 15
    # The torch model a receiver rebuilds holds the same weights.
    model = received_model(back)
    for u, (_, tensors) in enumerate(model.units()):
        for name, t in tensors:
            assert np.array_equal(t.detach().numpy(), dec.params[u][name])


def test_residuals_are_smaller_than_weights(init_dir, photo_crop) -> None:
    _, init = init_dir
    r = encode_meta(photo_crop)
    codes = np.concatenate([np.abs(t.codes).ravel() for u in r.bitstream.units.values() for t in u.tensors])
    assert codes.size > 0 and np.mean(codes) < 64


def test_lost_unit_concealment_with_theta0(init_dir, photo_crop) -> None:
    r = encode_meta(photo_crop)
    bs = r.bitstream
    lost = Bitstream(bs.header, {u: v for u, v in bs.units.items() if u != 1}, bs.stream_id)
    out = {}
    for conceal in ("prefix", "skip", "theta0"):
        dec = ProgressiveDecoder.from_bitstream(lost, conceal=conceal)
        d = dec.decode()
        out[conceal] = (d.depth, psnr(d.rgb, photo_crop))
    assert out["prefix"][0] == 1 and out["skip"][0] == 3 and out["theta0"][0] == 3
    assert (
        out["skip"][1] == out["theta0"][1]
    )  # on a residual stream skip takes θ0's unit too (measured better)
    assert all(np.isfinite(p) for _, p in out.values())


def test_unknown_theta0_is_named(init_dir, photo_crop, tmp_path, monkeypatch, capsys) -> None:
    folder, init = init_dir
    r = encode_meta(photo_crop)
    path = tmp_path / "x.spnr"
    write_file(path, r.bitstream)
    monkeypatch.setenv(store.ENV_PATH, str(tmp_path / "elsewhere"))
    monkeypatch.setattr(store, "_registered", {})
    bs, _ = load_bitstream(path.read_bytes())  # parsing needs no θ0
    with pytest.raises(
        InitError, match=rf"coded from θ0 {init.hash.hex()}, which this decoder does not have"
    ):
        ProgressiveDecoder.from_bitstream(bs)
    assert main(["decode", str(path), "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert init.hash.hex() in err and "Traceback" not in err


def test_fixed_network_without_a_theta0_is_refused(init_dir, photo_crop) -> None:
    cfg = preset("tiny")
    cfg.train.init = "meta"
    cfg.model.width = 12
    with pytest.raises(ConfigError, match=r"--init meta: no θ0 ships for spinr 12 wide x 2 hidden"):
        encode_image(photo_crop, cfg)
    cfg.model.name, cfg.model.options = "mfn", {}
    with pytest.raises(
        ConfigError, match=r"init applies to the spinr and siren model only|--init meta applies"
    ):
        from codec.config import apply_overrides

        apply_overrides(preset("tiny"), {"model": "mfn", "init": "meta"})


def test_batched_encodes_from_theta0(init_dir, photo_crop) -> None:
    from codec.encode import encode_images

    _, init = init_dir
    cfgs = []
    for seed in (0, 1):
        cfg = preset("tiny")
        cfg.train.init, cfg.train.seed, cfg.train.steps = "meta", seed, 30
        cfgs.append(cfg)
    results = encode_images([photo_crop, photo_crop], cfgs)
    for r in results:
        assert not isinstance(r, Exception)
        assert r.bitstream.header.init == init.hash
        dec = ProgressiveDecoder.from_bitstream(load_bitstream(r.bitstream.to_bytes())[0])
        assert psnr(dec.decode().rgb, photo_crop) == pytest.approx(r.psnr, abs=1e-6)


def test_plan_estimates_memory_after_snapping_to_theta0() -> None:
    """The size model plans a wider network at 1 bpp; ``--init meta`` trains the shipped θ0's (16 x 3,
    L = 10), and the memory estimate (the encoder's and the server's) is that network's."""
    from codec.memory import estimate
    from codec.rate import plan_encode
    from server.plan import plan_job

    cfg = preset("standard").replace(**{"rate.bpp": 1.0, "train.init": "meta"})
    cfg.model.width = cfg.model.hidden_layers = None
    random = plan_encode(cfg.replace(**{"train.init": "random"}), 192, 128)
    rate = plan_encode(cfg, 192, 128)
    assert random.cfg.model.width is not None and random.cfg.model.width > 16
    m = rate.cfg.model
    assert (m.width, m.hidden_layers, m.options["pe_frequencies"]) == (16, 3, 10)
    assert rate.init is not None and rate.init.arch["width"] == 16
    assert rate.memory is not None and random.memory is not None
    assert rate.memory.total == estimate(rate.cfg, 192 * 128).total
    assert rate.memory.total < random.memory.total
    assert any("nearest shipped θ0" in n for n in rate.notes) and rate.init_notes
    _, plan = plan_job(cfg, {"init": "meta"}, 192, 128, 1 << 30, None)
    assert plan["width"] == 16 and plan["memory_bytes"] == int(rate.memory.total)


@pytest.mark.parametrize("loop", ["plain", "fast"])
def test_residual_penalty_keeps_the_fit_near_theta0(init_dir, photo_crop, loop) -> None:
    """Rate-aware fine-tuning: with a residual penalty the fit moves less from θ0 (both loops), and
    the loss it reports is still the plain MSE's."""
    import torch

    from codec.batched import fit_many
    from codec.config import TrainConfig
    from codec.meta.reptile import load_weights

    _, init = init_dir
    drift = {}
    for pen in (0.0, 3000.0):
        torch.manual_seed(0)
        model = build_model("spinr", 16, 2, {})
        load_weights(model, init)
        model.from_init = True
        cfg = TrainConfig(steps=40, lr=3e-3, device="cpu", loop=loop, init="meta", residual_penalty=pen)
        (result,) = fit_many([model], [photo_crop], [cfg]) if loop == "fast" else [None]
        if loop == "plain":
            from codec.train import fit

            result = fit(model, photo_crop, cfg)
        assert not isinstance(result, Exception) and np.isfinite(result.stage_psnr[-1])
        now = [t.detach().numpy() for _, ts in model.units() for _, t in ts]
        base = [init.weights[u][n] for u, (_, ts) in enumerate(model.units()) for n, _ in ts]
        drift[pen] = float(
            np.mean(np.concatenate([np.abs(a - b).ravel() for a, b in zip(now, base, strict=True)]))
        )
    assert 0 < drift[3000.0] < 0.7 * drift[0.0]


def test_residual_steps_may_round_a_tensor_to_theta0() -> None:
    """Residuals may take steps up to RESIDUAL_MAX_STEP_STD σ (nearly every code 0: θ0's weights),
    weights only MAX_STEP_STD σ."""
    from codec.stepalloc import MAX_STEP_STD, RESIDUAL_MAX_STEP_STD, steps_for

    a = np.random.default_rng(0).normal(0, 0.01, 500).astype(np.float32)
    (w,) = steps_for([a], [1.0], 1e3)
    (r,) = steps_for([a], [1.0], 1e3, RESIDUAL_MAX_STEP_STD)
    assert w == pytest.approx(MAX_STEP_STD * float(np.std(a)), rel=0.02)
    assert r == pytest.approx(RESIDUAL_MAX_STEP_STD * float(np.std(a)), rel=0.02)
    assert np.mean(np.rint(a / r) == 0) > 0.95


def test_encode_at_rates_is_one_encode_per_rate(photo_crop) -> None:
    """One fit quantized to several rates gives, per rate, the stream encode_image gives (same units,
    byte for byte), and a rate the network cannot reach comes back as its error."""
    from codec.encode import encode_at_rates

    cfg = preset("tiny").replace(**{"train.steps": 40})
    assert cfg.model.width is not None
    out = encode_at_rates(photo_crop, cfg, [3.0, 1.5, 0.001])
    assert isinstance(out[2], ConfigError)
    for bpp, r in zip([3.0, 1.5], out, strict=False):
        assert not isinstance(r, ConfigError)
        alone = encode_image(photo_crop, cfg.replace(**{"rate.bpp": bpp}))
        assert r.bytes == alone.bytes and r.psnr == pytest.approx(alone.psnr, abs=1e-9)
        for u, unit in alone.bitstream.units.items():
            for a, b in zip(r.bitstream.units[u].tensors, unit.tensors, strict=True):
                assert a.step == b.step and np.array_equal(a.codes, b.codes)


def test_residual_penalty_needs_meta_init() -> None:
    from codec.config import apply_overrides

    with pytest.raises(ConfigError, match=r"residual_penalty 30.0 applies to init=meta only"):
        apply_overrides(preset("tiny"), {"residual_penalty": 30}).validate()
    cfg = apply_overrides(preset("tiny"), {"residual_penalty": 30, "init": "meta"})
    assert cfg.validate().train.residual_penalty == 30.0


@pytest.mark.parametrize("carried", [2e-3, 5.0, "x", None])
def test_encode_fine_tunes_at_the_rate_theta0_carries(init_dir, carried) -> None:
    from codec.meta.residual import choose

    folder, init = init_dir
    if carried is not None:
        init.meta["finetune"] = {"lr": carried}
    write_init(folder / "t.spnri", init)
    cfg = preset("tiny")
    cfg.train.init = "meta"
    cfg.model.width, cfg.model.hidden_layers = 16, 2
    chosen, used, _ = choose(cfg, False, 0)
    assert used.hash == init.hash  # the rate is encoder-side: θ0's identity does not change with it
    # Only a number within FINETUNE_LR_RANGE is taken; anything else leaves the model's default.
    assert chosen.train.lr == (2e-3 if carried == 2e-3 else None)
    cfg.train.lr = 4e-4
    assert choose(cfg, False, 0)[0].train.lr == 4e-4  # the user's --lr wins


@pytest.mark.parametrize("carried", [30.0, 0, -1.0, 2e6, True, "x", None])
def test_encode_fine_tunes_with_the_penalty_theta0_carries(init_dir, carried) -> None:
    from codec.meta.residual import choose

    folder, init = init_dir
    if carried is not None:
        init.meta["finetune"] = {"lr": 2e-3, "residual_penalty": carried}
    write_init(folder / "t.spnri", init)
    cfg = preset("tiny")
    cfg.train.init = "meta"
    cfg.model.width, cfg.model.hidden_layers = 16, 2
    assert cfg.train.residual_penalty is None  # unset: θ0's
    low = store.param_count(init) // 2  # bytes: 4 coded bits per parameter, θ0's λ in full
    chosen, used, _ = choose(cfg, False, 0, low)
    assert used.hash == init.hash  # encoder-side, like the rate
    # Only a number within 0..1e6 is taken (a bool is not a number here); anything else is no penalty.
    assert chosen.train.residual_penalty == (30.0 if carried == 30.0 else 0.0)
    assert chosen.train.penalty == chosen.train.residual_penalty
    cfg.train.residual_penalty = 0.0
    assert choose(cfg, False, 0, low)[0].train.residual_penalty == 0.0  # the user's 0 turns it off
    cfg.train.residual_penalty = 12.0
    assert choose(cfg, False, 0, 10 * low)[0].train.residual_penalty == 12.0  # and the user's λ is kept


def test_theta0s_penalty_fades_as_the_bits_per_parameter_grow(init_dir) -> None:
    from codec.meta.residual import PENALTY_FULL_BITS, PENALTY_ZERO_BITS, finetune_penalty

    _, init = init_dir
    init.meta["finetune"] = {"lr": 2e-3, "residual_penalty": 30.0}
    mid = (PENALTY_FULL_BITS + PENALTY_ZERO_BITS) / 2
    got = [finetune_penalty(init, b) for b in (1.0, PENALTY_FULL_BITS, mid, PENALTY_ZERO_BITS, 12.0)]
    assert got == [30.0, 30.0, 15.0, 0.0, 0.0]
    assert finetune_penalty(init) == 30.0  # no rate: the file's own


def test_rates_whose_penalties_differ_get_a_fit_each(init_dir, photo_crop) -> None:
    from codec.encode import _plan, encode_at_rates

    folder, init = init_dir
    init.meta["finetune"] = {"lr": 2e-3, "residual_penalty": 30.0}
    write_init(folder / "t.spnri", init)
    cfg = preset("tiny").replace(**{"train.steps": 40, "train.init": "meta"})
    cfg.model.width, cfg.model.hidden_layers = 16, 2
    pixels = photo_crop.shape[0] * photo_crop.shape[1]
    bpps = [b * store.param_count(init) / pixels for b in (4.0, 9.0)]  # coded bits per parameter
    out = encode_at_rates(photo_crop, cfg, bpps)
    for bpp, r in zip(bpps, out, strict=True):
        assert not isinstance(r, ConfigError), r
        alone = encode_image(photo_crop, cfg.replace(**{"rate.bpp": bpp}))
        assert r.bytes == alone.bytes and r.psnr == pytest.approx(alone.psnr, abs=1e-9)
    # The plans behind them: θ0's λ in full at 4 bits per parameter, none at 9.
    planned = [_plan(photo_crop, cfg.replace(**{"rate.bpp": b}))[0].train.residual_penalty for b in bpps]
    assert planned == [30.0, 0.0]


def test_an_unset_penalty_is_none_for_a_random_init() -> None:
    cfg = preset("tiny").validate()
    assert cfg.train.residual_penalty is None and cfg.train.penalty == 0.0

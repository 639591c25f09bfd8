"""Rate control: the size model, the byte target, and sequential quantization that meets it exactly
(codec/sizemodel.py, codec/rate.py, codec/seqquant.py). Real encodes of small crops, checked to the byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from client.cli import main
from codec import sizemodel
from codec.bitstream import load_bitstream
from codec.config import DEFAULT_BPP, EncodeConfig, ModelSpec, TrainConfig, preset
from codec.encode import encode_image
from codec.errors import ConfigError
from codec.rate import WINDOW_LOW, plan_encode, target_bytes
from codec.seqquant import bisect_log, laplace_bits


def test_size_model_grows_the_network_with_the_rate() -> None:
    plans = [sizemodel.plan(192, 128, int(b * 192 * 128 / 8)) for b in (0.3, 0.6, 1.0, 2.0, 4.0)]
    widths = [p.width for p in plans]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    for p in plans:
        assert p.hidden_layers == sizemodel.HIDDEN
        # the parameters fit the target at BITS_PER_PARAM after the overheads, and one more neuron would not
        room = 8 * (p.target_bytes - sizemodel.overhead_of("spinr", 3)) / sizemodel.BITS_PER_PARAM
        assert p.params <= room < sizemodel.params_of("spinr", p.width + 1, 3, p.pe_frequencies)
    # rd-report: L = 12 at 192x128 and 1 bpp, +2 per doubling of the rate
    assert sizemodel.pe_frequencies_for(192, 128, 1.0) == 12
    assert sizemodel.pe_frequencies_for(192, 128, 2.0) == 14
    assert sizemodel.params_of("siren", 10, 3, 0) == 2 * 10 + 10 + 3 * 110 + 33


def test_size_model_refuses_a_target_too_small() -> None:
    with pytest.raises(
        ConfigError,
        match=r"a target of 100 bytes is too small .* 48x32 image: the smallest is about \d+ bytes",
    ):
        sizemodel.plan(48, 32, 100)
    with pytest.raises(ConfigError, match="give --width and --depth"):
        sizemodel.plan(48, 32, 1000, "fourier")


def test_which_target() -> None:
    auto = EncodeConfig()
    assert target_bytes(auto, 300, 200) == int(DEFAULT_BPP * 300 * 200 / 8)  # the default rate
    # a small image: the smallest network's bytes, still under the raw pixels
    assert target_bytes(auto, 48, 32) == max(
        int(DEFAULT_BPP * 48 * 32 / 8), sizemodel.smallest_bytes("spinr")
    )
    assert sizemodel.plan(48, 32, sizemodel.smallest_bytes("spinr")).width == sizemodel.MIN_WIDTH
    assert target_bytes(auto, 48, 32) < 48 * 32 * 3
    with pytest.raises(
        ConfigError, match="8x8 image is too small for a spinr stream smaller than its 192 raw bytes"
    ):
        target_bytes(auto, 8, 8)
    fixed = EncodeConfig(ModelSpec("spinr", 16, 2))
    assert target_bytes(fixed, 100, 80) is None  # a fixed network without a target: --bits
    assert target_bytes(fixed.replace(**{"rate.bpp": 2.0}), 100, 80) == 2000
    assert target_bytes(auto.replace(**{"rate.bytes": 777}), 100, 80) == 777
    with pytest.raises(ConfigError, match="not both"):
        auto.replace(**{"rate.bytes": 777, "rate.bpp": 1.0}).validate()
    # a width alone gets the size model's depth; a depth alone, the size model's width for it
    assert plan_encode(EncodeConfig(ModelSpec("spinr", 16, None)), 64, 48).cfg.model.hidden_layers == 3
    deep = plan_encode(EncodeConfig(ModelSpec("spinr", None, 5)), 64, 48)
    assert deep.cfg.model.hidden_layers == 5 and deep.sized is not None
    with pytest.raises(ConfigError, match="qat applies to a fixed network"):
        plan_encode(auto.replace(**{"train.qat": 0.2}), 64, 48)
    planned = plan_encode(auto.replace(**{"rate.bytes": 900}), 64, 48)
    assert planned.sized is not None and planned.cfg.model.width == planned.sized.width
    assert planned.cfg.model.options["pe_frequencies"] >= 1 and planned.cfg.model.options["joint"] == 0.8
    mine = plan_encode(auto.replace(**{"rate.bytes": 900}).replace(), 64, 48)
    assert mine.cfg.model.options["joint"] == 0.8
    chosen = auto.replace(**{"rate.bytes": 900})
    chosen.model.options["joint"] = 0.3  # what a user chose stays
    assert plan_encode(chosen, 64, 48).cfg.model.options["joint"] == 0.3
    assert planned.target_bytes == 900 and "size model" in planned.describe()
    again = plan_encode(planned.cfg, 64, 48)  # a planned config plans to itself
    assert (again.cfg.model, again.target_bytes) == (planned.cfg.model, 900)


def test_laplace_estimate_tracks_the_real_coder() -> None:
    from codec.entropy import encode_arrays

    rng = np.random.default_rng(0)
    for scale in (0.7, 3.0, 20.0):
        codes = np.rint(rng.laplace(0, scale, 3000)).astype(np.int32)
        real = len(encode_arrays([codes]))
        assert 0.9 < laplace_bits(codes) / 8 / real < 1.1
    assert laplace_bits(np.zeros(0, np.int32)) == 0.0


def test_bisect_log_finds_the_largest_size_within_the_budget_either_way_round() -> None:
    """The bisection both byte searches share: the size is monotone in the multiplier (either way);
    ``close`` stops it early; it never returns a size over the budget."""
    calls: list[float] = []

    def size(m: float) -> float:
        calls.append(m)
        return 1000.0 / m

    lo, hi = np.log(1e-9), np.log(1e2)
    m, n = bisect_log(size, 37.0, hi, lo, (1e2, 10.0), 60)
    assert n <= 37.0 and n == pytest.approx(37.0, rel=1e-9) and m == pytest.approx(1000 / 37, rel=1e-9)
    assert len(calls) == 60  # no early stop by default
    calls.clear()
    m2, n2 = bisect_log(size, 37.0, hi, lo, (1e2, 10.0), 60, close=0.5)
    assert 36.5 <= n2 <= 37.0 and len(calls) < 60
    assert bisect_log(size, 37.0, hi, lo, (1e2, 10.0), 0) == (1e2, 10.0)  # no tries: the best given
    # growing with m, the fitting end is the low one
    m3, n3 = bisect_log(lambda m: 10.0 * m, 37.0, lo, hi, (1e-9, 1e-8), 60)
    assert n3 <= 37.0 and m3 == pytest.approx(3.7, rel=1e-9)


@pytest.mark.parametrize(
    ("model", "target"),
    [("spinr", {"rate.bytes": 520}), ("siren", {"rate.bytes": 480}), ("spinr", {"rate.bpp": 4.0})],
)
def test_encode_meets_the_target_to_the_byte(photo_crop: np.ndarray, model: str, target: dict) -> None:
    """The whole file (header and every packet) is at most the target and at least 90 % of it; the
    size model picked the network; every prefix decodes."""
    img = photo_crop[:32, :48]
    cfg = EncodeConfig(ModelSpec(model), TrainConfig(steps=80, seq_steps=5, device="cpu")).replace(**target)
    result = encode_image(img, cfg)
    want = target.get("rate.bytes") or int(target["rate.bpp"] * 48 * 32 / 8)
    data = result.bitstream.to_bytes()
    assert result.bytes == len(data) and result.target_bytes == want
    assert WINDOW_LOW * want <= len(data) <= want
    bs, _ = load_bitstream(data)
    arch = bs.header.arch
    planned = sizemodel.plan(48, 32, want, model)
    assert (arch["width"], arch["hidden_layers"], arch["pe_frequencies"]) == (
        planned.width,
        3,
        planned.pe_frequencies,
    )
    assert len(result.stage_psnr) == (4 if model == "spinr" else 1)
    assert all(12.0 < p < 60.0 for p in result.stage_psnr)


def test_a_fixed_network_meets_a_target_too(photo_crop: np.ndarray) -> None:
    img = photo_crop[:32, :48]
    cfg = EncodeConfig(ModelSpec("siren", 10, 2), TrainConfig(steps=40, seq_steps=3, device="cpu"))
    small = encode_image(img, cfg.replace(**{"rate.bytes": 600}))
    assert WINDOW_LOW * 600 <= small.bytes <= 600 and small.bitstream.header.arch["width"] == 10
    with pytest.raises(ConfigError, match="too small for this network"):
        encode_image(img, cfg.replace(**{"rate.bytes": 60}))


def test_presets_are_rate_and_effort_presets() -> None:
    for name in ("quick", "standard", "thorough"):
        cfg = preset(name)
        assert cfg.model.width is None and cfg.model.hidden_layers is None  # sized per image and rate
    assert preset("quick").train.steps < preset("standard").train.steps < preset("thorough").train.steps
    assert preset("paper").model.width == 64 and preset("paper").model.options["joint"] == 0.0


def test_cli_prints_the_jpeg_comparison(
    tmp_path: Path, photo_crop: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    img = tmp_path / "c.png"
    Image.fromarray(photo_crop).save(img)
    out = tmp_path / "c.spnr"
    argv = [
        "encode",
        str(img),
        "-o",
        str(out),
        "--bytes",
        "900",
        "--steps",
        "60",
        "--seq-steps",
        "3",
        "--device",
        "cpu",
    ]
    assert main([*argv, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert 810 <= info["bytes"] == out.stat().st_size <= 900 and info["target_bytes"] == 900
    jpeg = info["classical"]["jpeg"]
    assert jpeg["bytes"] <= 900 or not jpeg["fits"]
    assert 5.0 < jpeg["psnr"] < 60.0
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert (
        "target 900 bytes" in captured.err and "estimated" in captured.err
    )  # plan and time, before training
    assert "at the same bytes: JPEG" in captured.out and "bpp" in captured.out


def test_demo_is_rate_controlled_and_compared(
    tmp_path: Path, photo_crop: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    """``spinr demo`` (what ``make demo`` runs) encodes at the default rate, at most 2 bpp, and puts
    its PSNR beside the four classical codecs at the same bytes."""
    img = tmp_path / "d.png"
    Image.fromarray(photo_crop).save(img)
    argv = [
        "demo",
        str(img),
        "--out",
        str(tmp_path / "out"),
        "--steps",
        "40",
        "--seq-steps",
        "2",
        "--device",
        "cpu",
        "-q",
    ]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["bpp"] <= 2.0 and summary["target_bytes"] is not None
    assert WINDOW_LOW * summary["target_bytes"] <= summary["bytes"] <= summary["target_bytes"]
    assert set(summary["classical"]) == {"jpeg", "webp", "jpeg2000", "avif"}
    out = capsys.readouterr().out
    assert "at the same bytes: JPEG" in out and "AVIF" in out

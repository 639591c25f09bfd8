"""Encode -> file -> parse -> decode on CPU, progressive decoding, orientation, incremental cost."""

from __future__ import annotations

import random

import numpy as np
import pytest

from codec.bitstream import load_bitstream
from codec.config import preset
from codec.decoder import ProgressiveDecoder
from codec.encode import EncodeResult, encode_image, evaluate
from codec.errors import BitstreamError
from codec.metrics import psnr


def tiny(model: str = "spinr", steps: int = 120, **changes) -> object:
    cfg = preset("tiny").replace(
        **{"train.device": "cpu", "train.steps": steps, "model.name": model, **changes}
    )
    if model != "spinr":
        cfg.model.options = {}
    return cfg


@pytest.fixture(scope="module")
def spinr_result(photo_crop: np.ndarray) -> EncodeResult:
    return encode_image(
        photo_crop, tiny("spinr", 240, **{"model.width": 24, "model.hidden_layers": 3, "train.lr": 2e-3})
    )


def test_file_round_trip_is_bit_exact(spinr_result: EncodeResult, photo_crop: np.ndarray) -> None:
    data = spinr_result.bitstream.to_bytes()
    bs, damaged = load_bitstream(data)
    assert damaged == [] and bs.to_bytes() == data
    for i, unit in spinr_result.bitstream.units.items():
        for a, b in zip(unit.tensors, bs.units[i].tensors, strict=True):
            assert a.name == b.name and a.step == b.step and np.array_equal(a.codes, b.codes)
    rgb = ProgressiveDecoder.from_bitstream(bs).decode().rgb
    assert rgb.shape == photo_crop.shape and rgb.dtype == np.uint8
    assert 20.0 < psnr(rgb, photo_crop) < 60.0
    assert abs(psnr(rgb, photo_crop) - spinr_result.psnr) < 1e-9  # the encoder reports what a receiver gets


def test_quantization_costs_little_at_8_bits(spinr_result: EncodeResult) -> None:
    # Stages are quantized as they freeze, so later stages compensate: the cost stays small either way.
    assert abs(spinr_result.psnr - spinr_result.float_psnr) < 1.0


def test_spinr_psnr_rises_with_layers_and_every_prefix_decodes(
    spinr_result: EncodeResult, photo_crop: np.ndarray
) -> None:
    stages = spinr_result.stage_psnr
    assert len(stages) == 4
    assert stages[-1] > stages[0] + 1.0
    bs = spinr_result.bitstream
    packets = bs.packets()
    for k in range(1, len(packets)):  # header + layers 0..k-1 only
        dec = ProgressiveDecoder()
        for p in packets[: k + 1]:
            assert dec.add_packet(p.to_bytes()).accepted
        out = dec.decode()
        assert out.rgb.shape == photo_crop.shape and out.rgb.dtype == np.uint8
        assert out.depth == k and out.units == list(range(k))
        assert abs(psnr(out.rgb, photo_crop) - stages[k - 1]) < 1e-9


def test_depth_counts_stages_as_the_cli_layers_flag_does(
    spinr_result: EncodeResult, photo_crop: np.ndarray, tmp_path
) -> None:
    """``decode(depth=k)`` uses the first k stages, 1..depths, like ``spinr decode --layers k``:
    ``depth=dec.depths`` is the whole picture and ``Decoded.depth`` counts the same way."""
    from client.cli import main
    from codec.bitstream import write_file
    from codec.image import load_image

    dec = ProgressiveDecoder.from_bitstream(spinr_result.bitstream)
    assert dec.depths == 4
    full = dec.decode()
    assert full.depth == dec.depths
    assert np.array_equal(dec.decode(depth=dec.depths).rgb, full.rgb)
    path = tmp_path / "s.spnr"
    write_file(path, spinr_result.bitstream)
    for k in range(1, dec.depths + 1):
        out = dec.decode(depth=k)
        assert out.depth == k and out.units == list(range(k))
        assert abs(psnr(out.rgb, photo_crop) - spinr_result.stage_psnr[k - 1]) < 1e-9
        png = tmp_path / f"layers-{k}.png"
        assert main(["decode", str(path), "-o", str(png), "--layers", str(k)]) == 0
        assert np.array_equal(load_image(png), out.rgb)
    for bad in (0, dec.depths + 1):
        with pytest.raises(
            BitstreamError, match=rf"depth {bad} is out of range: this stream has 1\.\.4 stages"
        ):
            dec.decode(depth=bad)


def test_packets_in_any_order_with_one_missing(spinr_result: EncodeResult) -> None:
    packets = [p.to_bytes() for p in spinr_result.bitstream.packets()]
    layers = packets[1:]
    del layers[2]  # unit 2 is lost
    order = layers + [packets[0]]
    random.Random(5).shuffle(order)
    dec = ProgressiveDecoder()
    for p in order:
        assert dec.add_packet(p).accepted
    assert dec.available == {0, 1, 3}
    out = dec.decode()
    assert out.depth == 2 and out.units == [0, 1]
    skip = ProgressiveDecoder(conceal="skip")
    for p in order:
        skip.add_packet(p)
    out = skip.decode()
    assert out.depth == 4 and out.units == [0, 1, 3] and out.steps == [0, 1, 3]


def test_foreign_and_broken_packets_are_reported_not_raised(spinr_result: EncodeResult) -> None:
    packets = [p.to_bytes() for p in spinr_result.bitstream.packets()]
    dec = ProgressiveDecoder()
    assert dec.add_packet(packets[0]).accepted
    status = dec.add_packet(packets[1][:-3])
    assert not status.accepted and status.error
    other = encode_image(np.zeros((4, 4, 3), np.uint8), tiny("spinr", 4))
    status = dec.add_packet(other.bitstream.packets()[1].to_bytes())
    assert not status.accepted and "does not belong to stream" in status.error


def test_incremental_decode_costs_one_layer_per_stage(
    spinr_result: EncodeResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    dec = ProgressiveDecoder(spinr_result.bitstream.header)
    calls = []
    real = dec.arch.trunk
    monkeypatch.setattr(dec.arch, "trunk", lambda k, h, p: calls.append(k) or real(k, h, p))
    for i in sorted(spinr_result.bitstream.units):
        dec.add_unit(spinr_result.bitstream.units[i])
        dec.decode()
    assert calls == [0, 1, 2, 3]  # a full re-decode at every stage would be 1 + 2 + 3 + 4 = 10 calls


def test_decode_at_any_size(spinr_result: EncodeResult) -> None:
    dec = ProgressiveDecoder.from_bitstream(spinr_result.bitstream)
    base = dec.decode().rgb
    big = dec.decode(size=(128, 96)).rgb
    assert big.shape == (96, 128, 3)
    # Averaging 2x2 blocks of the 2x decode approximates the 1x decode: the same continuous picture.
    down = big.reshape(48, 2, 64, 2, 3).mean(axis=(1, 3))
    assert psnr(down.astype(np.float64) / 255, base.astype(np.float64) / 255) > 24.0


def test_portrait_image_keeps_its_orientation(portrait_crop: np.ndarray) -> None:
    cfg = tiny("siren", 250, **{"model.width": 32, "model.hidden_layers": 2, "train.lr": 1e-3})
    result = encode_image(portrait_crop, cfg)
    assert (result.bitstream.header.width, result.bitstream.header.height) == (40, 56)
    rgb = ProgressiveDecoder.from_bitstream(result.bitstream).decode().rgb
    assert rgb.shape == (56, 40, 3)
    right = psnr(rgb, portrait_crop)
    assert right > 22.0
    assert right > psnr(rgb, portrait_crop[::-1]) + 5  # not upside down
    assert right > psnr(rgb, portrait_crop[:, ::-1]) + 5  # not mirrored


def test_siren_round_trip_and_eval(photo_crop: np.ndarray) -> None:
    result = encode_image(photo_crop, tiny("siren", 100, **{"train.lr": 1e-3}))
    bs, _ = load_bitstream(result.bitstream.to_bytes())
    report = evaluate(bs, photo_crop)
    assert len(report["psnr_by_layers"]) == 1
    assert abs(report["psnr"] - result.psnr) < 1e-3
    assert 0.3 < report["ssim"] <= 1.0
    assert report["bpp"] == pytest.approx(report["bytes"] * 8 / (64 * 48), rel=1e-4)


def test_bits_trade_size_for_quality(photo_crop: np.ndarray) -> None:
    coarse, fine = (encode_image(photo_crop, tiny("siren", 60, **{"quant.bits": b})) for b in (4, 12))
    assert coarse.float_psnr == pytest.approx(fine.float_psnr, abs=1e-6)  # SIREN: the same training
    # Every step is 2^8 times finer at 12 bits than at 4, but where the coarse step is capped at the
    # tensor's spread (MAX_STEP_STD): there it is less.
    ratios = [a / b for a, b in zip(coarse.steps, fine.steps, strict=True)]
    assert all(1.0 <= r <= 256.0 * 1.01 for r in ratios) and sum(r == 256.0 for r in ratios) > len(ratios) / 2
    assert coarse.bytes < fine.bytes and coarse.psnr < fine.psnr
    assert abs(fine.psnr - fine.float_psnr) < 0.05


def test_sensitivity_gives_the_sine_input_layer_fine_steps(photo_crop: np.ndarray) -> None:
    """No tensor is marked precise by hand: the measured sensitivity makes the input layer's steps (in
    units of each tensor's spread) far finer than the hidden layers', and a coarse SIREN keeps close to
    its float quality (v1's 6-bit min/max quantizer lost more than 3 dB here without a 16-bit input layer)."""
    from codec.config import EncodeConfig, ModelSpec, QuantConfig, TrainConfig

    cfg = EncodeConfig(
        ModelSpec("siren", 32, 2), TrainConfig(steps=200, lr=1e-3, device="cpu"), QuantConfig(bits=7)
    )
    r = encode_image(photo_crop, cfg)
    rel = {
        (i, t.name): t.step / float(np.std(t.dequantize()))
        for i, u in r.bitstream.units.items()
        for t in u.tensors
    }
    assert max(rel[(0, "weight")], rel[(0, "bias")]) * 10 < min(rel[(k, "weight")] for k in (1, 2, 3))
    assert r.psnr > r.float_psnr - 1.5, (r.psnr, r.float_psnr)

"""Step allocation by sensitivity and the torch side of the quantizer (codec/stepalloc.py,
codec/stepquant.py): the multiplier for ``--bits``, the probe, the allocation rule, and training and
the decoder agreeing bit for bit on quantized weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codec.bitstream import Bitstream, StreamHeader, units_bytes
from codec.decoder import ProgressiveDecoder
from codec.errors import ConfigError
from codec.models import build_model
from codec.quant import dequantize_codes, min_step, representable
from codec.stepalloc import (
    DB_PER_BIT,
    MAX_STEP_STD,
    multiplier_for_bits,
    noise_psnr,
    probe_sensitivity,
    steps_for,
)
from codec.stepquant import (
    fake_quantize,
    model_sensitivity,
    model_steps,
    model_tensors,
    quantize_in_place,
    quantize_model,
)


def test_multiplier_sets_the_noise_level() -> None:
    """N weights at steps m/√s add N·m²/12 of output MSE: the noise PSNR --bits asks for."""
    for bits in (4, 8, 12):
        m = multiplier_for_bits(bits, 5000)
        mse = 5000 * m**2 / 12
        assert math.isclose(10 * math.log10(4 / mse), noise_psnr(bits), rel_tol=1e-12)
    assert math.isclose(noise_psnr(9) - noise_psnr(8), DB_PER_BIT) and math.isclose(
        DB_PER_BIT, 6.0206, abs_tol=1e-4
    )
    assert math.isclose(multiplier_for_bits(7, 100) / multiplier_for_bits(8, 100), 2.0)
    for bad in (1, 17, 8.0, True):
        with pytest.raises(ConfigError, match="bits .* is out of range 2..16"):
            multiplier_for_bits(bad, 10)  # type: ignore[arg-type]


def test_probe_measures_a_known_quadratic() -> None:
    """For mse = Σ_t c_t |w_t - w*_t|² the sensitivity of tensor t (added MSE per weight per unit of
    noise variance) is exactly c_t."""
    rng = np.random.default_rng(0)
    tensors = [rng.standard_normal(n).astype(np.float32) for n in (50, 400, 7)]
    coeff = [3.0, 0.02, 700.0]

    def mse(i: int, values: np.ndarray | None) -> float:
        ws = [values if j == i and values is not None else t for j, t in enumerate(tensors)]
        return sum(
            c * float(np.sum((w.astype(np.float64) - t) ** 2))
            for c, w, t in zip(coeff, ws, tensors, strict=True)
        )

    got = probe_sensitivity(mse, tensors, reps=8)
    for g, c in zip(got, coeff, strict=True):
        assert g == pytest.approx(c, rel=0.25)


def test_steps_follow_the_rule_within_the_bounds() -> None:
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal(n).astype(np.float32) for n in (100, 100, 100))
    steps = steps_for([a, b, c], [1.0, 100.0, 1e-12], 0.01)
    assert steps[0] == representable(0.01) and steps[1] == representable(0.001)  # step ∝ 1/√s
    assert steps[2] == representable(MAX_STEP_STD * float(np.std(c)))  # an insensitive tensor: capped
    assert steps_for([a], [1e30], 1.0)[0] == min_step(a)  # never finer than the format allows
    with pytest.raises(ConfigError, match="2 tensors but 1 sensitivities"):
        steps_for([a, b], [1.0], 0.1)
    with pytest.raises(ConfigError, match="step multiplier 0.0 must be a positive finite number"):
        steps_for([a], [1.0], 0.0)


def test_fake_quantize_is_what_the_decoder_computes() -> None:
    torch.manual_seed(0)
    p = torch.randn(64, 64) * 3
    step = representable(0.0123)
    codes = np.rint(p.numpy().astype(np.float64) / step)
    assert torch.equal(fake_quantize(p, step), torch.from_numpy(dequantize_codes(codes, step)))
    params = [p.clone()]
    quantize_in_place(params, [step])
    once = params[0].clone()
    quantize_in_place(params, [step])
    assert torch.equal(params[0], once)  # idempotent: a frozen stage keeps its codes


@pytest.fixture(scope="module")
def tiny_image() -> np.ndarray:
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:10, 0:14]
    img = (
        127
        + 100 * np.sin(x[..., None] / 3.0 + y[..., None] / 5.0 + np.arange(3))
        + rng.normal(0, 5, (10, 14, 3))
    )
    return np.clip(img, 0, 255).astype(np.uint8)


def test_model_steps_and_units(tiny_image: np.ndarray) -> None:
    torch.manual_seed(0)
    model = build_model("spinr", 8, 2, {"head": "shared"})
    tensors = model_tensors(model)
    sens = model_sensitivity(model, tiny_image)
    assert len(sens) == len(tensors) and all(s > 0 for s in sens)
    m = multiplier_for_bits(8, sum(t.numel() for t in tensors))
    steps = model_steps(model, tiny_image, m, sensitivity=sens)
    assert steps == model_steps(model, tiny_image, m)  # same probe seed: same steps
    fixed = {id(tensors[0]): 0.5}
    assert model_steps(model, tiny_image, m, fixed=fixed, sensitivity=sens)[0] == 0.5
    units = quantize_model(model, steps)
    assert [u.index for u in units] == list(range(len(model.units())))
    header = StreamHeader("spinr", model.arch(), 14, 10)
    bs = Bitstream(header, {u.index: u for u in units}, 9)
    assert len(bs.packets()[0].to_bytes()) + units_bytes(units) == len(bs.to_bytes())
    dec = ProgressiveDecoder.from_bitstream(bs)
    for i, (_, named) in enumerate(model.units()):
        for (name, t), step in zip(named, steps[sum(len(u[1]) for u in model.units()[:i]) :], strict=False):
            assert np.array_equal(dec.params[i][name], fake_quantize(t.detach(), step).numpy())
    with pytest.raises(ConfigError, match="3 steps for a model of 8 tensors"):
        quantize_model(model, steps[:3])


def test_coarser_bits_cost_fewer_bytes(tiny_image: np.ndarray) -> None:
    torch.manual_seed(0)
    model = build_model("siren", 16, 2)
    sens = model_sensitivity(model, tiny_image)
    n = sum(t.numel() for t in model_tensors(model))
    sizes = [
        units_bytes(
            quantize_model(model, model_steps(model, tiny_image, multiplier_for_bits(b, n), sensitivity=sens))
        )
        for b in (4, 8, 12)
    ]
    assert sizes[0] < sizes[1] < sizes[2]

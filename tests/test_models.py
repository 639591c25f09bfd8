from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codec.arch import decoder_for
from codec.coords import grid
from codec.errors import ConfigError
from codec.models import MODELS, build_model

SIREN_ARCH = {"width": 8, "hidden_layers": 2, "first_omega_0": 30.0, "hidden_omega_0": 30.0}


def test_paper_size_siren_has_about_66_8k_params() -> None:
    m = build_model("siren", 64, 16)
    assert m.num_params() == 2 * 64 + 64 + 16 * (64 * 64 + 64) + 64 * 3 + 3
    assert abs(m.num_params() - 66_820) / 66_820 < 0.005


def test_siren_init_bounds_follow_the_paper() -> None:
    torch.manual_seed(0)
    m = build_model("siren", 64, 3)
    first = m.input.linear.weight
    assert first.abs().max() <= 1 / 2 + 1e-7 and first.abs().max() > 0.4  # U(-1/n, 1/n), n = 2
    bound = math.sqrt(6 / 64) / 30
    for layer in m.hidden:
        w = layer.linear.weight
        assert w.abs().max() <= bound + 1e-7 and w.abs().max() > 0.9 * bound


@pytest.mark.parametrize(
    ("head", "names"),
    [
        ("shared", ["input", "output", "hidden.1", "hidden.2"]),
        ("per_stage", ["stage.0", "stage.1", "stage.2"]),
    ],
)
def test_spinr_unit_order_matches_format(head: str, names: list[str]) -> None:
    m = build_model("spinr", 8, 2, {"head": head})
    assert [n for n, _ in m.units()] == names
    assert len(m.stages()) == 3 and m.depths == 3


def test_unknown_model_and_option_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        build_model("nope", 8, 1)
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['colour'\]"):
        build_model("siren", 8, 1, {"colour": 1})
    with pytest.raises(ConfigError, match="head 'middle'"):
        build_model("spinr", 8, 1, {"head": "middle"})


def _numpy_forward(model, coords: np.ndarray, depth: int | None) -> np.ndarray:
    """Run the numpy decoder's arch on the model's float weights (no quantization)."""
    units = model.units()
    params = {i: {n: t.detach().numpy() for n, t in tensors} for i, (_, tensors) in enumerate(units)}
    arch = decoder_for(model.kind, model.arch())
    d, steps = arch.plan(set(params)) if depth is None else (depth, list(range(depth + 1)))
    h = coords
    for k in steps:
        h = arch.trunk(k, h, params)
    return arch.readout(d, h, params)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("siren", {}),
        ("spinr", {"head": "shared"}),
        ("spinr", {"head": "per_stage"}),
        ("spinr", {"residual": False}),
    ],
)
def test_numpy_forward_matches_torch(name: str, options: dict) -> None:
    torch.manual_seed(3)
    m = build_model(name, 32, 3, options)
    coords = grid(37, 23)
    for depth in [None] if name == "siren" else [0, 1, 3]:
        with torch.no_grad():
            ref = m(torch.from_numpy(coords), depth).numpy()
        got = _numpy_forward(m, coords, depth)
        np.testing.assert_allclose(got, ref, atol=2e-4, rtol=0)


def test_every_registered_model_has_a_numpy_decoder() -> None:
    from codec.arch import DECODERS

    assert set(MODELS) <= set(DECODERS)


@pytest.mark.parametrize(
    ("name", "options"), [("spinr", {"joint": 0.5}), ("fourier", {"b_seed": 7}), ("diner", {})]
)
def test_received_model_holds_the_bitstreams_weights(name: str, options: dict) -> None:
    from codec.bitstream import Bitstream, StreamHeader
    from codec.coords import to_rgb8
    from codec.decoder import ProgressiveDecoder
    from codec.errors import BitstreamError
    from codec.models import received_model
    from codec.stepquant import model_tensors, quantize_model

    torch.manual_seed(0)
    sent = build_model(name, 8, 2, options)
    sent.set_image_size(12, 10)  # only DINER's table depends on it
    units = quantize_model(sent, [float(t.detach().std()) / 64 + 1e-6 for t in model_tensors(sent)])
    header = StreamHeader(sent.kind, sent.arch(), 12, 10)
    bs = Bitstream(header, {u.index: u for u in units}, 1)
    got = received_model(bs)
    assert type(got) is type(sent) and not got.training
    decoder = ProgressiveDecoder.from_bitstream(bs)
    for i, (_, tensors) in enumerate(got.units()):
        for tname, t in tensors:
            assert np.array_equal(t.detach().numpy(), decoder.params[i][tname])  # the dequantized values
    with torch.no_grad():
        rendered = to_rgb8(got(torch.from_numpy(grid(12, 10))).numpy(), 12, 10)
    assert np.abs(rendered.astype(int) - decoder.decode().rgb.astype(int)).max() <= 1
    del bs.units[len(units) - 1]
    with pytest.raises(BitstreamError, match=rf"lacks unit\(s\) \[{len(units) - 1}\]"):
        received_model(bs)
    with pytest.raises(BitstreamError, match="holds a 'siren' model, not"):
        got.load_bitstream(Bitstream(StreamHeader("siren", SIREN_ARCH, 12, 10), {}, 1))

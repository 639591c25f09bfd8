"""Positional encoding of SIREN and SPINR (codec/posenc.py): the torch model, the numpy forward and
the header agree; an off encoding changes nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codec import posenc
from codec.bitstream import load_bitstream
from codec.config import EncodeConfig, ModelSpec, TrainConfig
from codec.coords import grid
from codec.decoder import ProgressiveDecoder
from codec.encode import encode_image
from codec.errors import ConfigError
from codec.models import build_model, received_model
from codec.models.siren import CoordEncoder


def test_features_by_hand() -> None:
    xy = np.array([[0.5, -0.25]], dtype=np.float32)
    got = posenc.encode(xy, 2, 1.5)
    f0, f1 = np.float32(math.pi), np.float32(1.5 * math.pi)
    want = [0.5, -0.25]
    for f in (f0, f1):
        want += [math.sin(np.float32(0.5) * f), math.sin(np.float32(-0.25) * f)]
        want += [math.cos(np.float32(0.5) * f), math.cos(np.float32(-0.25) * f)]
    assert got.shape == (1, 10) and got.dtype == np.float32
    assert np.allclose(got[0], want, atol=1e-7)
    assert posenc.encode(xy, 0, 1.4) is not None and posenc.encode(xy, 0, 1.4).shape == (1, 2)
    # the frequencies are repeated float64 products: exact and the same in every language
    assert posenc.frequencies_f32(3, 1.4).tolist() == [
        np.float32(math.pi),
        np.float32(1.4 * math.pi),
        np.float32(1.4 * 1.4 * math.pi),
    ]


def test_torch_features_are_numpy_features() -> None:
    coords = grid(17, 9)
    enc = CoordEncoder(7, 1.4)
    t = enc(torch.from_numpy(coords)).numpy()
    n = posenc.encode(coords, 7, 1.4)
    assert t.shape == n.shape == (17 * 9, 30)
    assert np.abs(t - n).max() < 1e-5  # float32 sin/cos of the same float32 arguments


@pytest.mark.parametrize(
    "bad", [{"pe_frequencies": -1}, {"pe_frequencies": 33}, {"pe_scale": 1.0}, {"pe_scale": 5.0}]
)
@pytest.mark.parametrize("model", ["siren", "spinr"])
def test_options_are_checked(model: str, bad: dict) -> None:
    name = next(iter(bad))
    with pytest.raises(ConfigError, match=name):
        build_model(model, 8, 1, bad)


@pytest.mark.parametrize("model", ["siren", "spinr"])
def test_encoded_stream_decodes_as_the_model_computes(model: str) -> None:
    """A PE stream: the header records the encoding, the units the wider input layer, and the numpy
    decoder's pictures are the torch model's (same quantized weights) to within a code value."""
    rng = np.random.default_rng(3)
    img = (rng.random((20, 28, 3)) * 255).astype(np.uint8)
    cfg = EncodeConfig(ModelSpec(model, 8, 2, {"pe_frequencies": 4}), TrainConfig(steps=8, device="cpu"))
    result = encode_image(img, cfg)
    bs, _ = load_bitstream(result.bitstream.to_bytes())
    assert bs.header.arch["pe_frequencies"] == 4 and bs.header.arch["pe_scale"] == 1.4
    first = bs.units[0].tensors[0]
    assert first.shape == (8, 18)  # 2 + 4 * 4 input features
    net = received_model(bs)
    dec = ProgressiveDecoder.from_bitstream(bs)
    depths = range(net.depths) if model == "spinr" else [None]
    for d in depths:
        with torch.no_grad():
            out = net(torch.from_numpy(grid(28, 20)), d).numpy()
        want = np.clip(np.rint((out + 1) / 2 * 255), 0, 255).reshape(20, 28, 3)
        got = dec.decode(depth=None if d is None else d + 1).rgb  # decode counts stages from 1
        assert np.abs(got.astype(int) - want).max() <= 1


def test_off_is_the_plain_network() -> None:
    """pe_frequencies 0 builds exactly today's SIREN (2 inputs, same initial weights, same header)."""
    torch.manual_seed(0)
    a = build_model("siren", 8, 1, {})
    torch.manual_seed(0)
    b = build_model("siren", 8, 1, {"pe_frequencies": 0, "pe_scale": 2.0})
    assert a.input.linear.weight.shape == (8, 2)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert a.arch() == b.arch()  # the scale of an encoding that is off is not recorded

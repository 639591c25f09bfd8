"""The study's model zoo (fourier, mfn, wire, diner): fit through the codec, bytes round trip, numpy
decode against the torch forward, and the parameter counts of the study's Table 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.arch import decoder_for
from codec.bitstream import load_bitstream
from codec.config import EncodeConfig, ModelSpec, TrainConfig
from codec.coords import grid
from codec.decoder import ProgressiveDecoder
from codec.encode import encode_image
from codec.models import build_model
from codec.models.fourier import b_matrix

ZOO = [("fourier", {}), ("mfn", {}), ("mfn", {"filter": "fourier"}), ("wire", {}), ("diner", {})]


def numpy_forward(model, coords: np.ndarray) -> np.ndarray:
    units = model.units()
    params = {i: {n: t.detach().numpy() for n, t in ts} for i, (_, ts) in enumerate(units)}
    arch = decoder_for(model.kind, model.arch())
    depth, steps = arch.plan(set(params))
    h = coords
    for k in steps:
        h = arch.trunk(k, h, params)
    return arch.readout(depth, h, params)


@pytest.mark.parametrize(("name", "options"), ZOO, ids=lambda x: str(x))
def test_numpy_decoder_matches_torch_forward(name: str, options: dict) -> None:
    torch.manual_seed(0)
    m = build_model(name, 16, 2, options)
    if m.needs_image_size if hasattr(m, "needs_image_size") else False:
        m.set_image_size(12, 10)
        torch.nn.init.uniform_(m.table, -1, 1)  # a trained-looking table, not the 1e-4 init
    coords = grid(12, 10)
    with torch.no_grad():
        ref = m(torch.from_numpy(coords)).numpy()
    out = numpy_forward(m, coords)
    assert out.dtype == np.float32 and out.shape == (120, 3)
    np.testing.assert_allclose(out, ref, atol=2e-5 * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize(("name", "options"), ZOO, ids=lambda x: str(x))
def test_fit_roundtrip_through_bytes(name: str, options: dict, photo_crop: np.ndarray) -> None:
    img = photo_crop[:24, :32]
    cfg = EncodeConfig(ModelSpec(name, 16, 2, options), TrainConfig(steps=40, device="cpu", seed=1))
    res = encode_image(img, cfg)
    assert res.bitstream.header.model == name
    assert np.isfinite(res.psnr) and res.psnr > 8.0
    data = res.bitstream.to_bytes()
    bs, damaged = load_bitstream(data)
    assert not damaged
    assert bs.header.arch == res.bitstream.header.arch
    dec = ProgressiveDecoder.from_bitstream(bs)
    again = dec.decode().rgb
    first = ProgressiveDecoder.from_bitstream(res.bitstream).decode().rgb
    np.testing.assert_array_equal(again, first)  # integer path: bit-exact through the bytes


def test_fourier_b_is_regenerated_exactly_from_the_header() -> None:
    m = build_model("fourier", 8, 1, {"sigma": 7.5, "mapping_size": 32, "b_seed": 42})
    b = b_matrix(32, 7.5, 42)
    assert torch.equal(m.B, torch.from_numpy(b))
    arch = decoder_for("fourier", m.arch())
    np.testing.assert_array_equal(arch.B, b)
    assert not any(t is m.B for _, ts in m.units() for _, t in ts)  # B never travels
    assert not np.array_equal(b_matrix(32, 7.5, 43), b)


@pytest.mark.parametrize(
    ("name", "width", "hidden", "expected", "paper_k"),
    [
        ("fourier", 128, 4, 132_099, 132.09),
        ("fourier", 64, 8, 66_307, 66.30),
        ("siren", 256, 2, 133_123, 133.12),
        ("siren", 128, 4, 66_819, 66.82),
        ("mfn", 256, 2, 136_963, 136.96),
        ("mfn", 128, 4, 70_275, 70.27),
        ("wire", 128, 4, 66_819, 66.82),
        ("spinr", 128, 4, 66_819, 66.82),
    ],
)
def test_param_counts_match_the_study(
    name: str, width: int, hidden: int, expected: int, paper_k: float
) -> None:
    opts = {"head": "shared"} if name == "spinr" else {}
    n = build_model(name, width, hidden, opts).num_params()
    assert n == expected
    assert abs(n / 1000 - paper_k) < 0.011  # the paper truncates to two decimals


def test_wire_stream_carries_two_reals_per_complex_weight() -> None:
    m = build_model("wire", 128, 4)
    stored = sum(t.numel() for _, ts in m.units() for _, t in ts)
    assert stored == 2 * m.num_params() - (2 * 128 + 128)  # the real first layer is stored once


def test_diner_grows_with_the_image(photo_crop: np.ndarray) -> None:
    """Two features per pixel: as float32 the table alone is larger than the image (the study's CF < 1);
    in the stream the table is the largest unit by far."""
    m = build_model("diner", 64, 2)
    m.set_image_size(512, 512)
    assert m.num_params() == 2 * 512 * 512 + 8_707
    assert 512 * 512 * 3 / (4 * m.num_params()) < 1.0
    img = photo_crop[:24, :32]
    res = encode_image(img, EncodeConfig(ModelSpec("diner", 16, 1), TrainConfig(steps=5, device="cpu")))
    sizes = [len(p.to_bytes()) for p in res.bitstream.packets()[1:]]
    assert res.bitstream.header.units[0].name == "table" and sizes[0] > sum(sizes[1:])


def test_diner_decodes_at_another_size_by_nearest_lookup(photo_crop: np.ndarray) -> None:
    img = photo_crop[:24, :32]
    res = encode_image(img, EncodeConfig(ModelSpec("diner", 16, 1), TrainConfig(steps=5, device="cpu")))
    dec = ProgressiveDecoder.from_bitstream(res.bitstream)
    small = dec.decode().rgb
    big = dec.decode(size=(64, 48)).rgb
    np.testing.assert_array_equal(big[::2, ::2], small)  # 2x nearest-neighbour upsampling

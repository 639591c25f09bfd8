"""``--trim``: under a rate target a SPINR stream is sent without its last stages when a prefix decodes
better or the whole network does not fit (codec/finish.py ``finish``); a trimmed residual stream
decodes with θ0's first units (codec/meta/initfile.py ``check_matches(prefix=True)``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codec.bitstream import load_bitstream
from codec.config import preset
from codec.decoder import ProgressiveDecoder
from codec.encode import encode_image
from codec.errors import ConfigError, InitError
from codec.meta import store
from codec.meta.initfile import InitFile, write_init
from codec.meta.reptile import snapshot
from codec.metrics import psnr
from codec.models.base import build_model

TOO_SMALL = 300
"""Bytes under what the tiny preset's whole network needs at its coarsest steps (about 304), over
what its two-stage prefix needs."""


def _cfg(target: int, trim: str = "auto", init: str = "random"):
    cfg = preset("tiny")  # SPINR 16 x 2: three stages
    cfg.train.steps = 300
    cfg.train.init = init
    cfg.rate.bytes = target
    cfg.rate.trim = trim
    return cfg


def _decodes_as_reported(r, image: np.ndarray) -> ProgressiveDecoder:
    back, _ = load_bitstream(r.bitstream.to_bytes())
    dec = ProgressiveDecoder.from_bitstream(back)
    assert dec.depths == len(r.stage_psnr) == back.header.arch["hidden_layers"] + 1
    for depth in range(1, dec.depths + 1):
        assert psnr(dec.decode(depth=depth).rgb, image) == pytest.approx(r.stage_psnr[depth - 1], abs=1e-6)
    return dec


def test_a_prefix_is_the_first_stages_of_the_network() -> None:
    import torch

    torch.manual_seed(3)
    model = build_model("spinr", 8, 3, {"pe_frequencies": 2})
    assert model.can_trim()
    short = model.prefix(1)
    assert short.hidden_layers == 1 and short.depths == 2 and model.hidden_layers == 3
    assert short.arch() == {**model.arch(), "hidden_layers": 1}
    mine, theirs = short.units(), model.units()[:2]
    assert [n for n, _ in mine] == [n for n, _ in theirs]
    for (_, a), (_, b) in zip(mine, theirs, strict=True):
        assert [n for n, _ in a] == [n for n, _ in b]
        assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a, b, strict=True))
    coords = torch.rand(50, 2) * 2 - 1
    with torch.no_grad():
        assert torch.equal(short(coords), model(coords, depth=1))
    for bad in (-1, 4):
        with pytest.raises(ValueError, match=f"no {bad}-stage prefix"):
            model.prefix(bad)
    shared = build_model("spinr", 8, 3, {"head": "shared"})
    assert not shared.can_trim()
    with pytest.raises(ValueError, match="shared"):
        shared.prefix(1)


def test_a_target_too_small_for_the_network_is_met_by_a_prefix(photo_crop) -> None:
    with pytest.raises(ConfigError, match="too small for this network"):
        encode_image(photo_crop, _cfg(TOO_SMALL, "off"))
    r = encode_image(photo_crop, _cfg(TOO_SMALL))
    assert 0.9 * TOO_SMALL <= r.bytes <= TOO_SMALL
    assert r.bitstream.header.arch["hidden_layers"] < 2
    assert any("the whole network does not fit" in w for w in r.warnings), r.warnings
    assert r.network_stages == 3 and len(r.float_stage_psnr) == len(r.stage_psnr) < 3
    assert r.float_psnr == r.float_stage_psnr[-1]  # the sent depth's float PSNR, not the network's
    _decodes_as_reported(r, photo_crop)
    assert r.psnr > 15  # a picture, not noise


def test_progress_names_each_quantization_after_training(photo_crop) -> None:
    from codec.fit_core import TrainProgress

    events: list[TrainProgress] = []
    r = encode_image(photo_crop, _cfg(TOO_SMALL), progress=events.append)
    kinds = [e.event for e in events]
    first = kinds.index("quantize")
    assert "step" in kinds[:first] and set(kinds[first:]) == {"quantize"}  # training is done by then
    quantized = [e for e in events if e.event == "quantize"]
    # The whole network (refused), then every shorter prefix down to the one sent or past it.
    sent = r.bitstream.header.arch["hidden_layers"] + 1
    assert quantized[0].note == f"quantizing 3 stage(s) to {TOO_SMALL} bytes"
    assert f"quantizing {sent} stage(s) to {TOO_SMALL} bytes" in [e.note for e in quantized]
    assert all(e.fraction == 1.0 and e.step == events[first - 1].step for e in quantized)


@pytest.mark.parametrize("target", [400, 500])
def test_trim_never_decodes_worse_than_every_stage(photo_crop, target) -> None:
    every = encode_image(photo_crop, _cfg(target, "off"))
    trimmed = encode_image(photo_crop, _cfg(target))
    assert every.bitstream.header.arch["hidden_layers"] == 2
    assert trimmed.psnr >= every.psnr
    if trimmed.bitstream.header.arch["hidden_layers"] == 2:  # the same fit, quantized the same way
        assert trimmed.psnr == every.psnr and trimmed.bytes == every.bytes
    _decodes_as_reported(trimmed, photo_crop)


@pytest.fixture
def theta0_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InitFile:
    import torch

    torch.manual_seed(7)
    init = snapshot(build_model("spinr", 16, 2, {}))
    write_init(tmp_path / "t.spnri", init)
    monkeypatch.setenv(store.ENV_PATH, str(tmp_path))
    monkeypatch.setattr(store, "_registered", {})
    return init


def test_a_trimmed_residual_stream_decodes_with_theta0s_first_units(theta0_dir, photo_crop) -> None:
    init = theta0_dir
    r = encode_image(photo_crop, _cfg(TOO_SMALL, init="meta"))
    bs = r.bitstream
    assert bs.header.init == init.hash and bs.header.arch["hidden_layers"] < init.arch["hidden_layers"]
    dec = _decodes_as_reported(r, photo_crop)
    for u, unit in bs.units.items():
        for t in unit.tensors:
            assert np.array_equal(dec.params[u][t.name], init.weights[u][t.name] + t.dequantize())


def test_theta0_prefix_rule(theta0_dir) -> None:
    init = theta0_dir
    shallower = {**init.arch, "hidden_layers": 1}
    init.check_matches("spinr", shallower, prefix=True)
    with pytest.raises(InitError, match="has hidden_layers=2, the stream hidden_layers=1"):
        init.check_matches("spinr", shallower)  # θ0 files themselves (meta-train resume) match exactly
    with pytest.raises(InitError, match="has hidden_layers=2, the stream hidden_layers=3"):
        init.check_matches("spinr", {**init.arch, "hidden_layers": 3}, prefix=True)
    with pytest.raises(InitError, match="has width=16, the stream width=8"):
        init.check_matches("spinr", {**shallower, "width": 8}, prefix=True)
    import torch

    torch.manual_seed(1)
    siren = snapshot(build_model("siren", 16, 2, {}))  # its output layer is its last unit
    with pytest.raises(InitError, match="the stream's units are not θ0's first units"):
        siren.check_matches("siren", {**siren.arch, "hidden_layers": 1}, prefix=True)

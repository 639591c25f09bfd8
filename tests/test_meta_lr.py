"""The fine-tune-rate search's pieces (experiments/meta_lr.py, experiments/meta_residual.py): a recipe
naming its own θ0, the score that picks a rate (a rate the fit cannot reach disqualifies it), and the
θ0 of a recipe replacing the planned one only when it is of the same network."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from codec.errors import InitError
from codec.meta import store
from codec.meta.initfile import InitFile, write_init
from codec.meta.reptile import snapshot
from codec.models.base import build_model
from experiments.meta_lr import score
from experiments.meta_residual import _theta0, parse_recipe


def theta0(width: int = 16, seed: int = 7) -> InitFile:
    import torch

    torch.manual_seed(seed)
    return snapshot(build_model("spinr", width, 2, {}))


def test_a_recipe_names_its_theta0_file() -> None:
    r = parse_recipe("meta:500:lr=2e-3:t0=/x/y.spnri")
    assert r == {"init": "meta", "steps": 500, "lr": 2e-3, "pen": 0.0, "norm": "l1", "t0": "/x/y.spnri"}


def test_score_is_the_mean_psnr_and_an_unreached_rate_disqualifies() -> None:
    rows = [{"rows": [{"psnr": 20.0}, {"psnr": 22.0}]}, {"rows": [{"psnr": 18.0}, {"psnr": 20.0}]}]
    assert score(rows, [0.3, 0.5]) == pytest.approx(20.0)
    rows[1]["rows"][0] = {"error": "the target is too small"}
    assert score(rows, [0.3, 0.5]) == -math.inf


def test_recipe_theta0_must_match_the_planned_network(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store, "_registered", {})
    planned, same, other = theta0(seed=1), theta0(seed=2), theta0(width=12)
    write_init(tmp_path / "same.spnri", same)
    write_init(tmp_path / "other.spnri", other)
    got = _theta0({"t0": str(tmp_path / "same.spnri")}, planned)
    assert got.hash == same.hash and store.find(same.hash).hash == same.hash  # registered for the decode
    assert _theta0({}, planned) is planned
    with pytest.raises(InitError, match="width"):
        _theta0({"t0": str(tmp_path / "other.spnri")}, planned)


def test_a_network_is_named_width_x_hidden_colon_l() -> None:
    from experiments.meta_residual import parse_net

    assert parse_net("9x3:8") == (9, 3, 8) and parse_net("16x3:10") == (16, 3, 10)

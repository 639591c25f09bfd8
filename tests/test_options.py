"""The one encode-option table: what it holds, how it checks, and that the CLI is made from it."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from client.codec_cmds import add_encode_options, flag
from codec.config import ENCODE_OPTIONS, PRESETS, EncodeConfig, apply_overrides, option_value, preset
from codec.errors import ConfigError
from codec.model_options import MODEL_OPTIONS
from codec.options import EncodeOption, declared_options, option

ROOT = Path(__file__).resolve().parent.parent
BY_NAME = {o.name: o for o in ENCODE_OPTIONS}


def test_table_names_fields_and_defaults():
    assert len(BY_NAME) == len(ENCODE_OPTIONS)  # one entry per name
    assert list(BY_NAME)[:6] == ["bpp", "bytes", "trim", "model", "width", "depth"]  # the rate first
    assert {o.group for o in ENCODE_OPTIONS} == {"rate", "model", "train", "quant"}
    default = EncodeConfig()
    for opt in ENCODE_OPTIONS:
        assert option_value(default, opt) == opt.default, opt.name
    assert BY_NAME["depth"].field == "model.hidden_layers" and BY_NAME["bits"].field == "quant.bits"
    assert (BY_NAME["width"].min, BY_NAME["width"].max, BY_NAME["depth"].max) == (1, 4096, 256)


def test_model_options_come_from_the_models_declarations():
    for name in ("head", "joint", "dropout"):
        assert BY_NAME[name].models == ("spinr",) and BY_NAME[name].field == f"model.options.{name}"
    assert BY_NAME["head"].choices == ("per_stage", "shared") and BY_NAME["head"].default == "per_stage"
    assert BY_NAME["model"].choices == tuple(MODEL_OPTIONS)
    assert BY_NAME["model"].choices[:2] == ("spinr", "siren")  # the product's models first, then the zoo


def test_the_option_registry_is_the_torch_registry():
    from codec.models import MODELS

    assert set(MODEL_OPTIONS) == set(MODELS)
    assert all(MODELS[name].Options is cls for name, cls in MODEL_OPTIONS.items())


def test_a_new_models_declared_options_are_read_back():
    @dataclass
    class NewOptions:
        gain: float = field(default=1.5, metadata=option("a gain", min=0.0, max=4.0, min_exclusive=True))
        mode: str = field(default="a", metadata=option("a mode", choices=("a", "b")))
        hidden: int = 3  # not a user option

    gain, mode = declared_options(NewOptions, "new")
    assert (gain.kind, gain.default, gain.models, gain.field) == (
        "float",
        1.5,
        ("new",),
        "model.options.gain",
    )
    assert gain.allowed() == "0 < gain <= 4" and mode.kind == "choice" and mode.allowed() == "one of a, b"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bits": 40}, "--bits: bits 40 is out of range: allowed 2..16"),
        ({"bits": 1}, "--bits: bits 1 is out of range: allowed 2..16"),
        ({"joint": 1.0}, "--joint: joint 1.0 is out of range: allowed 0 <= joint < 1"),
        ({"lr": 0.0}, "--lr: lr 0.0 is out of range: allowed 0 < lr < 1"),
        ({"batch_pixels": -1}, "--batch-pixels: batch_pixels -1 is out of range: allowed batch_pixels >= 0"),
        ({"model": "nope"}, "--model: unknown model 'nope'; choose one of spinr, siren, fourier"),
        ({"head": "both"}, "--head: unknown head 'both'; choose one of per_stage, shared"),
        ({"model": "siren", "dropout": 0.1}, "--dropout applies to the spinr model only, not 'siren'"),
        ({"width": "8"}, "--width: width '8' is not a whole number"),
    ],
)
def test_overrides_are_checked_naming_the_flag(values, message):
    with pytest.raises(ConfigError) as info:
        apply_overrides(preset("paper"), values, flag)
    assert str(info.value).startswith(message)


def test_overrides_apply_and_another_model_drops_the_presets_model_options():
    cfg = apply_overrides(preset("paper"), {"width": 8, "head": "shared", "bits": 6, "lr": 0.01})
    assert (cfg.model.width, cfg.model.options, cfg.quant.bits, cfg.train.lr) == (
        8,
        {"joint": 0.0, "head": "shared"},
        6,
        0.01,
    )
    siren = apply_overrides(preset("paper"), {"model": "siren", "ignored": "x"})
    assert siren.model.name == "siren" and siren.model.options == {}


def test_a_narrowed_table_caps_the_presets_own_values_too():
    capped = [
        o.narrowed(max=32, note="this server's limit") if o.name == "width" else o for o in ENCODE_OPTIONS
    ]
    with pytest.raises(ConfigError, match=r"width 64 is out of range: allowed 1..32 \(this server's limit\)"):
        apply_overrides(preset("paper"), {}, table=capped)
    assert apply_overrides(preset("paper"), {"width": 32}, table=capped).model.width == 32
    with pytest.raises(ConfigError, match="outside its range"):
        BY_NAME["width"].narrowed(max=5000)
    with pytest.raises(ConfigError, match="not all among"):
        BY_NAME["model"].narrowed(choices=("spinr", "resnet"))


def test_every_table_option_is_an_encode_flag_and_nothing_else():
    p = argparse.ArgumentParser()
    add_encode_options(p)
    flags = {s for a in p._actions for s in a.option_strings if s.startswith("--")} - {"--help", "--preset"}
    negations = {"--no-" + flag(o.name)[2:] for o in ENCODE_OPTIONS if o.kind == "bool"}
    expected = {flag(o.name) for o in ENCODE_OPTIONS} | negations
    assert flags == expected
    args = p.parse_args(["--width", "12", "--head", "shared"])
    assert (args.width, args.head, args.bits) == (12, "shared", None)


def test_presets_fit_the_table():
    for name in PRESETS:
        cfg = preset(name)
        for opt in ENCODE_OPTIONS:
            if opt.kind != "str" and option_value(cfg, opt) is not None:
                opt.check(option_value(cfg, opt))


def test_the_table_needs_no_torch():
    code = "import sys, codec.config, client.codec_cmds; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_option_json_shape():
    entry = BY_NAME["joint"].to_json()
    assert entry == {
        "name": "joint",
        "type": "float",
        "min": 0.0,
        "max": 1.0,
        "min_exclusive": False,
        "max_exclusive": True,
        "choices": None,
        "default": 0.0,
        "help": BY_NAME["joint"].help,
        "models": ["spinr"],
        "group": "model",
    }
    assert isinstance(BY_NAME["width"], EncodeOption)

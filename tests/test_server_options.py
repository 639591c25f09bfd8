"""The server's view of the option table, in process: its caps, its models, its form and /api/config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codec.config import ENCODE_OPTIONS, PRESETS
from codec.errors import ConfigError
from codec.image import SUPPORTED_FORMATS
from server.options import FORM_OPTIONS, JobForm, api_config, job_options, server_options
from server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_server_narrows_the_codecs_table_and_adds_nothing():
    table = {o.name: o for o in server_options(Settings())}
    codec = {o.name: o for o in ENCODE_OPTIONS}
    assert set(table) == set(codec) - {"device", "max_memory"}  # the server owns both (SERVER_OWNED)
    assert (table["width"].max, table["depth"].max, table["steps"].max) == (1024, 64, 1_000_000)
    assert table["model"].choices == codec["model"].choices and table["bits"] == codec["bits"]  # every model
    wide = {o.name: o for o in server_options(Settings(option_caps={}, models=("spinr", "fourier")))}
    assert wide["width"] == codec["width"] and wide["model"].choices == ("spinr", "fourier")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"option_caps": {"width": 5000}}, "a cap of 5000 on width is outside its range 1..4096"),
        ({"option_caps": {"head": 2}}, "option cap(s) on head: only these can be capped"),
        ({"option_caps": {"depth": 2.5}}, "a cap of 2.5 on depth is not a whole number"),
        ({"models": ("spinr", "resnet")}, "model choices ['spinr', 'resnet'] are not all among spinr, siren"),
        (
            {"option_caps": {"width": 8}, "preset": "paper"},
            "preset 'paper' does not fit this server's limits: width 64",
        ),
    ],
)
def test_settings_that_would_widen_the_table_or_refuse_every_job_are_refused(settings, message):
    with pytest.raises(ConfigError) as info:
        Settings(**settings).validate()
    assert message in str(info.value)


def test_job_options_keep_what_was_given_with_the_preset_and_its_steps():
    table = server_options(Settings())
    assert job_options({"width": 8, "head": None}, table, "tiny") == {
        "width": 8,
        "preset": "tiny",
        "steps": 60,
    }
    assert job_options({"preset": "quick", "bits": 6}, table, "tiny")["steps"] == 300
    with pytest.raises(
        ConfigError, match=r"width 2000 is out of range: allowed 1..1024 \(this server's limit"
    ):
        job_options({"width": 2000}, table, "tiny")
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        job_options({"preset": "huge"}, table, "tiny")


def test_the_job_form_has_one_field_per_option_plus_preset_and_name():
    assert list(JobForm.model_fields) == [o.name for o in FORM_OPTIONS] + ["preset", "name"]
    form = JobForm(width="12", joint="0.25")
    assert (form.width, form.joint, form.bits) == (12, 0.25, None)


def test_api_config_presets_cover_every_option():
    settings = Settings(preset="quick")
    cfg = api_config(settings, server_options(settings))
    names = [o["name"] for o in cfg["options"]]
    assert set(cfg["presets"]) == set(PRESETS) and all(list(p) == names for p in cfg["presets"].values())
    assert {o["name"]: o["default"] for o in cfg["options"]} == cfg["presets"]["quick"]


def test_the_image_formats_agree_between_code_and_docs():
    api = (ROOT / "docs" / "API.md").read_text()
    section = api.split("### Image formats", 1)[1].split("###", 1)[0]
    listed = re.search(r"`codec\.image\.SUPPORTED_FORMATS`[^:]*: ([A-Z0-9,\s]+) \(", section)
    assert listed is not None
    assert [f.strip() for f in listed.group(1).split(",")] == list(SUPPORTED_FORMATS)

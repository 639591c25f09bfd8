"""The ``spinr`` command: JSON outputs, and one-line errors without tracebacks for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from client.cli import main

FAST = ["--preset", "tiny", "--steps", "40", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, photo_crop: np.ndarray) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    img = d / "crop.png"
    Image.fromarray(photo_crop).save(img)
    out = d / "crop.spnr"
    assert main(["encode", str(img), "-o", str(out), *FAST]) == 0
    return {"dir": d, "image": img, "stream": out}


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    return json.loads(out)


def test_encode_json(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = files["dir"] / "j.spnr"
    info = run_json(capsys, ["encode", str(files["image"]), "-o", str(out), *FAST, "--json"])
    assert {"psnr", "bytes", "bpp", "params", "packets", "seconds"} <= set(info)
    assert info["bytes"] == out.stat().st_size
    assert info["packets"] == 1 + 3  # header + stage.0..2 of the tiny preset (2 hidden layers)
    assert 10.0 < info["psnr"] < 60.0


def test_encode_recipe_flags_reach_the_model(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = files["dir"] / "joint.spnr"
    argv = ["encode", str(files["image"]), "-o", str(out), *FAST, "--joint", "0.5", "--dropout", "0.01"]
    info = run_json(capsys, [*argv, "--qat", "0.2", "--bits", "6", "--json"])
    # The joint phase re-measures every prefix: one PSNR per stage, all of them decodable.
    assert len(info["stage_psnr"]) == 3 and all(p > 10.0 for p in info["stage_psnr"])
    assert run_json(capsys, ["info", str(out), "--json"])["model"] == "spinr"
    # Another model than the preset's drops the preset's SPINR options instead of failing on them.
    siren = files["dir"] / "siren.spnr"
    assert (
        main(
            [
                "encode",
                str(files["image"]),
                "-o",
                str(siren),
                "--preset",
                "quick",
                "--model",
                "siren",
                "--steps",
                "5",
                "--width",
                "8",
                "--depth",
                "1",
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )


def test_decode_info_eval(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    png = files["dir"] / "out.png"
    d = run_json(capsys, ["decode", str(files["stream"]), "-o", str(png), "--layers", "2", "--json"])
    assert d["stages_used"] == 2 and Image.open(png).size == (64, 48)
    d = run_json(capsys, ["decode", str(files["stream"]), "-o", str(png), "--scale", "2", "--json"])
    assert Image.open(png).size == (128, 96) and d["stages_used"] == 3
    run_json(capsys, ["decode", str(files["stream"]), "-o", str(png), "--size", "30x70", "--json"])
    assert Image.open(png).size == (30, 70)
    info = run_json(capsys, ["info", str(files["stream"]), "--json"])
    assert info["model"] == "spinr" and info["image"] == {"width": 64, "height": 48}
    assert [p["name"] for p in info["packets"]] == ["header", "stage.0", "stage.1", "stage.2"]
    ev = run_json(capsys, ["eval", str(files["stream"]), str(files["image"]), "--json"])
    assert (
        len(ev["psnr_by_layers"]) == 3
        and 0 < ev["ssim"] <= 1
        and ev["bytes"] == files["stream"].stat().st_size
    )
    assert main(["info", str(files["stream"])]) == 0
    assert "stage.2" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["encode", "{dir}/missing.png", "-o", "{dir}/x.spnr"], "does not exist"),
        (["encode", "{stream}", "-o", "{dir}/x.spnr"], "is not a readable image"),
        (
            ["encode", "{image}", "-o", "{dir}/x.spnr", "--bits", "40"],
            "bits 40 is out of range: allowed 2..16",
        ),
        (["encode", "{image}", "-o", "{dir}/x.spnr", "--model", "nope"], "unknown model 'nope'"),
        (["encode", "{image}", "-o", "{dir}/x.spnr", "--device", "tpu"], "device 'tpu' is not one of"),
        (["decode", "{image}", "-o", "{dir}/x.png"], "error"),
        (["decode", "{dir}/missing.spnr", "-o", "{dir}/x.png"], "cannot read"),
        (["decode", "{stream}", "-o", "{dir}/x.png", "--layers", "9"], "--layers 9 is out of range"),
        (["decode", "{stream}", "-o", "{dir}/x.png", "--size", "12"], "is not of the form WIDTHxHEIGHT"),
        (["eval", "{stream}", "{dir}/missing.png"], "does not exist"),
        (
            ["encode", "{image}", "-o", "{dir}/x.spnr", "--model", "siren", "--joint", "0.5"],
            "--joint applies to the spinr model only, not 'siren'",
        ),
        (["encode", "{image}", "-o", "{dir}/x.spnr", "--joint", "1"], "joint 1.0 is out of range"),
        (["encode", "{image}", "-o", "{dir}/x.spnr", "--dropout", "0.7"], "dropout 0.7 is out of range"),
        (["encode", "{image}", "-o", "{dir}/x.spnr", "--qat", "2"], "qat 2.0 is out of range"),
        (
            ["encode", "{image}", "-o", "{dir}/x.spnr", "--bits", "1"],
            "bits 1 is out of range: allowed 2..16",
        ),
    ],
)
def test_bad_input_gives_one_line_error(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    fmt = {k: str(v) for k, v in files.items()}
    capsys.readouterr()
    code = main([a.format(**fmt) for a in argv] + (["-q"] if argv[0] == "encode" else []))
    err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert "Traceback" not in err and err.strip().count("\n") == 0


def test_truncated_file_is_an_error_but_lenient_decode_reports_missing(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = files["stream"].read_bytes()
    bad = files["dir"] / "bad.spnr"
    # Flip a payload byte of the last packet: strict decoding fails, lenient decoding drops that layer.
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    capsys.readouterr()
    assert main(["decode", str(bad), "-o", str(files["dir"] / "b.png")]) == 1
    assert "CRC" in capsys.readouterr().err
    d = run_json(capsys, ["decode", str(bad), "-o", str(files["dir"] / "b.png"), "--lenient", "--json"])
    assert d["missing"] == [2] and d["stages_used"] == 2 and len(d["damaged"]) == 1


def test_netsim_proxy_is_a_netsim_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["netsim", "proxy", "--listen", "nowhere"]) != 0
    err = capsys.readouterr().err
    assert "--listen 'nowhere' must be HOST:PORT" in err and "Traceback" not in err
    assert main(["netsim", "stats", "--loss", "1.5"]) == 2
    assert "loss=1.5 is out of range" in capsys.readouterr().err


def test_the_old_proxy_command_points_to_its_new_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["proxy", "--listen", "127.0.0.1:0"]) == 2
    assert capsys.readouterr().err == "spinr proxy: this command is now `spinr netsim proxy`\n"


def test_every_command_in_the_table_is_reachable() -> None:
    import argparse

    from client.cli import COMMANDS, build_parser

    for path, *_ in COMMANDS:
        p = build_parser()
        for word in path.split():
            sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
            p = sub.choices[word]
        assert callable(p.get_default("_run")), path


def test_encode_help_lists_every_option(capsys) -> None:
    # argparse %-formats help strings: an option's "90 %" once crashed --help with a ValueError.
    from client.cli import main as cli_main

    with pytest.raises(SystemExit) as exc:
        cli_main(["encode", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "[--init {random,meta}]" in out and "90 %" in out

"""What a user trips over on the command line (issue 16), through ``main(argv)``.

Every option and the output path are checked before any work: a bad one costs one line on stderr,
no progress bar, and no training (``encode_image`` is replaced by a tripwire). Every command that
writes follows one rule for output folders. ``--lenient`` says what is missing. A closed stdout
(``spinr info --json | head``) ends the command quietly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from client.cli import STDOUT_CLOSED, main
from codec.bitstream import load_bitstream
from codec.errors import BitstreamError

TINY = ["--preset", "tiny", "--steps", "3", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, photo_crop: np.ndarray) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("checks")
    img = d / "crop.png"
    Image.fromarray(photo_crop[:16, :24]).save(img)
    stream = d / "crop.spnr"
    assert main(["encode", str(img), "-o", str(stream), *TINY]) == 0
    blocker = d / "a-file"
    blocker.write_text("not a folder")
    return {"dir": d, "image": img, "stream": stream, "blocker": blocker}


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training or decoding started: the test fails at once, naming it."""
    import codec.decoder
    import codec.encode

    def tripwire(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(codec.encode, "encode_image", tripwire)
    monkeypatch.setattr(codec.decoder.ProgressiveDecoder, "decode", tripwire)


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> str:
    capsys.readouterr()
    assert main(argv) == 1
    captured = capsys.readouterr()
    err = captured.err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "training" not in err and "step" not in err  # no progress bar was drawn
    assert captured.out == ""
    return err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "nosuch"], "--model: unknown model 'nosuch'; choose one of spinr, siren"),
        (["--joint", "1.5"], "--joint: joint 1.5 is out of range: allowed 0 <= joint < 1"),
        (["--model", "siren", "--joint", "0.5"], "--joint applies to the spinr model only"),
        (["--device", "cuda"], "device 'cuda' was asked for but CUDA is not available here"),
        (["--device", "cuda:x"], "device 'cuda:x' is not one of auto, cpu, cuda (or cuda:N)"),
        (["--device", "tpu"], "device 'tpu' is not one of auto, cpu, cuda (or cuda:N)"),
        (["--bits", "1"], "--bits: bits 1 is out of range: allowed 2..16"),
    ],
)
def test_encode_checks_every_option_before_training(
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_work: None,
    extra: list[str],
    message: str,
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a machine with a GPU
    out = files["dir"] / "never.spnr"
    argv = ["encode", str(files["image"]), "-o", str(out), "--preset", "tiny", *extra]
    one_line_error(capsys, argv, message)
    assert not out.exists()


def test_every_writing_command_checks_its_output_before_work(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    """One rule and one message for every command that writes: a file where a folder must be is
    refused before any work (training, decoding, connecting to a server, loading a dataset)."""
    blocked = files["blocker"] / "sub"
    image, stream = str(files["image"]), str(files["stream"])
    for argv in [
        ["encode", image, "-o", str(blocked / "x.spnr"), *TINY],
        ["decode", stream, "-o", str(blocked / "x.png")],
        ["demo", image, "--out", str(blocked), *TINY],
        ["stream", "someid", "--server", "http://127.0.0.1:9", "--out", str(blocked), "-q"],
        ["bench", "decode", "--size", "8", "--out", str(blocked)],
        ["experiment", "models", "--dataset", str(files["dir"]), "--out", str(blocked)],
    ]:
        flag = "-o" if "-o" in argv else "--out"
        target = argv[argv.index(flag) + 1]
        message = f"spinr {argv[0]}: error: {flag} '{target}': '{files['blocker']}' is a file, not a folder"
        one_line_error(capsys, argv, message)
    one_line_error(capsys, ["decode", stream, "-o", str(files["dir"])], "is a folder; give the file to write")


def test_missing_output_folders_are_created_and_said(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """encode and decode agree (encode refused, decode created silently): both create the folder
    on the way, as --out folders always were, and say so on stderr."""
    base = files["dir"] / "made"
    enc = base / "a" / "b" / "x.spnr"
    capsys.readouterr()
    assert main(["encode", str(files["image"]), "-o", str(enc), "--preset", "tiny", "--steps", "3"]) == 0
    assert enc.stat().st_size > 0
    assert f"spinr: created folder {enc.parent}" in capsys.readouterr().err
    png = base / "c" / "x.png"
    assert main(["decode", str(enc), "-o", str(png), "--json"]) == 0
    captured = capsys.readouterr()
    assert f"spinr: created folder {png.parent}" in captured.err
    assert json.loads(captured.out)["output"] == str(png) and png.stat().st_size > 0


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc (a folder nobody can write)")
def test_an_unwritable_output_is_refused_before_work(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    # /proc refuses new files even to root, which ignores permission bits.
    one_line_error(
        capsys,
        ["encode", str(files["image"]), "-o", "/proc/spinr-test/x.spnr", *TINY],
        "-o '/proc/spinr-test/x.spnr': cannot create the folder '/proc/spinr-test'",
    )
    one_line_error(
        capsys,
        ["decode", str(files["stream"]), "-o", "/proc/x.png"],
        "-o '/proc/x.png': cannot write in '/proc'",
    )


def truncated(files: dict[str, Path]) -> tuple[bytes, int]:
    """The file cut in the middle of its last packet, and how many layer packets are still whole
    (the framing's details do not matter: the last packet ends the file)."""
    data = files["stream"].read_bytes()
    bs, _ = load_bitstream(data)
    last = len(bs.packets()[-1].to_bytes())
    return data[: len(data) - last // 2], bs.header.num_units - 1


def test_lenient_names_what_is_missing(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A damaged layer record: strict decoding fails and says that --lenient would decode the units
    that arrived whole; lenient decoding decodes them and names the damaged record and the missing
    unit (in words on stderr, as lists in --json)."""
    data = bytearray(files["stream"].read_bytes())
    data[-5] ^= 0xFF  # a payload byte of the last packet (unit 2)
    bad = files["dir"] / "damaged.spnr"
    bad.write_bytes(bytes(data))
    out = files["dir"] / "damaged.png"
    one_line_error(
        capsys, ["decode", str(bad), "-o", str(out)], "(--lenient decodes what arrived whole: unit(s) 0, 1)"
    )
    assert main(["decode", str(bad), "-o", str(out), "--lenient"]) == 0
    captured = capsys.readouterr()
    assert "2 of 3 stage(s)" in captured.out
    lines = captured.err.splitlines()
    assert lines[0].startswith("warning: damaged: ") and "CRC" in lines[0]
    assert lines[1] == "warning: missing 1 of 3 unit(s): 2 (stage.2)"
    assert main(["decode", str(bad), "-o", str(out), "--lenient", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["missing"] == [2] and info["stages_used"] == 2 and info["stages"] == 3
    assert len(info["damaged"]) == 1
    assert main(["info", str(bad), "--lenient"]) == 0
    assert "missing 1 of 3 unit(s): 2 (stage.2)" in capsys.readouterr().out


def test_lenient_decodes_a_truncated_file_and_says_what_is_missing(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A file cut inside its last packet: strict decoding refuses it; --lenient decodes the packets
    that arrived whole and names the missing unit (the v2 reader keeps every whole packet)."""
    cut, whole_layers = truncated(files)
    with pytest.raises(BitstreamError, match="truncated"):
        load_bitstream(cut)
    path = files["dir"] / "cut.spnr"
    path.write_bytes(cut)
    out = files["dir"] / "cut.png"
    capsys.readouterr()
    assert main(["decode", str(path), "-o", str(out)]) == 1
    assert "truncated" in capsys.readouterr().err
    assert main(["decode", str(path), "-o", str(out), "--lenient", "--json"]) == 0
    captured = capsys.readouterr()
    info = json.loads(captured.out)
    assert info["stages_used"] == whole_layers and info["missing"] == [whole_layers]
    assert any("truncated" in d for d in info["damaged"]) and captured.err == ""  # --json: all in the JSON
    assert main(["decode", str(path), "-o", str(out), "--lenient"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: damaged: packet 3 at offset ") and "truncated" in err[0]
    assert err[1] == f"warning: missing 1 of 3 unit(s): {whole_layers} (stage.{whole_layers})"


@pytest.mark.parametrize("argv", [["info", "--json"], ["info"], ["decode", "-o", "{dir}/p.png", "--json"]])
def test_a_closed_stdout_ends_the_command_quietly(
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    """``spinr info --json | head``: the reader has gone before the output is written; no error
    message, no traceback, the exit status of a Unix tool killed by SIGPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    closed = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", closed)
    try:
        args = [argv[0], str(files["stream"]), *(a.format(dir=files["dir"]) for a in argv[1:])]
        assert main(args) == STDOUT_CLOSED
    finally:
        monkeypatch.undo()
        closed.close()  # stdout now points at /dev/null: closing flushes nowhere, quietly
    assert capsys.readouterr().err == ""


def test_a_closed_stdout_is_quiet_through_the_console_script(files: dict[str, Path]) -> None:
    """The same in a real process, including the interpreter's last flush of stdout at exit."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "from client.cli import run; run()",
                "info",
                "--json",
                str(files["stream"]),
            ],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == b"" and proc.returncode == STDOUT_CLOSED


def test_upload_checks_its_encode_options_before_sending(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``spinr upload`` has the option table's flags (every model), checked before the image is sent:
    the server address here answers nothing, so only a check made first can give these messages."""
    base = ["upload", str(files["image"]), "--server", "http://127.0.0.1:9"]
    one_line_error(
        capsys, [*base, "--model", "nosuch"], "--model: unknown model 'nosuch'; choose one of spinr"
    )
    one_line_error(
        capsys,
        [*base, "--model", "siren", "--joint", "0.5"],
        "--joint applies to the spinr model only, not 'siren'",
    )
    one_line_error(capsys, [*base, "--width", "0"], "--width: width 0 is out of range: allowed 1..4096")
    one_line_error(capsys, [*base, "--model", "wire"], "cannot reach")  # a valid model: then the server

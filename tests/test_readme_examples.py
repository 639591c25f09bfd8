"""The README's ``spinr`` examples, run: every command line of its ```sh blocks, in order.

Each runs as written except for what a test machine must change, and only that:
- ``photo.png`` is a 64x48 photograph crop in a scratch folder (the current directory);
- ``spinr encode`` gets ``--steps 3`` appended (last flag wins: the example's other flags stand), and
  ``--device cuda`` becomes ``cpu`` where CUDA is missing (the example's error is checked instead);
- ``spinr serve`` gets a free port and ``--preset tiny``, and the later commands reach it through
  ``$SPINR_SERVER`` (as the README's defaults do); 127.0.0.1:8000 and :8001 become the free ports;
  ``ID`` is the id ``spinr upload`` printed;
- ``spinr experiment`` runs on a 2-image dataset with ``--profile tiny`` (1 image, 1 seed, 5 steps;
  tests/test_experiments.py checks the results themselves), ``spinr bench`` with small sizes. ``docker compose`` lines are checked by tests/test_compose.py; ``make`` targets by CI itself.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _server import SPINR, Process, env, free_port, png, poll
from PIL import Image

from client.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_commands() -> list[list[str]]:
    """Every ``spinr ...`` line of the README's sh blocks, as argv (comments dropped)."""
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.M | re.S)
    lines = [shlex.split(line, comments=True) for block in blocks for line in block.splitlines()]
    return [words[1:] for words in lines if words and words[0] == "spinr"]


def section(*commands: str) -> list[list[str]]:
    return [argv for argv in readme_commands() if argv[0] in commands]


def test_every_readme_command_line_is_valid() -> None:
    argvs = readme_commands()
    assert len(argvs) >= 18
    for argv in argvs:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(
                f"README: `spinr {shlex.join(argv)}` does not parse (exit {exc.code})"
            ) from None
        assert callable(args._run), argv
    assert {a[0] for a in argvs} >= {
        "encode",
        "info",
        "decode",
        "eval",
        "serve",
        "upload",
        "stream",
        "netsim",
    }


@pytest.fixture
def scratch(tmp_path: Path, photo_crop: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "photo.png").write_bytes(png(photo_crop))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_codec_examples_run(scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    examples = section("encode", "info", "decode", "eval")
    assert [a[0] for a in examples].count("encode") == 6
    for argv in examples:
        if argv[0] == "encode":
            argv = [*argv, "--steps", "3"]
            if "cuda" in argv and not torch.cuda.is_available():
                capsys.readouterr()
                assert main(argv) == 1
                assert "CUDA is not available here; use --device cpu or auto" in capsys.readouterr().err
                argv = ["cpu" if a == "cuda" else a for a in argv]
        capsys.readouterr()
        assert main(argv) == 0, (argv, capsys.readouterr().err)
    # What the examples promise: the last encode (SPINR, 5 bits), 3 stages, a 4x decode, eval's JSON.
    out = capsys.readouterr().out
    assert json.loads(out.splitlines()[-1])["bytes"] == (scratch / "photo.spnr").stat().st_size
    assert Image.open(scratch / "stage3.png").size == (64, 48)
    assert Image.open(scratch / "zoom.png").size == (256, 192)


def test_the_server_examples_run(scratch: Path) -> None:
    """serve, upload, stream by id, the proxy, stream --upload through it, netsim stats."""
    port, proxy_port = free_port(), free_port()
    base = {"127.0.0.1:8000": f"127.0.0.1:{port}", "127.0.0.1:8001": f"127.0.0.1:{proxy_port}"}
    environ = {**env(), "SPINR_SERVER": f"http://127.0.0.1:{port}"}
    processes: list[Process] = []

    def start(argv: list[str], ready_port: int) -> None:
        proc = Process(argv, scratch / f"{argv[0]}-{ready_port}.log")
        processes.append(proc)

        def listening() -> bool:
            if not proc.alive():
                raise AssertionError(f"`spinr {shlex.join(argv)}` exited:\n{proc.output()}")
            import socket

            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", ready_port)) == 0

        poll(listening, 60, f"spinr {argv[0]} to listen", 0.1)

    def run(argv: list[str]) -> str:
        proc = subprocess.run(
            [*SPINR, *argv],
            cwd=scratch,
            env=environ,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, (argv, proc.stderr[-2000:])
        return proc.stdout

    os.environ.pop("SPINR_SERVER", None)
    image_id = ""
    try:
        for argv in section("serve", "upload", "stream", "netsim"):
            for old, new in base.items():
                argv = [a.replace(old, new) for a in argv]
            if argv[0] == "serve":
                start([*argv, "--port", str(port), "--preset", "tiny", "--device", "cpu"], port)
            elif argv[:2] == ["netsim", "proxy"]:
                start(argv, proxy_port)
            elif argv[0] == "upload":
                image_id = run(argv).split()[0]
                assert re.fullmatch(r"[A-Za-z0-9_-]+", image_id), image_id
            elif argv[0] == "stream":
                argv = [image_id if a == "ID" else a for a in argv]
                out = run([*argv, "--json"])
                result = json.loads(out)
                assert result["units"] > 0 and (scratch / "frames" / "final.png").is_file()
            else:
                assert isinstance(json.loads(run(argv)), dict)  # netsim stats --json
    finally:
        for proc in reversed(processes):
            proc.stop()
    assert image_id and len(processes) == 2


def test_the_study_examples_run(scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from skimage import data

    dataset = scratch / "tinyset"
    dataset.mkdir()
    Image.fromarray(data.astronaut()[100:164, 180:244]).save(dataset / "a.png")
    Image.fromarray(data.coffee()[100:164, 200:264]).save(dataset / "b.png")
    examples = section("experiment", "bench")
    assert {a[1] for a in examples if a[0] == "experiment"} == {"models", "rd", "neurons", "loss", "abr"}
    for argv in examples:
        if argv[0] == "experiment":
            argv = [str(dataset) if a.startswith("../shared/datasets/") else a for a in argv]
            argv = [
                *argv,
                "--profile",
                "tiny",
                "--device",
                "cpu",
                "--images",
                "1",
                "--seeds",
                "1",
                "--steps",
                "5",
            ]
            argv.append("--json")
        else:
            argv = [*argv, "--size", "16x12", "--net", "8x2", "--repeats", "1", "--images", "1", "--crop", "16", "--width", "8",
                    "--depth", "1", "--steps", "3", "--lrs", "1e-3", "--trials", "1", "--device", "cpu"]  # fmt: skip
        capsys.readouterr()
        assert main(argv) == 0, (argv, capsys.readouterr().err[-2000:])
        if argv[0] == "experiment":
            out = scratch / argv[argv.index("--out") + 1]
            assert (out / f"{argv[1]}.md").is_file() and (out / f"{argv[1]}.json").is_file()
    assert json.loads((scratch / "bench-out" / "bench.json").read_text()).keys() >= {
        "decode",
        "spinr_variants",
        "spinr_recipes",
    }
    load = json.loads((scratch / "bench-load" / "bench.json").read_text())["load"]
    assert load["errors"] == 0 and load["clients"] > 0

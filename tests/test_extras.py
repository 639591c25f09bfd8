"""Each command names the pyproject extra that brings what it lacks (issue 16: a decoder-only install
advised ``spinr[train]`` for ``stream`` and ``serve``, which it does not help).

A decoder-only install is simulated in this process: the third-party modules of every extra are
made unimportable (``sys.modules[name] = None``) and the project's modules are imported afresh, so
each command meets its missing modules where a real decoder-only install would.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from client.cli import COMMANDS, EXTRA_MODULES, PROJECT_PACKAGES

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
# The import name of each distribution the extras list (what `import` sees after `pip install`).
IMPORT_NAMES = {
    "torch": "torch",
    "tqdm": "tqdm",
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "websockets": "websockets",
    "python-multipart": "multipart",
    "httpx": "httpx",
    "matplotlib": "matplotlib",
    "scikit-image": "skimage",
    "pytorch-msssim": "pytorch_msssim",
    "ray": "ray",
}
BROUGHT_ALONG = {"pydantic": "fastapi", "starlette": "fastapi", "uvloop": "uvicorn"}
"""Modules an extra brings through one of its requirements (FastAPI is built on both; uvicorn[standard]
brings uvloop where it runs, which the load generator uses when it can import it)."""
EVERY_EXTRA_MODULE = sorted(set().union(*EXTRA_MODULES.values()) | {"python_multipart"})


def extras_from_pyproject() -> dict[str, set[str]]:
    """pyproject's extras as import names, with ``spinr[...]`` self-references resolved."""
    raw = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def resolve(extra: str) -> set[str]:
        out: set[str] = set()
        for req in raw[extra]:
            name = re.split(r"[\[<>=;~ ]", req, maxsplit=1)[0]
            if name == "spinr":
                for inner in re.search(r"\[(.*)\]", req).group(1).split(","):  # type: ignore[union-attr]
                    out |= resolve(inner.strip())
            elif name in IMPORT_NAMES:
                out.add(IMPORT_NAMES[name])
        return out

    return {extra: resolve(extra) for extra in raw}


def test_the_extra_table_is_what_pyproject_installs() -> None:
    extras = extras_from_pyproject()
    for extra, modules in EXTRA_MODULES.items():
        direct = {m for m in modules if m not in BROUGHT_ALONG}
        assert direct == extras[extra], extra
        assert all(BROUGHT_ALONG[m] in modules for m in modules - direct), extra
    used = {extra for _, _, extra, _ in COMMANDS if extra}
    assert used <= set(EXTRA_MODULES)
    # A server trains (its workers fit the uploaded images): its extra brings the training stack.
    assert extras["train"] <= extras["server"] and extras["train"] <= extras["experiments"]


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """``without(*modules)`` makes those modules unimportable and returns a fresh ``client.cli.main``."""

    before = set(sys.modules)
    blocked: set[str] = set()

    def block(*modules: str) -> Any:
        blocked.update(modules)
        for name in list(sys.modules):
            top = name.split(".")[0]
            if top in modules or top in PROJECT_PACKAGES:
                monkeypatch.delitem(sys.modules, name)
        for top in modules:
            monkeypatch.setitem(sys.modules, top, None)
        return importlib.import_module("client.cli").main

    yield block
    # The fresh copies imported meanwhile go; monkeypatch then puts every original module back, so
    # later tests see one codec.errors (one SpinrError class), not two.
    for name in set(sys.modules) - before:
        if name.split(".")[0] in PROJECT_PACKAGES | blocked:
            del sys.modules[name]


@pytest.fixture
def files(tmp_path: Path, photo_crop: np.ndarray) -> dict[str, str]:
    img = tmp_path / "crop.png"
    Image.fromarray(photo_crop[:8, :8]).save(img)
    return {"img": str(img), "dir": str(tmp_path)}


# One valid command line per command of the table that needs an extra.
ARGV = {
    "encode": ["encode", "{img}", "-o", "{dir}/x.spnr", "-q"],
    "demo": ["demo", "{img}", "--out", "{dir}/demo", "-q"],
    "serve": ["serve", "--port", "0"],
    "upload": ["upload", "{img}", "--server", "http://127.0.0.1:9"],
    "stream": ["stream", "someid", "--server", "http://127.0.0.1:9", "--out", "{dir}/s", "-q"],
    "netsim proxy": ["netsim", "proxy", "--listen", "127.0.0.1:0", "--upstream", "ws://127.0.0.1:9"],
    "experiment": ["experiment", "models", "--dataset", "{dir}", "--out", "{dir}/e"],
    "bench": ["bench", "decode", "--out", "{dir}/b"],
    "meta-train": ["meta-train", "--dataset", "{dir}", "--out", "{dir}/t.spnri"],
}


def test_a_decoder_only_install_names_the_extra_of_each_command(
    without: Callable[..., Any], files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    main = without(*EVERY_EXTRA_MODULE)
    needing = {path: extra for path, _, extra, _ in COMMANDS if extra}
    assert set(needing) == set(ARGV)
    for path, extra in needing.items():
        capsys.readouterr()
        assert main([a.format(**files) for a in ARGV[path]]) == 1, path
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        missing = re.fullmatch(rf"spinr {path}: error: (\w+) is not installed: .*\n", err)
        assert missing, err
        assert missing.group(1) in EXTRA_MODULES[extra], (path, err)  # the module really is in that extra
        assert f"`spinr {path}` needs the {extra} extra (pip install 'spinr[{extra}]'" in err, err
    # `spinr --help` lists a command whose extra is missing, with what it needs.
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = " ".join(capsys.readouterr().out.split())  # argparse wraps the help lines
    assert "serve run the streaming server (FastAPI + uvicorn) [needs spinr[server]:" in listing


def test_the_decoder_commands_work_without_any_extra(
    without: Callable[..., Any], files: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from client.cli import main as full_main

    stream = tmp_path / "x.spnr"
    assert (
        full_main(["encode", files["img"], "-o", str(stream), "--preset", "tiny", "--steps", "2", "-q"]) == 0
    )
    main = without(*EVERY_EXTRA_MODULE)
    for argv in (
        ["decode", str(stream), "-o", str(tmp_path / "x.png")],
        ["info", str(stream)],
        ["eval", str(stream), files["img"]],
        ["netsim", "stats", "--loss", "0.1", "--packets", "100"],
    ):
        capsys.readouterr()
        assert main(argv) == 0, (argv, capsys.readouterr().err)
    assert (tmp_path / "x.png").stat().st_size > 0


def test_a_module_outside_the_command_extra_names_its_own_extra(
    without: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``spinr demo`` with no image encodes scikit-image's photograph: that comes from ``experiments``."""
    main = without("skimage")
    assert main(["demo", "--out", str(tmp_path / "d"), "--preset", "tiny", "--steps", "2", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "spinr demo: error: skimage is not installed: `spinr demo` needs the experiments extra"
    )

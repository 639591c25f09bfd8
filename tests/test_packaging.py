"""The wheel ships the browser client as package data, and the server finds it through the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from server.routes.static import shipped_web_dir

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    "pyproject.toml",
    "README.md",
    "codec",
    "server",
    "client",
    "netsim",
    "streaming",
    "experiments",
    "benchmarks",
]


def test_the_wheel_holds_the_web_client_and_no_phantom_package_data(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the worktree
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("spinr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    web = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "client" / "web").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert "client/web/index.html" in web and web <= names
    # The shipped θ0 files (codec/meta/store.py) travel as package data too.
    inits = {p.relative_to(ROOT).as_posix() for p in (ROOT / "codec" / "meta" / "data").glob("*.spnri")}
    assert inits and inits <= names
    assert not any(n.startswith("server/static") for n in names)


def test_the_server_finds_the_web_client_through_the_package() -> None:
    assert shipped_web_dir() == ROOT / "client" / "web"

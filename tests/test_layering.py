"""Imports go one way, and the decoder needs no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> project packages it must never import
FORBIDDEN = {
    "netsim": {"codec", "server", "client", "experiments", "streaming", "benchmarks"},
    "codec": {"server", "client", "netsim", "experiments", "streaming", "benchmarks"},
    "streaming": {"server", "client", "experiments"},
    "server": {"client", "experiments"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    if package in ("codec", "netsim"):
        assert files, f"{package} has no modules"
    bad = {str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN[package]) for f in files}
    assert {k: v for k, v in bad.items() if v} == {}


DECODER_MODULES = [
    "codec",
    "codec.packets",
    "codec.payload",
    "codec.quant",
    "codec.bitstream",
    "codec.arch",
    "codec.decoder",
    "codec.describe",
    "codec.coords",
    "codec.metrics",
    "codec.image",
]


def test_decoder_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n" + "".join(f"import {m}\n" for m in DECODER_MODULES) + "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"

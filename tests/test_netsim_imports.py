"""netsim moves bytes: it imports nothing of spinr, and nothing beyond stdlib, numpy (and reedsolo)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

NETSIM = Path(__file__).resolve().parent.parent / "netsim"
FORBIDDEN = {"codec", "server", "client", "experiments", "streaming", "benchmarks", "torch"}
ALLOWED_THIRD_PARTY = {"numpy", "reedsolo"}


def imports(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports (netsim.x)"
            roots.add((node.module or "").split(".")[0])
    return roots


def test_netsim_imports_only_itself_stdlib_and_numpy():
    files = sorted(NETSIM.glob("*.py"))
    assert len(files) > 5
    found = {f.name: imports(f) for f in files}
    assert {n: sorted(r & FORBIDDEN) for n, r in found.items() if r & FORBIDDEN} == {}
    outside = {
        n: sorted(r - {"netsim", "__future__"} - ALLOWED_THIRD_PARTY - set(sys.stdlib_module_names))
        for n, r in found.items()
    }
    assert {n: r for n, r in outside.items() if r} == {}

"""Imports go one way, nothing imports itself in a circle, netsim stays free of the project, and the
decoder needs no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("codec", "netsim", "streaming", "experiments", "benchmarks", "server", "client")

# package -> project packages it must never import
FORBIDDEN = {
    "netsim": {"codec", "server", "client", "experiments", "streaming", "benchmarks"},
    "codec": {"server", "client", "netsim", "experiments", "streaming", "benchmarks"},
    "streaming": {"server", "client", "experiments", "benchmarks"},
    "experiments": {"server", "client", "benchmarks"},
    "benchmarks": {"server", "client"},
    "server": {"client", "experiments", "benchmarks"},
}
NETSIM_THIRD_PARTY = {"numpy"}
"""All netsim may import besides itself and the standard library (it has its own Reed-Solomon code)."""


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def runtime_imports(path: Path) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run (module level or in a function), not ``if TYPE_CHECKING``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in runtime_imports(path):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package} has no modules"
    bad = {str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN[package]) for f in files}
    assert {k: v for k, v in bad.items() if v} == {}


def test_netsim_imports_only_itself_stdlib_and_numpy() -> None:
    files = sorted((ROOT / "netsim").glob("*.py"))
    assert len(files) > 5
    for f in files:
        assert all(n.level == 0 for n in runtime_imports(f) if isinstance(n, ast.ImportFrom)), (
            f"{f.name}: use absolute imports (netsim.x)"
        )
    found = {f.name: imported_roots(f) for f in files}
    outside = {
        n: sorted(r - {"netsim", "__future__"} - NETSIM_THIRD_PARTY - set(sys.stdlib_module_names))
        for n, r in found.items()
    }
    assert {n: r for n, r in outside.items() if r} == {}


def module_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (``from a import b`` counts as ``a.b`` when
    that is a module)."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in runtime_imports(path):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif node.module and node.level == 0:
                edges |= {
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names
                }
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle() -> None:
    graph = module_graph()
    assert "codec.arch.base" in graph and "experiments.packet_loss" in graph
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


DECODER_MODULES = [
    "codec",
    "codec.packets",
    "codec.payload",
    "codec.quant",
    "codec.header",
    "codec.bitstream",
    "codec.arch",
    "codec.fourier_features",
    "codec.decoder",
    "codec.describe",
    "codec.coords",
    "codec.metrics",
    "codec.image",
    "codec.classical",
]


def test_decoder_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n" + "".join(f"import {m}\n" for m in DECODER_MODULES) + "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"

"""The browser client's module layout (client/web), checked statically; no browser needed.

The page and the decoder library are plain ES modules loaded without a build step, so a broken import
path, a module importing in a circle or a URL pointing outside the server would only show up when a
browser loads them. This reads every module's import statements and checks: each names an existing
file under client/web by a relative path, the graph has no cycle, imports go one way (codec/ below
ui/), no module passes 500 lines, spnr.js exports the API the README documents, and the README's
file table lists every module.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest

WEB = Path(__file__).resolve().parent.parent / "client" / "web"
MAX_LINES = 500
# import ... from "x" | import "x" | export ... from "x" | import("x"), but not inside JSDoc type comments
IMPORT_RE = re.compile(r'^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"|^\s*import\s+"([^"]+)"', re.M | re.S)
DYNAMIC_RE = re.compile(r"(?<![\w.])import\(\s*[\"']([^\"']+)[\"']\s*\)")


def modules() -> list[Path]:
    return sorted(p for p in WEB.rglob("*.js") if "vendor" not in p.relative_to(WEB).parts)


def strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    return re.sub(r"^\s*//[^\n]*", "", src, flags=re.M)


def imports(path: Path) -> list[str]:
    code = strip_comments(path.read_text())
    found = [a or b for a, b in IMPORT_RE.findall(code)]
    return found + DYNAMIC_RE.findall(code)


def resolve(path: Path, spec: str) -> Path:
    return (path.parent / spec).resolve()


def rel(path: Path) -> str:
    return PurePosixPath(path.relative_to(WEB)).as_posix()


def graph() -> dict[str, list[str]]:
    return {rel(p): [rel(resolve(p, s)) for s in imports(p)] for p in modules()}


def test_every_import_is_a_relative_path_to_a_file_here() -> None:
    seen = 0
    for path in modules():
        for spec in imports(path):
            seen += 1
            assert spec.startswith(("./", "../")), f"{rel(path)} imports {spec!r}: only relative paths load"
            assert spec.endswith(".js"), f"{rel(path)} imports {spec!r} without its .js extension"
            target = resolve(path, spec)
            assert WEB.resolve() in target.parents, f"{rel(path)} imports {spec!r} from outside client/web"
            assert target.is_file(), f"{rel(path)} imports {spec!r}, which does not exist"
    assert seen > 40  # the parser found the imports (a regex that matches nothing would pass above)


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {rel(p): len(p.read_text().splitlines()) for p in modules()}
    assert len(sizes) > 25
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}


def test_no_import_cycle() -> None:
    g = graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in g.get(node, []):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state and nxt in g:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in g:
        if node not in state:
            visit(node, [node])


def test_imports_go_one_way() -> None:
    for module, deps in graph().items():
        for dep in deps:
            if module.startswith("codec/"):
                assert dep.startswith(("codec/", "vendor/")), f"{module} (library) imports {dep}"
            if module.startswith("ui/"):
                assert dep.startswith("ui/") or dep in ("spnr.js", "gl.js"), (
                    f"{module} reaches into the library past its entry points: {dep}"
                )
            assert dep != "app.js", f"{module} imports the page's entry module"
    assert graph()["gl.js"] and all(d.startswith("codec/") for d in graph()["gl.js"])


def test_entry_points_and_their_exports() -> None:
    html = (WEB / "index.html").read_text()
    assert re.search(r'<script type="module" src="app.js">', html)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html), "index.html loads something from outside"
    # spnr.js re-exports the API client/web/README.md documents, each name from an existing module.
    readme = (WEB / "README.md").read_text()
    documented = set(re.findall(r"`(\w+)`", readme.split("Lower level:")[1].split("Every input")[0]))
    documented |= {"ProgressiveDecoder", "splitFile", "SpnrError", "SUPPORTED_MODELS", "errorText"}
    spnr = strip_comments((WEB / "spnr.js").read_text())
    exported = {
        name.strip()
        for block in re.findall(r"export\s*\{([^}]*)\}\s*from", spnr)
        for name in block.split(",")
        if name.strip()
    }
    assert len(documented) > 10 and documented <= exported, documented - exported
    for block, spec in re.findall(r"export\s*\{([^}]*)\}\s*from\s*\"([^\"]+)\"", spnr):
        src = strip_comments(resolve(WEB / "spnr.js", spec).read_text())
        for name in filter(None, (n.strip() for n in block.split(","))):
            assert re.search(rf"^export (?:async )?(?:const|function|class) {name}\b", src, re.M), (
                f"spnr.js re-exports {name} from {spec}, which does not define it"
            )


def test_readme_table_lists_every_module() -> None:
    readme = (WEB / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `"))
    cells = re.findall(r"`([\w./-]+)`", table)
    listed: set[str] = set()
    for cell in cells:
        if cell.endswith("/"):
            listed |= {rel(p) for p in modules() if rel(p).startswith(cell)}
        else:
            # "ui/format.js" or a bare "base.js" named inside a folder's row
            listed |= {rel(p) for p in modules() if rel(p) == cell}
    missing = sorted(set(map(rel, modules())) - listed)
    assert missing == [], f"client/web/README.md's table does not list {missing}"

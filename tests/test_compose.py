"""docker-compose.yml, docker-compose.gpu.yml and the Dockerfile agree with the project, without Docker.

No Docker engine here: the compose files are parsed (each service's command with spinr's own
parser), and the image's file list is built from the Dockerfile's COPY instructions. Every module a
service imports, followed through the project's imports (function-level ones too), must be in that
list, and the extras the Dockerfile installs must bring every third-party module they import.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shlex
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml

from client.cli import COMMANDS, EXTRA_MODULES, PROJECT_PACKAGES, build_parser

ROOT = Path(__file__).resolve().parent.parent
BASE_MODULES = {"numpy", "PIL", "msgpack", "zstandard", "constriction", "threadpoolctl"}
"""What a plain ``pip install spinr`` brings (pyproject's dependencies), as import names."""


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def gpu() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.gpu.yml").read_text())


def parse(argv: list[str]):
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(
            f"`spinr {' '.join(argv)}` is not a valid spinr command line (exit {exc.code})"
        ) from None


# -- the Dockerfile, read as Docker reads it ----------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def dockerfile_json(instruction: str) -> list[str]:
    (args,) = [a for w, a in instructions() if w == instruction]
    assert args.startswith("["), f"Dockerfile's {instruction} is not in exec form"
    return json.loads(args)


def ignored(rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or rel.startswith(p.rstrip("/") + "/") for p in patterns)


def image_files() -> set[str]:
    """The files the COPY instructions put in the image, as absolute paths inside it."""
    dockerignore = ROOT / ".dockerignore"
    patterns = [p.strip() for p in dockerignore.read_text().splitlines()] if dockerignore.exists() else []
    patterns = [p for p in patterns if p and not p.startswith("#")]
    workdir = PurePosixPath("/")
    files: set[str] = set()
    for word, args in instructions():
        if word == "WORKDIR":
            workdir = workdir / args
        if word != "COPY":
            continue
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        *sources, dest = parts
        target = workdir / dest
        for src in sources:
            path = ROOT / src
            assert path.exists(), f"Dockerfile copies {src}, which does not exist"
            if path.is_dir():
                for f in path.rglob("*"):
                    rel = f.relative_to(ROOT).as_posix()
                    if f.is_file() and "__pycache__" not in f.parts and not ignored(rel, patterns):
                        files.add(str(target / f.relative_to(path).as_posix()))
            else:
                name = path.name if dest.endswith("/") or len(sources) > 1 else ""
                files.add(str(target / name) if name else str(target))
    return files


def installed_extras() -> set[str]:
    """The extras of the ``pip install ".[...]"`` in the Dockerfile, ``all`` expanded."""
    runs = " ".join(a for w, a in instructions() if w == "RUN")
    match = re.search(r"""pip install [^&]*["']\.\[([\w,-]+)\]["']""", runs)
    assert match, "the Dockerfile installs no .[extras] of this project"
    extras = set(match.group(1).split(","))
    if "all" in extras:
        extras |= {"train", "server", "client", "experiments"}
    return extras - {"all"}


# -- what the services import ------------------------------------------------------------------


def module_file(module: str) -> Path | None:
    base = ROOT / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported(path: Path) -> set[str]:
    """Every module an ``import`` in the file names, wherever the statement is (function bodies too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}  # a submodule imported by name
    return out


def closure(roots: set[str]) -> tuple[set[Path], set[str]]:
    """Project files reached from ``roots`` through their imports, and the third-party modules."""
    seen: set[Path] = set()
    third: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        top = module.split(".")[0]
        if top not in PROJECT_PACKAGES:
            if top not in sys.stdlib_module_names and top != "__future__":
                third.add(top)
            continue
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imported(path))
    return seen, third


def spinr_argv(svc: dict) -> list[str]:
    """The ``spinr`` command line a service runs: its command under the image's entry point, or the
    ``exec spinr ...`` that ends a shell command (the Ray profile's server joins the cluster first)."""
    if svc.get("entrypoint", ["spinr"]) == ["spinr"]:
        return [str(a) for a in svc["command"]]
    assert svc["entrypoint"] == ["sh", "-c"], svc
    (script,) = svc["command"]
    assert script.count("&& exec spinr ") == 1, script
    return shlex.split(script.split("&& exec spinr ", 1)[1])


def spinr_services(compose: dict) -> dict[str, dict]:
    """Every service that runs ``spinr`` (not the Ray nodes, whose entry point is ``ray``)."""
    return {n: s for n, s in compose["services"].items() if s.get("entrypoint") != ["ray"]}


def service_roots(argv: list[str]) -> set[str]:
    """The modules ``spinr ARGV`` imports: the dispatcher (which loads every command of its table to
    build its parser) and the module of the command the service runs."""
    args = parse(argv)
    targets = {t.partition(":")[0] for _, t, _, _ in COMMANDS}
    return {"client.cli", *targets, args._run.__module__}


# -- tests -------------------------------------------------------------------------------------


def test_every_compose_command_is_a_spinr_command(compose, gpu):
    assert dockerfile_json("ENTRYPOINT") == ["spinr"]
    services = spinr_services(compose)
    assert set(services) == {"server", "proxy", "demo", "ray-server"}
    assert all("command" in svc for svc in compose["services"].values())  # no implicit command
    commands = {name: spinr_argv(svc) for name, svc in services.items()}
    seen = set()
    for name, argv in [*commands.items(), ("server (gpu)", gpu["services"]["server"]["command"])]:
        args = parse([str(a) for a in argv])
        assert callable(args._run), name
        seen.add(args._path)
    assert seen == {"serve", "netsim proxy", "stream"}
    parse(dockerfile_json("CMD"))
    # No ${VAR:?} that would make `docker compose up` fail before it starts anything.
    assert "${" not in (ROOT / "docker-compose.yml").read_text()


def test_services_are_wired_together(compose):
    s = compose["services"]
    server = parse(s["server"]["command"])
    assert server.host == "0.0.0.0" and server.port == 8000 and str(server.data_dir) == "/data"
    assert any(v.endswith(":/data") for v in s["server"]["volumes"]) and "spinr-data" in compose["volumes"]
    proxy = parse(s["proxy"]["command"])
    assert proxy.upstream == "ws://server:8000" and proxy.listen == "0.0.0.0:8001"
    assert s["proxy"]["depends_on"]["server"]["condition"] == "service_healthy"


def test_the_ray_profile_runs_a_head_a_worker_and_a_server_that_trains_there(compose):
    """``docker compose --profile ray up ray-server``: Ray's nodes and a server with ``--engine ray``,
    none of them part of a plain ``up``; only the server is published (on loopback)."""
    s = compose["services"]
    ray_services = {n for n, svc in s.items() if svc.get("profiles")}
    assert ray_services == {"ray-head", "ray-worker", "ray-server"}
    assert all(s[n]["profiles"] == ["ray"] for n in ray_services)
    head, worker = s["ray-head"]["command"], s["ray-worker"]["command"]
    assert head[:3] == ["start", "--head", "--block"] and head[head.index("--port") + 1] == "6379"
    assert worker[:3] == ["start", "--address", "ray-head:6379"] and "--block" in worker
    assert "ports" not in s["ray-head"] and "ports" not in s["ray-worker"]
    assert s["ray-worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"
    # The server joins as a node without CPUs (a Ray driver runs on a node), then trains on Ray.
    (script,) = s["ray-server"]["command"]
    assert script.startswith("ray start --address ray-head:6379 --num-cpus 0 --num-gpus 0 && exec spinr ")
    args = parse(spinr_argv(s["ray-server"]))
    assert args.engine == "ray" and args.ray_address == "auto" and str(args.data_dir) == "/data"
    assert any(v.startswith("spinr-ray-data:") for v in s["ray-server"]["volumes"])  # not the server's
    assert all(str(p).startswith("127.0.0.1:") for p in s["ray-server"]["ports"])
    assert "ray" in installed_extras()


def test_safe_by_default_published_on_loopback_with_an_optional_token(compose):
    """Nothing is published beyond this machine; the server answers to the name the other services
    use; SPINR_TOKEN, when set in the shell, reaches the server and the demo client."""
    from server.cli import allowed_hosts

    s = compose["services"]
    for name in ("server", "proxy"):
        assert all(str(p).startswith("127.0.0.1:") for p in s[name]["ports"]), (name, s[name]["ports"])
    server = parse(s["server"]["command"])
    assert {"localhost", "127.0.0.1", "server"} <= set(allowed_hosts(server.host, server.allowed_hosts))
    assert "*" not in server.allowed_hosts and server.allowed_origins == ()
    for name in ("server", "demo"):
        assert "SPINR_TOKEN" in s[name]["environment"], name


def test_one_command_demo_uploads_a_sample_and_streams_it_through_the_proxy(compose):
    """`docker compose up` runs the demo once: upload the image's sample photograph to the server,
    wait for it, stream it through the proxy into a volume."""
    demo = compose["services"]["demo"]
    assert "profiles" not in demo and demo["restart"] == "no"  # part of a plain `up`, run once
    args = parse(demo["command"])
    assert args._path == "stream" and args.target is None
    assert args.server == "http://server:8000" and args.via == "ws://proxy:8001"
    assert {k: v["condition"] for k, v in demo["depends_on"].items()} == {
        "server": "service_healthy",
        "proxy": "service_healthy",
    }
    out_volume = next(v for v in demo["volumes"] if v.endswith(f":{args.out}"))
    assert out_volume.split(":")[0] in compose["volumes"]
    # The sample is made when the image is built (scikit-image's photograph, from the experiments
    # extra), and the output folder exists for the image's user (a fresh volume copies its owner).
    runs = " ".join(a for w, a in instructions() if w == "RUN")
    for path in {str(args.upload), args.ref}:
        assert f"save('{path}')" in runs, path
    assert f"chown spinr /data {args.out}" in runs and "experiments" in installed_extras()


def test_the_image_holds_every_module_the_services_import(compose, gpu):
    files = image_files()
    commands = [spinr_argv(svc) for svc in spinr_services(compose).values()] + [
        gpu["services"]["server"]["command"],
        dockerfile_json("CMD"),
    ]
    roots = set().union(*(service_roots([str(a) for a in argv]) for argv in commands))
    project, third = closure(roots)
    assert len(project) > 60  # the walk really followed the imports
    missing = sorted(
        p.relative_to(ROOT).as_posix()
        for p in project
        if f"/app/{p.relative_to(ROOT).as_posix()}" not in files
    )
    assert missing == [], f"the services import files the Dockerfile does not copy: {missing}"
    assert "/app/client/web/index.html" in files  # the browser client the server serves
    # Every third-party module they import comes with the base install or an extra the image installs.
    brought = BASE_MODULES.union(*(EXTRA_MODULES[e] for e in installed_extras()))
    assert sorted(third - brought) == []
    # Each service's own command has its extra installed.
    extras = {path: extra for path, _, extra, _ in COMMANDS}
    for argv in commands:
        extra = extras[parse([str(a) for a in argv])._path]
        assert not extra or extra in installed_extras(), argv


def test_the_image_installs_the_whole_project(compose):
    """pip installs the packages pyproject lists from what was copied: a package left out of the
    COPYs would be dropped silently, and with it the commands it implements."""
    files = image_files()
    for name in ("pyproject.toml", "constraints.txt", "README.md"):  # pip reads all three
        assert f"/app/{name}" in files, name
    for package in PROJECT_PACKAGES:
        assert f"/app/{package}/__init__.py" in files, package
    assert installed_extras() >= set(EXTRA_MODULES)  # every command of `spinr` works in the image


def test_gpu_is_an_override_never_a_plain_up(compose, gpu):
    server = gpu["services"]["server"]
    devices = server["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert parse(server["command"]).device == "cuda"
    assert "cu" in server["build"]["args"]["TORCH_INDEX"]
    assert all("deploy" not in svc for svc in compose["services"].values())
    assert parse(compose["services"]["server"]["command"]).device == "cpu"


def test_dockerfile_installs_with_constraints():
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert re.search(r"pip install .*-c constraints\.txt", text)

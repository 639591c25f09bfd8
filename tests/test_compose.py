"""docker-compose.yml and the Dockerfile only run commands that exist in this project."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from client.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def parse(argv: list[str]):
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(
            f"`spinr {' '.join(argv)}` is not a valid spinr command line (exit {exc.code})"
        ) from None


def dockerfile_json(instruction: str) -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(rf"^{instruction}\s+(\[.*\])\s*$", text, re.MULTILINE)
    assert match, f"Dockerfile has no exec-form {instruction}"
    return json.loads(match.group(1))


def test_every_compose_command_is_a_spinr_command(compose):
    assert dockerfile_json("ENTRYPOINT") == ["spinr"]
    services = compose["services"]
    assert {"server", "proxy", "client"} <= set(services)
    commands = {name: svc["command"] for name, svc in services.items() if "command" in svc}
    assert set(commands) == set(services)  # nothing falls back to an implicit command
    seen = set()
    for name, argv in commands.items():
        args = parse([str(a) for a in argv])
        assert callable(args._run), name
        seen.add(args.command)
    assert {"serve", "netsim", "stream"} <= seen
    parse(dockerfile_json("CMD"))


def test_services_are_wired_together(compose):
    s = compose["services"]
    proxy = parse(s["proxy"]["command"])
    assert proxy.upstream == "ws://server:8000" and proxy.listen.endswith(":8001")
    client = parse(s["client"]["command"])
    assert client.server == "http://proxy:8001"
    server = parse(s["server"]["command"])
    assert server.host == "0.0.0.0" and str(server.data_dir) == "/data"
    assert any(v.endswith(":/data") for v in s["server"]["volumes"])
    assert "spinr-data" in compose["volumes"]


def test_gpu_is_optional(compose):
    s = compose["services"]
    gpu = s["server-gpu"]
    assert gpu["profiles"] == ["gpu"]  # never started by a plain `docker compose up`
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "deploy" not in s["server"]
    assert parse(gpu["command"]).device == "cuda"


def test_dockerfile_installs_with_constraints():
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert re.search(r"pip install .*-c constraints\.txt", text)
    for src in re.findall(r"^COPY\s+(\S+)", text, re.MULTILINE):
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"

"""Client-driven (pull) mode over a real uvicorn server on 127.0.0.1: the packet index, packets by
sequence number (direct packets of a refined stream included), and ``spinr stream --pull`` choosing
with its own controller."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _server import Server, png, run_cli

from codec.bitstream import load_bitstream
from codec.decoder import ProgressiveDecoder
from codec.packets import Packet
from streaming.abr import Goal, picture_psnr
from streaming.pull import PullPlanner, rungs_of_index


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    s = Server(tmp_path_factory.mktemp("pull") / "data")
    yield s
    s.close()


@pytest.fixture(scope="module")
def refined(server: Server, photo_crop: np.ndarray) -> dict[str, Any]:
    job_id = server.upload(png(photo_crop), depth=3, width=16, steps=200, refinements=1).json()["id"]
    assert server.wait_state(job_id, ("done", "failed"))["state"] == "done"
    bs, _ = load_bitstream(server.http.get(f"/api/images/{job_id}/bitstream.spnr").content, strict=True)
    return {"id": job_id, "bitstream": bs}


def test_the_index_lists_every_packet_and_each_can_be_pulled(server: Server, refined: dict[str, Any]) -> None:
    bs = refined["bitstream"]
    n = bs.header.num_units
    r = server.http.get(f"/api/images/{refined['id']}/packets")
    assert r.status_code == 200, r.text
    index = r.json()
    assert index["units"] == n and index["levels"] == 1 and index["stream_id"] == bs.stream_id
    rows = index["packets"]
    assert len(rows) == 3 * n and [row["seq"] for row in rows] == list(range(1, 3 * n + 1))
    data = bs.to_bytes()
    assert index["file_bytes"] == len(data) and index["header_bytes"] == len(bs.packets()[0].to_bytes())
    for row in rows:
        got = server.http.get(f"/api/images/{refined['id']}/packets/{row['seq']}")
        assert got.status_code == 200 and len(got.content) == row["bytes"]
        p = Packet.parse(got.content)
        assert p.seq == row["seq"] and p.unit == row["unit"] and (p.level or 0) == row["level"]
        assert got.headers["x-direct"] == str(row["direct"]).lower()
        if row["offset"] is not None:  # the same bytes as a range of the .spnr file (DASH-style)
            assert data[row["offset"] : row["offset"] + row["bytes"]] == got.content
        else:
            assert row["direct"] and p.payload[0] == 0
    assert server.http.get(f"/api/images/{refined['id']}/packets/0").content == bs.packets()[0].to_bytes()
    bad = server.http.get(f"/api/images/{refined['id']}/packets/{3 * n + 1}")
    assert bad.status_code == 404 and f"packets 0..{3 * n}" in bad.json()["detail"]
    assert server.http.get("/api/images/nope/packets").status_code == 404


def test_planner_pulls_direct_packets_without_a_goal_and_bases_on_a_budget(
    server: Server, refined: dict[str, Any]
) -> None:
    index = server.http.get(f"/api/images/{refined['id']}/packets").json()
    rungs = rungs_of_index(index)
    n = index["units"]
    planner = PullPlanner(rungs)
    pulled = []
    while (p := planner.next()) is not None:
        planner.arrived(p, rungs[p].bytes)
        pulled.append(p)
    assert pulled == [2 * n + u for u in range(n)]  # each unit whole: the one-shot bytes
    base = sum(r.bytes for r in rungs if r.level == 0 and not r.direct)
    planner = PullPlanner(rungs, Goal(byte_budget=base))
    while (p := planner.next()) is not None:
        planner.arrived(p, rungs[p].bytes)
    assert sum(rungs[x["packet"]].bytes for x in planner.pulls) <= base
    all_base = picture_psnr(rungs, set(range(n)))
    assert planner.psnr() is not None and all_base is not None and planner.psnr() >= all_base


def test_cli_pull_streams_the_whole_picture(server: Server, refined: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run_cli("stream", refined["id"], "--server", server.url, "--out", str(out), "--pull", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    bs = refined["bitstream"]
    want = ProgressiveDecoder.from_bitstream(bs).decode().rgb
    from codec.image import load_image

    assert np.array_equal(load_image(out / "final.png"), want)
    pull = res["server"][-1]
    n = bs.header.num_units
    assert pull["type"] == "pull" and [x["packet"] for x in pull["pulls"]] == [2 * n + u for u in range(n)]
    assert res["bytes"] == len(bs.packets()[0].to_bytes()) + sum(x["bytes"] for x in pull["pulls"])
    assert res["url"].endswith(f"/api/images/{refined['id']}/packets")


def test_cli_pull_within_a_byte_budget_and_its_errors(
    server: Server, refined: dict[str, Any], tmp_path: Path
) -> None:
    bs = refined["bitstream"]
    sizes = [len(p.to_bytes()) for p in bs.packets()]
    budget = sizes[0] + sizes[1] + sizes[2] + 3
    r = run_cli("stream", refined["id"], "--server", server.url, "--out", str(tmp_path / "b"), "--pull",
                "--budget", str(budget), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["bytes"] <= budget and res["received"]
    r = run_cli(
        "stream", refined["id"], "--server", server.url, "--out", str(tmp_path / "c"), "--pull", "--abr"
    )
    assert r.returncode != 0 and "--pull talks plain HTTP" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("stream", "nope", "--server", server.url, "--out", str(tmp_path / "d"), "--pull")
    assert r.returncode != 0 and "404" in r.stderr and "Traceback" not in r.stderr

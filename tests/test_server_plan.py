"""A job's plan in the API (issue 10): the network, the target and the pixel batches decided at
upload, the training-time estimate the worker measures before it trains (what ``spinr encode``
prints), and the server's width cap applied to the width the size model picks. Real server, real
SQLite, real worker."""

from __future__ import annotations

import sqlite3

import pytest
from _server import Server, png

from codec.bitstream import load_bitstream
from codec.sizemodel import params_of
from server import store as store_module
from server.states import JobState

CAP = 16


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("plan") / "data", "--cap", f"width={CAP}")
    yield s
    s.close()


def header_width(server: Server, job_id: str) -> int:
    r = server.http.get(f"/api/images/{job_id}/bitstream.spnr")
    assert r.status_code == 200, r.text
    bs, damaged = load_bitstream(r.content)
    assert damaged == []
    return int(bs.header.arch["width"])


def test_the_size_models_width_is_capped_and_the_plan_says_so(server, photo_crop):
    # trim off: the whole planned network is sent (30 steps leave a last stage a prefix may beat)
    r = server.upload(png(photo_crop), preset="quick", bpp=8, steps=30, trim="off")
    assert r.status_code == 202, r.text
    job = r.json()
    plan = job["plan"]
    # At 8 bpp the size model picks a 25-wide network for 64x48; this server allows 16.
    assert plan["width"] == CAP and plan["network"].startswith(f"spinr {CAP} wide x 3 hidden")
    assert plan["notes"] == [
        f"width capped at {CAP} (the size model chose 25 for the target): the file may come in under the target"
    ]
    assert plan["target_bytes"] == 64 * 48 and plan["target_bpp"] == 8.0
    assert plan["estimated_seconds"] is None  # measured by the worker when it starts
    # The capped network is pinned in the options the worker runs, the target as bytes.
    opts = job["options"]
    assert opts["width"] == CAP and opts["depth"] == 3 and opts["bytes"] == 64 * 48 and "bpp" not in opts
    assert opts["pe_frequencies"] == plan["pe_frequencies"]
    done = server.wait_state(job["id"], ("done", "failed"), timeout=120)
    assert done["state"] == "done", done
    assert header_width(server, job["id"]) == CAP
    assert done["result"]["params"] == params_of("spinr", CAP, 3, plan["pe_frequencies"])
    assert done["result"]["bytes"] <= 64 * 48
    assert plan["params"] == done["result"]["params"]


def test_a_plan_within_the_cap_is_left_alone_and_the_estimate_arrives(server, photo_crop):
    r = server.upload(png(photo_crop), preset="quick", bpp=2, steps=30)
    assert r.status_code == 202, r.text
    job = r.json()
    plan, opts = job["plan"], job["options"]
    assert plan["notes"] == [] and plan["width"] < CAP and "width" not in opts and opts["bpp"] == 2
    assert plan["batch_pixels"] == 0 and 0 < plan["memory_bytes"] < 2**30
    assert plan["steps"] == 30 and plan["target_bytes"] == 768
    done = server.wait_state(job["id"], ("done", "failed"), timeout=120)
    assert done["state"] == "done", done
    assert header_width(server, job["id"]) == plan["width"]
    est = done["plan"]["estimated_seconds"]
    # Measured on the worker's device: a positive time of the order of the real one (a loaded CPU
    # shifts both; the bound only catches a unit or step-count mistake).
    assert isinstance(est, float) and est > 0
    assert est < 50 * max(done["result"]["seconds"], 0.5)
    # The list shows the same plan.
    listed = next(j for j in server.http.get("/api/jobs").json()["jobs"] if j["id"] == job["id"])
    assert listed["plan"] == done["plan"]


def test_a_fixed_network_has_a_plan_too(server, photo_crop):
    r = server.upload(png(photo_crop), preset="tiny", steps=5)
    assert r.status_code == 202, r.text
    plan = r.json()["plan"]
    assert plan["network"] == "spinr 16 wide x 2 hidden" and plan["target_bytes"] is None
    assert plan["target_bpp"] is None and plan["notes"] == []
    done = server.wait_state(r.json()["id"], ("done", "failed"), timeout=120)
    assert done["state"] == "done" and done["result"]["params"] == plan["params"], (done, plan)
    # A fixed width over the cap is refused by the option's range, naming it.
    r = server.upload(png(photo_crop), preset="tiny", width=CAP + 1, steps=5)
    assert (
        r.status_code == 422 and f"width {CAP + 1}" in r.json()["detail"] and str(CAP) in r.json()["detail"]
    )


def test_an_old_database_gets_the_added_columns(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    old = store_module.SCHEMA
    for name, kind in store_module.ADDED_COLUMNS.items():
        old = old.replace(f",\n    {name} {kind}", "")
        assert name not in old  # the first schema
    db = sqlite3.connect(data / store_module.DB_NAME)
    db.executescript(old)
    db.close()
    s = store_module.Store(data)
    try:
        job = s.create_job("a" * 16, "x", {}, 4, 4, b"png", plan={"network": "n"})
        assert job["plan"] == {"network": "n", "estimated_seconds": None}
        s.transition(job["id"], JobState.RUNNING)
        s.update_progress(job["id"], estimated_seconds=2.345, phase="quantizing")
        assert s.get_job(job["id"])["plan"]["estimated_seconds"] == 2.3
        assert s.get_job(job["id"])["phase"] == "quantizing"
    finally:
        s.close()


def test_plan_encode_caps_the_size_models_width() -> None:
    from codec.config import apply_overrides, preset
    from codec.errors import ConfigError
    from codec.rate import plan_encode

    cfg = apply_overrides(preset("quick"), {"bpp": 8})
    free = plan_encode(cfg, 64, 48)
    assert free.cfg.model.width == 25 and free.uncapped_width is None and free.notes == []
    assert plan_encode(cfg, 64, 48, max_width=25).cfg.model.width == 25  # a cap that does not bind
    capped = plan_encode(cfg, 64, 48, max_width=10)
    m = capped.cfg.model
    assert m.width == 10 and capped.uncapped_width == 25 and capped.target_bytes == free.target_bytes
    # The widest network of at most 10 within the budget, its encoding re-chosen for that width.
    assert params_of("spinr", 10, 3, m.options["pe_frequencies"]) <= params_of(
        "spinr", 25, 3, free.cfg.model.options["pe_frequencies"]
    )
    assert "width capped at 10 (the size model chose 25 for the target)" in capped.describe()
    with pytest.raises(ConfigError, match="the width cap 2 is below the size model's narrowest network"):
        plan_encode(cfg, 64, 48, max_width=2)

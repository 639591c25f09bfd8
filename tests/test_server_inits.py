"""The server encodes from a θ0 (``init=meta``) and serves θ0 files by hash (``/api/inits``), against a
real ``spinr serve`` subprocess."""

from __future__ import annotations

import numpy as np
import pytest
from _server import Server, png

from codec.bitstream import load_bitstream
from codec.meta import store
from codec.meta.initfile import InitFile, write_init
from codec.meta.reptile import snapshot
from codec.models.base import build_model


@pytest.fixture(scope="module")
def theta0(tmp_path_factory) -> tuple[InitFile, str]:
    import torch

    folder = tmp_path_factory.mktemp("inits")
    torch.manual_seed(4)
    init = snapshot(build_model("spinr", 16, 2, {}))  # the tiny preset's network
    write_init(folder / "tiny.spnri", init)
    return init, str(folder)


@pytest.fixture(scope="module")
def server(tmp_path_factory, theta0):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(store.ENV_PATH, theta0[1])
        s = Server(tmp_path_factory.mktemp("inits-api") / "data")
    yield s
    s.close()


def test_meta_job_and_its_theta0_by_hash(server, theta0, photo_crop, monkeypatch) -> None:
    init, folder = theta0
    listed = server.http.get("/api/inits").json()["inits"]
    assert {
        "hash": init.hash_hex,
        "model": "spinr",
        "arch": init.arch,
        "params": store.param_count(init),
    } in listed
    r = server.upload(png(photo_crop), name="meta", init="meta", steps=30)
    assert r.status_code == 202, r.text
    job = server.wait_state(r.json()["id"], ("done", "failed"))
    assert job["state"] == "done", job
    header = server.http.get(f"/api/images/{job['id']}/header").json()
    assert header["init"] == init.hash_hex
    got = server.http.get(f"/api/inits/{init.hash_hex}.spnri")
    assert got.status_code == 200 and got.content == init.to_bytes()
    assert InitFile.parse(got.content).hash == init.hash
    data = server.http.get(f"/api/images/{job['id']}/bitstream.spnr").content
    assert load_bitstream(data)[0].header.init == init.hash


def test_bad_and_unknown_hashes(server) -> None:
    r = server.http.get("/api/inits/0123456789abcdef.spnri")
    assert r.status_code == 404 and "no θ0 0123456789abcdef" in r.json()["detail"]
    r = server.http.get("/api/inits/NOTAHASH.spnri")
    assert r.status_code == 422 and "16 lowercase hex digits" in r.json()["detail"]
    r = server.upload(png(np.zeros((8, 8, 3), np.uint8)), init="bogus")
    assert r.status_code == 422 and "init" in r.json()["detail"]

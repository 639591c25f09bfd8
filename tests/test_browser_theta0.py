"""Residual streams (θ0 + Δθ, header extension 0x83) in the browser decoder against numpy: the same
float32 weights bit for bit, the same pictures at every prefix and with a lost unit concealed by θ0's;
the θ0 file checked (sha256, hash, units) before use; a stream whose θ0 is missing named
(client/web/codec/theta0.js, decoder.js)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _browser import b64, compare, rgb_of

from codec.bitstream import Bitstream, make_header_packet
from codec.config import preset
from codec.decoder import ProgressiveDecoder
from codec.encode import encode_image
from codec.errors import InitError
from codec.meta import store
from codec.meta.initfile import InitFile, write_init
from codec.meta.reptile import snapshot
from codec.models.base import build_model

pytestmark = pytest.mark.browser

RUN = """([init, hash, packets, conceal, skip]) => {
  const L = window.spnrLib;
  const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const dec = new L.ProgressiveDecoder({ conceal });
  if (init) dec.addInit(L.parseInit(bytes(init), hash));
  const status = packets.map((p, i) => (skip.includes(i) ? null : dec.addPacket(bytes(p))));
  const b64 = (a) => { const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength); let s = "";
    for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000));
    return btoa(s); };
  if (!dec.header) return { status };
  const params = {};
  for (const [i, t] of dec.params) params[i] = Object.fromEntries(Object.entries(t).map(([n, v]) => [n, b64(v.values)]));
  const pictures = [];
  const top = dec.usableDepth();
  for (let d = 1; d <= top; d++) {
    const rgba = dec.decode(undefined, undefined, { depth: d, backend: "js" });
    pictures.push(b64(rgba));
  }
  return { status, params, pictures, depth: top };
}"""


@pytest.fixture(scope="module")
def residual(
    tmp_path_factory: pytest.TempPathFactory, photo_crop: np.ndarray
) -> tuple[Bitstream, InitFile, Path]:
    import torch

    folder = tmp_path_factory.mktemp("inits")
    torch.manual_seed(11)
    init = snapshot(build_model("spinr", 16, 2, {}))
    write_init(folder / "t.spnri", init)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(store.ENV_PATH, str(folder))
        cfg = preset("tiny")
        cfg.train.init = "meta"
        bs = encode_image(photo_crop, cfg).bitstream
    return bs, init, folder


def _run(
    page: Any, init: bytes | None, hash_hex: str, bs: Bitstream, conceal: str = "prefix", skip=()
) -> Any:
    packets = [b64(p.to_bytes()) for p in bs.packets()]
    return page.evaluate(RUN, [b64(init) if init else None, hash_hex, packets, conceal, list(skip)])


def test_residual_stream_decodes_alike(page: Any, residual, photo_crop, monkeypatch) -> None:
    bs, init, folder = residual
    monkeypatch.setenv(store.ENV_PATH, str(folder))
    assert _decodes_alike(page, init, bs, photo_crop, "theta0") == 3


def _decodes_alike(page: Any, init: InitFile, bs: Bitstream, image: np.ndarray, label: str) -> int:
    """Every packet of ``bs`` accepted by the browser, its weights those of numpy's decoder bit for
    bit, its picture at every depth numpy's; returns the depth both reach."""
    got = _run(page, init.to_bytes(), init.hash_hex, bs)
    assert all(s["accepted"] for s in got["status"]), got["status"]
    numpy = ProgressiveDecoder.from_bitstream(bs)
    for u, tensors in numpy.params.items():
        for name, values in tensors.items():
            js = np.frombuffer(__import__("base64").b64decode(got["params"][str(u)][name]), "<f4")
            assert js.view(np.uint32).tolist() == values.ravel().view(np.uint32).tolist(), (u, name)
    h, w = image.shape[:2]
    assert got["depth"] == numpy.depths
    for d, text in enumerate(got["pictures"], start=1):
        compare(rgb_of(text, w, h), numpy.decode(depth=d).rgb, f"{label} depth {d}")
    return int(got["depth"])


def test_lost_unit_concealed_with_theta0_alike(page: Any, residual, photo_crop, monkeypatch) -> None:
    bs, init, folder = residual
    monkeypatch.setenv(store.ENV_PATH, str(folder))
    got = _run(page, init.to_bytes(), init.hash_hex, bs, "theta0", skip=[2])  # packet 2 = unit 1
    lost = Bitstream(bs.header, {u: v for u, v in bs.units.items() if u != 1}, bs.stream_id)
    numpy = ProgressiveDecoder.from_bitstream(lost, conceal="theta0")
    h, w = photo_crop.shape[:2]
    assert got["depth"] == 3
    compare(rgb_of(got["pictures"][-1], w, h), numpy.decode().rgb, "theta0 concealed")


def test_missing_or_damaged_theta0_is_named(page: Any, residual) -> None:
    bs, init, _ = residual
    got = _run(page, None, init.hash_hex, bs)
    assert not got["status"][0]["accepted"]
    assert f"coded from θ0 {init.hash_hex}, which this decoder does not have" in got["status"][0]["error"]
    bad = bytearray(init.to_bytes())
    bad[40] ^= 1
    err = page.evaluate(
        """([b, h]) => { try { window.spnrLib.parseInit(Uint8Array.from(atob(b), (c) => c.charCodeAt(0)), h); return null; }
                         catch (e) { return e.message; } }""",
        [b64(bytes(bad)), init.hash_hex],
    )
    assert err == f"θ0 file {init.hash_hex} is damaged: its sha256 does not match its contents"
    other = "0" * 16
    err = page.evaluate(
        """([b, h]) => { try { window.spnrLib.parseInit(Uint8Array.from(atob(b), (c) => c.charCodeAt(0)), h); return null; }
                         catch (e) { return e.message; } }""",
        [b64(init.to_bytes()), other],
    )
    assert err == f'θ0 file {other} holds θ0 "{init.hash_hex}", not the one asked for'


def test_sha256_matches_hashlib(page: Any) -> None:
    rng = np.random.default_rng(3)
    for n in (0, 1, 55, 56, 63, 64, 65, 1000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        got = page.evaluate(
            "(b) => Array.from(window.spnrLib.sha256(Uint8Array.from(atob(b), (c) => c.charCodeAt(0))))",
            b64(data),
        )
        assert bytes(got) == hashlib.sha256(data).digest(), n


def test_trimmed_residual_stream_decodes_alike(
    page: Any, residual, photo_crop, monkeypatch, tmp_path
) -> None:
    """A stream sent without θ0's last stage (``--trim``, 300 bytes: the whole network does not fit)
    takes θ0's first units in the browser as in numpy; a stream deeper than its θ0 is refused alike."""
    _, init, folder = residual
    monkeypatch.setenv(store.ENV_PATH, str(folder))
    cfg = preset("tiny")
    cfg.train.init, cfg.train.steps, cfg.rate.bytes = "meta", 300, 300
    bs = encode_image(photo_crop, cfg).bitstream
    assert bs.header.init == init.hash and bs.header.arch["hidden_layers"] < init.arch["hidden_layers"]
    assert _decodes_alike(page, init, bs, photo_crop, "trimmed theta0") == bs.header.arch["hidden_layers"] + 1
    import copy

    import torch

    torch.manual_seed(12)
    write_init(
        tmp_path / "deeper.spnri", snapshot(build_model("spinr", 16, 3, {}))
    )  # code a stream from it ...
    monkeypatch.setenv(store.ENV_PATH, f"{folder}{os.pathsep}{tmp_path}")
    cfg.rate.bytes, cfg.rate.trim = None, "off"
    cfg.model.hidden_layers = 3
    deeper = copy.deepcopy(encode_image(photo_crop, cfg).bitstream.header)
    assert deeper.arch["hidden_layers"] == 3
    deeper.init = init.hash  # ... and name the shallower one
    want = f"θ0 {init.hash_hex} has hidden_layers=2, the stream hidden_layers=3"
    with pytest.raises(InitError, match=want):
        ProgressiveDecoder(deeper)
    status = page.evaluate(
        """([init, hash, packet]) => { const L = window.spnrLib;
             const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
             const dec = new L.ProgressiveDecoder({});
             dec.addInit(L.parseInit(bytes(init), hash));
             return dec.addPacket(bytes(packet)); }""",
        [b64(init.to_bytes()), init.hash_hex, b64(make_header_packet(deeper, 1).to_bytes())],
    )
    assert not status["accepted"] and want in status["error"], status

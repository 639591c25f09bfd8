"""θ0 files (``.spnri``): bit-exact round trips, refusals of damaged and mismatched files, the store's
lookup by hash and the header's extension 0x83 (codec/meta/initfile.py, codec/meta/store.py)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from codec.arch import decoder_for
from codec.errors import InitError
from codec.meta import store
from codec.meta.initfile import DIGEST_BYTES, HASH_BYTES, InitFile, read_init, write_init
from codec.mpack import pack
from codec.varint import uvarint

ARCH = {"width": 6, "hidden_layers": 2, "first_omega_0": 30.0, "hidden_omega_0": 30.0, "head": "per_stage",
        "residual": True, "pe_frequencies": 3, "pe_scale": 1.4}  # fmt: skip


def make_init(seed: int = 0, arch: dict | None = None) -> InitFile:
    arch = dict(arch or ARCH)
    rng = np.random.default_rng(seed)
    specs = decoder_for("spinr", arch).units()
    weights = {
        u: {n: rng.normal(size=shape).astype(np.float32) for n, shape in s.tensors}
        for u, s in enumerate(specs)
    }
    return InitFile("spinr", arch, weights, {"note": "test"})


def test_round_trip_is_bit_exact(tmp_path):
    init = make_init()
    data = init.to_bytes()
    back = InitFile.parse(data)
    assert back.to_bytes() == data and back.hash == init.hash and len(back.hash) == HASH_BYTES
    for u in init.weights:
        for n, a in init.weights[u].items():
            assert back.weights[u][n].tobytes() == a.tobytes()
    write_init(tmp_path / "a.spnri", init)
    assert (tmp_path / "a.spnri").read_bytes() == data
    assert read_init(tmp_path / "a.spnri").hash_hex == init.hash_hex
    # The hash names the weights and the arch, not the training notes.
    assert InitFile("spinr", dict(ARCH), init.weights, {"other": 1}).hash == init.hash
    assert make_init(seed=1).hash != init.hash


def test_every_flipped_byte_is_refused():
    data = bytearray(make_init().to_bytes())
    for at in range(0, len(data), max(1, len(data) // 97)):
        bad = bytearray(data)
        bad[at] ^= 0x10
        with pytest.raises(InitError):
            InitFile.parse(bytes(bad))
    with pytest.raises(InitError, match=r"damaged: its sha256 does not match"):
        InitFile.parse(bytes(data[:-40]) + bytes(data[-DIGEST_BYTES:]))
    with pytest.raises(InitError, match=r"is not a θ0 file: it starts b'\\x89PNG"):
        InitFile.parse(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(InitError, match=r"truncated: 6 bytes"):
        InitFile.parse(b"SPNRI\x01")


def _forge(info: dict, weights: bytes) -> bytes:
    """A file with a valid digest around chosen contents (what a careless writer could produce)."""
    raw = pack(info)
    body = b"SPNRI\x01" + uvarint(len(raw)) + raw + weights
    return body + hashlib.sha256(body).digest()


def test_mismatched_contents_are_refused_precisely():
    init = make_init()
    specs = init.specs
    units = [[s.name, [[n, list(shape)] for n, shape in s.tensors]] for s in specs]
    flat = b"".join(
        init.weights[u][n].astype("<f4").tobytes() for u, s in enumerate(specs) for n, _ in s.tensors
    )
    info = {"model": "spinr", "arch": ARCH, "units": units, "hash": init.hash_hex, "meta": {}}
    assert InitFile.parse(_forge(info, flat)).hash == init.hash
    with pytest.raises(
        InitError, match=r"says its hash is '0000000000000000'; its contents hash to " + init.hash_hex
    ):
        InitFile.parse(_forge({**info, "hash": "0" * 16}, flat))
    with pytest.raises(InitError, match=r"holds \d+ bytes of weights; its spinr arch needs \d+"):
        InitFile.parse(_forge(info, flat[:-4]))
    wrong = [list(u) for u in units]
    wrong[1] = [units[1][0], [[units[1][1][0][0], [7, 6]], *units[1][1][1:]]]
    with pytest.raises(InitError, match=r"lists units .*; its spinr arch implies"):
        InitFile.parse(_forge({**info, "units": wrong}, flat))
    with pytest.raises(InitError, match=r"its arch is invalid: header arch field 'width' is 0"):
        InitFile.parse(_forge({**info, "arch": {**ARCH, "width": 0}}, flat))
    with pytest.raises(InitError, match=r"names model 'nope'"):
        InitFile.parse(_forge({**info, "model": "nope"}, flat))
    nan = bytearray(flat)
    nan[:4] = np.float32(np.nan).tobytes()
    with pytest.raises(InitError, match=r"non-finite"):
        InitFile.parse(_forge(info, bytes(nan)))
    # Shapes checked when built in memory too.
    bad = {u: dict(t) for u, t in init.weights.items()}
    bad[0]["in_bias"] = np.zeros(5, np.float32)
    with pytest.raises(
        InitError, match=r"unit 0 \(stage.0\) tensor 'in_bias' has shape \[5\]; expected \[6\]"
    ):
        InitFile("spinr", dict(ARCH), bad)
    # A θ0 for another network is refused by the first field that differs.
    with pytest.raises(InitError, match=rf"θ0 {init.hash_hex} has width=6, the stream width=7"):
        init.check_matches("spinr", {**ARCH, "width": 7})
    with pytest.raises(InitError, match=r"is for spinr, the stream is siren"):
        init.check_matches("siren", ARCH)


def test_store_finds_by_hash_and_names_a_missing_one(tmp_path, monkeypatch):
    init = make_init(seed=5)
    missing = make_init(seed=6).hash
    with pytest.raises(InitError, match=rf"coded from θ0 {missing.hex()}, which this decoder does not have"):
        store.find(missing)
    write_init(tmp_path / "x.spnri", init)
    monkeypatch.setenv(store.ENV_PATH, str(tmp_path))
    assert store.find(init.hash).hash == init.hash
    assert store.path_of(init.hash) == tmp_path / "x.spnri"


def test_shipped_files_are_valid_package_data():
    files = sorted(store.shipped_dir().glob("*.spnri"))
    assert files, "the package ships θ0 files (codec/meta/data)"
    for f in files:
        init = read_init(f)
        assert f.stat().st_size < 64 * 1024
        assert init.model in ("spinr", "siren")

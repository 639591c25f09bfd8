"""The rate-quality ladder (header extension 0x02): layout, parsing, what the encoder measures, spinr info."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _bitstreams import siren_arch

from codec.bitstream import StreamHeader, load_bitstream, write_file
from codec.config import preset
from codec.decoder import ProgressiveDecoder
from codec.encode import EncodeResult, encode_image
from codec.errors import BitstreamError, ConfigError
from codec.header import EXT_LADDER, parse_header_payload
from codec.ladder import Ladder, Rung, psnr_from_u16, psnr_u16
from codec.metrics import psnr


def test_layout_byte_for_byte_and_round_trip():
    ladder = Ladder.from_sizes([130, 5, 70000], [None, 23.456, math.inf])
    data = ladder.to_bytes()
    # 130 * 2 = 0x104 (no picture), 5 * 2 + 1 = 11 then 2346, 140001 then 0xffff
    assert data == bytes([1, 3, 0x84, 0x02, 0x0B, 0x09, 0x2A, 0xE1, 0xC5, 0x08, 0xFF, 0xFF])
    back = Ladder.parse(data, 3)
    assert back.rungs == (Rung(0, 130, None), Rung(1, 5, 23.46), Rung(2, 70000, math.inf))
    assert back.cumulative_bytes() == [130, 135, 70135]
    assert back.to_json()[2] == {"unit": 2, "bytes": 70000, "cumulative_bytes": 70135, "psnr": "inf"}
    assert psnr_u16(0.001) == 0 and psnr_from_u16(1) == 0.01
    assert psnr_u16(1e9) == 0xFFFE


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "truncated: ladder version missing"),
        (bytes([3, 0]), "has version 3; this decoder reads versions 1 and 2"),
        (bytes([2, 0, 2]), r"ladder refinement levels 0 is out of range|ladder refinement levels"),
        (bytes([2, 1, 2, 5, 5, 5]), "lists 4 packets but holds only 3 more bytes"),
        (bytes([1, 2, 5]), "lists 2 packets but holds only 1 more bytes"),
        (bytes([1, 2, 7, 0]), "truncated: ladder packet 0 PSNR missing"),
        (bytes([1, 2, 1, 4]), r"ladder packet 0 bytes"),
        (bytes([1, 2, 4, 4, 9]), "has 1 bytes after its 2 packets"),
        (bytes([1, 3, 4, 4, 4]), "lists 3 packets, the header has 2 units"),
    ],
)
def test_bad_ladders_are_refused_by_name(data, match):
    with pytest.raises(BitstreamError, match=match):
        Ladder.parse(data, 2)


def test_writer_refuses_what_it_cannot_write():
    with pytest.raises(ConfigError, match="packet-number order"):
        Ladder((Rung(1, 10, None),)).to_bytes()
    with pytest.raises(ConfigError, match="0 bytes is out of range"):
        Ladder.from_sizes([0], [None]).to_bytes()
    with pytest.raises(ConfigError, match="must be a number >= 0"):
        Ladder.from_sizes([4], [float("nan")]).to_bytes()


def test_header_carries_and_checks_the_ladder():
    arch = siren_arch(8, 2) | {"head": "shared", "residual": False}
    header = StreamHeader("spinr", dict(arch), 16, 16, [20.0, 21.0, 22.0])
    n = header.num_units
    header.extensions[EXT_LADDER] = Ladder.from_sizes([40] * n, [None] * (n - 1) + [22.0]).to_bytes()
    back = parse_header_payload(header.to_payload())
    assert back.ladder is not None and back.ladder.rungs[-1] == Rung(n - 1, 40, 22.0)
    wrong = StreamHeader("spinr", dict(arch), 16, 16, [20.0])
    wrong.extensions[EXT_LADDER] = Ladder.from_sizes([40] * (n + 1), [None] * (n + 1)).to_bytes()
    with pytest.raises(BitstreamError, match=f"lists {n + 1} packets, the header has {n} units"):
        parse_header_payload(wrong.to_payload())
    assert StreamHeader("spinr", dict(arch), 16, 16).ladder is None


def _tiny(model: str, photo: np.ndarray, steps: int = 40) -> EncodeResult:
    cfg = preset("tiny").replace(
        **{
            "train.device": "cpu",
            "train.steps": steps,
            "model.name": model,
            "model.width": 16,
            "model.hidden_layers": 2,
        }
    )
    if model != "spinr":
        cfg.model.options = {}
    return encode_image(photo, cfg)


@pytest.fixture(scope="module")
def spinr_small(photo_crop: np.ndarray) -> EncodeResult:
    return _tiny("spinr", photo_crop)


def test_encoder_measures_every_prefix_of_spinr(spinr_small: EncodeResult, photo_crop: np.ndarray):
    bs = spinr_small.bitstream
    ladder = bs.header.ladder
    assert ladder is not None and len(ladder) == bs.header.num_units
    packets = bs.packets()
    assert [r.bytes for r in ladder.rungs] == [len(p.to_bytes()) for p in packets[1:]]
    pictures = 0
    for k, rung in enumerate(ladder.rungs):  # decode exactly the packets 0..k and compare
        dec = ProgressiveDecoder()
        for p in packets[: k + 2]:
            dec.add_packet(p.to_bytes())
        if rung.psnr is None:
            assert dec.plan() is None
            continue
        pictures += 1
        assert rung.psnr == pytest.approx(psnr(dec.decode().rgb, photo_crop), abs=0.006)
    assert pictures == len(spinr_small.stage_psnr)  # every depth is a rung
    # and it survives the file
    again, _ = load_bitstream(bs.to_bytes())
    assert again.header.ladder == ladder


def test_non_progressive_models_have_one_picture_at_the_end(photo_crop: np.ndarray):
    res = _tiny("siren", photo_crop, steps=20)
    ladder = res.bitstream.header.ladder
    assert ladder is not None
    assert [r.psnr for r in ladder.rungs[:-1]] == [None] * (len(ladder) - 1)
    assert ladder.rungs[-1].psnr == pytest.approx(res.psnr, abs=0.006)


def test_spinr_info_shows_the_ladder(spinr_small: EncodeResult, tmp_path, capsys):
    from client.cli import main

    path = tmp_path / "s.spnr"
    write_file(path, spinr_small.bitstream)
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    ladder = spinr_small.bitstream.header.ladder
    assert ladder is not None and info["ladder"] == ladder.to_json()
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    last = ladder.rungs[-1]
    total = info["header_bytes"] + ladder.cumulative_bytes()[-1]
    assert f"{total:>7} {last.psnr:>7.2f}" in text and "PSNR: ladder" in text


def test_browser_reads_the_ladder_and_checks_it_against_the_units(page, spinr_small: EncodeResult):
    """header.js gives the Python ladder; a ladder of the wrong length refuses the header in JS too."""
    import base64

    bs = spinr_small.bitstream
    good = bs.packets()[0].to_bytes()
    h = bs.header
    wrong = StreamHeader(h.model, dict(h.arch), h.width, h.height, list(h.stage_psnr))
    wrong.extensions[EXT_LADDER] = Ladder.from_sizes([9] * 2, [None, 3.0]).to_bytes()
    from codec.packets import Packet, PacketType

    bad = Packet(PacketType.HEADER, 7, 0, None, wrong.to_payload()).to_bytes()
    res = page.evaluate(
        """([g, b]) => {
             const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
             const dec = new window.spnrLib.ProgressiveDecoder();
             const ok = dec.addPacket(bytes(g));
             const refused = new window.spnrLib.ProgressiveDecoder().addPacket(bytes(b));
             return {ok: ok.accepted, ladder: dec.header.ladder, refused};
           }""",
        [base64.b64encode(good).decode(), base64.b64encode(bad).decode()],
    )
    assert res["ok"] is True
    want = h.ladder
    assert want is not None
    assert res["ladder"] == [
        {
            "unit": r["unit"],
            "level": 0,
            "bytes": r["bytes"],
            "psnr": r["psnr"],
            "cumulativeBytes": r["cumulative_bytes"],
        }
        for r in want.to_json()
    ]
    assert res["refused"]["accepted"] is False
    assert f"lists 2 packets, the header has {h.num_units} units" in res["refused"]["error"]


def test_browser_and_python_judge_damaged_ladders_alike(page, spinr_small: EncodeResult):
    """300 random byte changes inside the ladder (its length kept, the CRC recomputed): JS accepts or
    refuses each header exactly as Python does, with the same message."""
    import base64

    from codec.bitstream import parse_header
    from codec.packets import Packet, PacketType

    h = spinr_small.bitstream.header
    payload = h.to_payload()
    body = h.extensions[EXT_LADDER]
    start = payload.index(bytes([EXT_LADDER, len(body)]) + body) + 2
    rng = np.random.default_rng(5)
    cases, want = [], []
    for _ in range(300):
        bad = bytearray(payload)
        i = start + int(rng.integers(len(body)))
        bad[i] = int(rng.integers(256))
        data = Packet(PacketType.HEADER, 9, 0, None, bytes(bad)).to_bytes()
        try:
            parse_header(Packet.parse(data))
            want.append(None)
        except BitstreamError as exc:
            want.append(str(exc))
        cases.append(base64.b64encode(data).decode())
    got = page.evaluate(
        """(cases) => cases.map((c) => {
             const s = new window.spnrLib.ProgressiveDecoder().addPacket(Uint8Array.from(atob(c), (x) => x.charCodeAt(0)));
             return s.accepted ? null : s.error;
           })""",
        cases,
    )
    assert sum(w is not None for w in want) > 20  # the flips do break ladders
    assert got == want

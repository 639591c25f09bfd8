"""Precision refinements (codec/refine.py, docs/FORMAT.md "Refinement packets"): a unit as a coarse
base packet plus refinement packets, decoded at whatever precision arrived, in numpy and in Chromium."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from _bitstreams import make_stream, raw_packet
from _browser import b64, compare, rgb_of
from test_browser_decoder import build_stream

from codec.bitstream import Bitstream, Refinement, Unit, load_bitstream
from codec.decoder import ProgressiveDecoder
from codec.errors import BitstreamError, ConfigError
from codec.ladder import Ladder
from codec.packets import Packet, PacketType
from codec.refine import packet_id, split_unit


def refined(bs: Bitstream, levels: int, shift: int) -> Bitstream:
    base: dict[int, Any] = {}
    refs: dict[tuple[int, int], Refinement] = {}
    for i, u in bs.units.items():
        assert isinstance(u, Unit)
        base[i], rs = split_unit(u, levels, shift)
        refs |= {(i, r.level): r for r in rs}
    return Bitstream(bs.header, base, bs.stream_id, refs)


def at_level(bs: Bitstream, level: int) -> Bitstream:
    return Bitstream(
        bs.header, bs.units, bs.stream_id, {k: r for k, r in bs.refinements.items() if k[1] <= level}
    )


@pytest.mark.parametrize(("levels", "shift"), [(1, 1), (1, 3), (2, 2), (3, 1), (1, 8)])
def test_every_level_is_the_rounding_of_the_final_codes_and_the_last_is_exact(
    levels: int, shift: int
) -> None:
    one = make_stream(seed=levels * 10 + shift, width=12, hidden=3, rel_step=1 / 64)
    rb = refined(one, levels, shift)
    for level in range(levels + 1):
        dec = ProgressiveDecoder.from_bitstream(at_level(rb, level))
        assert set(dec.levels.values()) == {level}
        m = (levels - level) * shift
        for i, unit in one.units.items():
            for t in unit.tensors:
                q = t.codes.astype(np.int64)
                want = np.sign(q) * ((np.abs(q) + (1 << m >> 1)) >> m) if m else q
                step = t.step * 2.0**m
                np.testing.assert_array_equal(
                    dec._tensors[i][[x.name for x in unit.tensors].index(t.name)].codes, want
                )
                np.testing.assert_array_equal(dec.params[i][t.name].ravel(), (want * step).astype(np.float32))
    assert np.array_equal(
        ProgressiveDecoder.from_bitstream(rb).decode().rgb,
        ProgressiveDecoder.from_bitstream(one).decode().rgb,
    )


def test_file_round_trip_is_byte_exact_and_numbers_packets() -> None:
    one = make_stream(hidden=2)
    rb = refined(one, 2, 2)
    data = rb.to_bytes()
    back, damaged = load_bitstream(data)
    assert damaged == [] and back.to_bytes() == data and back.levels == 2
    n = one.header.num_units
    for p in back.packets()[1:]:
        level = p.level or 0
        assert p.seq == packet_id(p.unit, level, n) + 1
    # a stream without refinements is the very same file as before
    assert Bitstream(one.header, one.units, one.stream_id).to_bytes() == one.to_bytes()
    assert load_bitstream(one.to_bytes())[0].refinements == {}


def test_packets_in_any_order_each_unit_at_the_precision_that_arrived() -> None:
    one = make_stream(seed=3, width=10, hidden=3, rel_step=1 / 128)
    rb = refined(one, 2, 2)
    packets = rb.packets()
    head, rest = packets[0], packets[1:]
    random.Random(7).shuffle(rest)
    dec = ProgressiveDecoder(stream_id=rb.stream_id)
    for p in [*rest[:5], head, *rest[5:]]:
        st = dec.add_packet(p.to_bytes())
        assert st.accepted, st.error
    assert dec.levels == {u: 2 for u in range(one.header.num_units)} and dec._held == {}
    assert np.array_equal(dec.decode().rgb, ProgressiveDecoder.from_bitstream(one).decode().rgb)
    # a refinement whose unit has not arrived is held, then applied when it comes; duplicates change nothing
    dec = ProgressiveDecoder(rb.header, rb.stream_id)
    r2 = next(p for p in packets if p.unit == 1 and p.level == 2)
    r1 = next(p for p in packets if p.unit == 1 and p.level == 1)
    for p in (r2, r1):
        assert dec.add_packet(p).kind == "refinement"
    assert 1 not in dec.levels
    dec.add_packet(packets[2])
    assert dec.levels[1] == 2 and dec._versions[1] == 3
    dec.add_packet(r1)
    assert dec._versions[1] == 3


def test_a_refinement_reuses_the_activations_before_its_unit() -> None:
    from test_browser_decoder import build_stream

    _, _, bs = build_stream(model="spinr", head="shared", width=16, hidden=4, size=(20, 14), seed=2)
    rb = refined(bs, 1, 2)
    dec = ProgressiveDecoder(rb.header, rb.stream_id)
    for u in rb.units.values():
        dec.add_unit(u)
    base = dec.decode()
    assert base.levels == [0] * len(base.units)
    n = rb.header.num_units
    last_trunk = max(u for u in range(n) if rb.header.units[u].name.startswith("hidden"))
    dec.add_refinement(rb.refinements[(last_trunk, 1)])
    out = dec.decode()
    assert dec.computed_steps == 1 and out.levels[out.units.index(last_trunk)] == 1
    cold = ProgressiveDecoder(rb.header, rb.stream_id, cache=False)
    for u in rb.units.values():
        cold.add_unit(u)
    cold.add_refinement(rb.refinements[(last_trunk, 1)])
    assert np.array_equal(cold.decode().rgb, out.rgb)


def test_hostile_refinements_are_refused_by_name() -> None:
    one = make_stream(hidden=1)
    rb = refined(one, 1, 2)
    spec = one.header.units[0]
    with pytest.raises(
        BitstreamError, match=r"refinement 1 of unit 0 \(input\) has shift 9: allowed 0 \(direct\) or 1..8"
    ):
        Refinement.parse(bytes([9]), spec, 0, 1)
    with pytest.raises(BitstreamError, match="has an empty payload"):
        Refinement.parse(b"", spec, 0, 1)
    with pytest.raises(BitstreamError, match=r"refinement 1 of unit 0 \(input\): "):
        Refinement.parse(bytes([2, 0xFF]), spec, 0, 1)
    base = list(rb.units[0].tensors)
    tiny = [type(t)(t.name, t.shape, 2.0**-125, t.codes) for t in base]
    with pytest.raises(BitstreamError, match="below the smallest normal bfloat16"):
        Refinement(0, 1, 3, tuple(np.zeros(t.codes.size, np.int32) for t in base)).apply(tiny)
    huge = [type(t)(t.name, t.shape, t.step, np.full(t.codes.size, 2**30, np.int32)) for t in base]
    with pytest.raises(BitstreamError, match="leave the int32 range"):
        Refinement(0, 1, 2, tuple(np.zeros(t.codes.size, np.int32) for t in base)).apply(huge)
    with pytest.raises(ConfigError, match="out of range 1..8"):
        split_unit(one.units[0], 1, 9)  # type: ignore[arg-type]
    # a refinement of a unit the header does not have; in a lenient read it is one damaged packet
    bad = raw_packet(bytes([2]), ptype=2, unit=9, level=1, seq=40, stream_id=one.stream_id)
    back, damaged = load_bitstream(rb.to_bytes() + bad, strict=False)
    assert len(damaged) == 1 and "refinement packet for unit 9, but the header has 3 units" in damaged[0]
    assert len(back.refinements) == 3
    other = Packet(
        PacketType.REFINEMENT, one.stream_id, 5, 0, bytes([1]) + rb.refinements[(0, 1)].payload[1:], level=1
    )
    with pytest.raises(BitstreamError, match="two different packets for refinement 1 of unit 0"):
        load_bitstream(rb.to_bytes() + other.to_bytes())


def test_ladder_version_2_lists_every_packet_on_the_grid() -> None:
    sizes = [[100, 50, 50], [30, 20, 20]]
    psnr: list[list[float | None]] = [[20.0, 22.0, 23.5], [21.0, 23.0, 25.25]]
    lad = Ladder.from_grid(sizes, psnr)
    data = lad.to_bytes()
    assert data[:3] == bytes([2, 1, 3]) and lad.levels == 1 and lad.units == 3
    back = Ladder.parse(data, 3)
    assert back == lad and [(r.unit, r.level) for r in back.rungs] == [
        (u, k) for k in (0, 1) for u in range(3)
    ]
    assert back.to_json()[4]["level"] == 1
    with pytest.raises(BitstreamError, match="lists 3 packets, the header has 4 units"):
        Ladder.parse(data, 4)
    # without refinements the ladder stays version 1, byte for byte
    assert Ladder.from_grid(sizes[:1], psnr[:1]).to_bytes() == Ladder.from_sizes(sizes[0], psnr[0]).to_bytes()


@pytest.fixture(scope="module")
def encoded() -> Any:
    """A real SPINR encode with one refinement level of 2 bits (codec/refined.py)."""
    import torch

    from codec.config import EncodeConfig, ModelSpec, QuantConfig, TrainConfig
    from codec.encode import encode_image

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:32]
    img = (np.stack([xx * 7, yy * 9, (xx + yy) * 4], -1) + rng.integers(0, 30, (24, 32, 3))).clip(0, 255)
    img = img.astype(np.uint8)
    cfg = EncodeConfig(ModelSpec("spinr", 16, 3), TrainConfig(steps=60), QuantConfig(refinements=1))
    one = EncodeConfig(ModelSpec("spinr", 16, 3), TrainConfig(steps=60))
    return img, encode_image(img, cfg), encode_image(img, one)


def test_encoder_writes_refinements_and_a_measured_grid(encoded: Any) -> None:
    from codec.encode import stage_psnrs

    img, res, one = encoded
    bs = res.bitstream
    assert bs.levels == 1 and len(bs.packets()) == 1 + 2 * bs.header.num_units
    assert res.summary()["packets"] == len(bs.packets())
    ladder = bs.header.ladder
    assert ladder is not None and ladder.levels == 1
    back, _ = load_bitstream(bs.to_bytes())
    assert back.header.ladder == ladder
    for level in (0, 1):
        got = stage_psnrs(ProgressiveDecoder.from_bitstream(at_level(back, level)), img)
        row = [r.psnr for r in ladder.rungs if r.level == level]
        picture = [p for p in row if p is not None]
        assert picture == pytest.approx(got, abs=0.006)
    # the final level is exactly the one-shot stream's picture (same seed, same training)
    full = ProgressiveDecoder.from_bitstream(back).decode().rgb
    assert np.array_equal(full, ProgressiveDecoder.from_bitstream(one.bitstream).decode().rgb)
    assert res.bytes > one.bytes  # splitting costs bytes; docs/ABR.md measures how many


@pytest.mark.browser
def test_browser_decodes_refinements_bit_exactly(page: Any) -> None:
    """Chromium's decoder holds numpy's codes, steps and float32 weights at every precision, takes
    refinements before their units, and recomputes only from the refined unit on."""
    _, _, bs = build_stream(
        model="spinr", head="per_stage", width=16, hidden=3, size=(22, 17), residual=True, seed=9
    )
    rb = refined(bs, 2, 2)
    packets = rb.packets()
    from codec.refined import direct_packets

    direct = direct_packets(rb)[1]  # unit 1 whole at the top level, before anything else of it
    order = [packets[0], direct] + sorted(
        packets[1:], key=lambda p: (-(p.level or 0), p.unit)
    )  # finest first
    res = page.evaluate(
        """(pk) => {
          const L = window.spnrLib;
          const dec = new L.ProgressiveDecoder();
          const b64 = (a) => { const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength); let s = "";
            for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000));
            return btoa(s); };
          const snap = () => {
            const out = {};
            for (const [i, t] of dec.params) out[i] = Object.fromEntries(Object.entries(t).map(([n, v]) =>
              [n, {values: b64(v.values), codes: b64(v.codes), step: v.step}]));
            return out;
          };
          const steps = [];
          for (const p of pk) {
            const st = dec.addPacket(Uint8Array.from(atob(p), (c) => c.charCodeAt(0)));
            let pic = null;
            if (dec.plan()) { pic = {rgba: b64(dec.decode(undefined, undefined, {backend: "js"})),
                                    info: dec.lastInfo}; }
            steps.push({st, levels: Object.fromEntries(dec.levels), params: snap(), pic});
          }
          return steps;
        }""",
        [b64(p.to_bytes()) for p in order],
    )
    w, h = rb.header.width, rb.header.height
    seen = [order[0]]
    for p, step in zip(order[1:], res[1:], strict=True):
        seen.append(p)
        assert step["st"]["accepted"], step["st"]
        numpy = ProgressiveDecoder(rb.header, rb.stream_id)
        for q in seen:
            numpy.add_packet(q)
        assert {int(k): v for k, v in step["levels"].items()} == numpy.levels
        for i, tensors in numpy.params.items():
            for name, values in tensors.items():
                js = step["params"][str(i)][name]
                got = np.frombuffer(__import__("base64").b64decode(js["values"]), "<f4")
                assert got.view(np.uint32).tolist() == values.ravel().view(np.uint32).tolist(), (i, name)
                k = [n for n, _ in rb.header.units[i].tensors].index(name)
                assert js["step"] == numpy._tensors[i][k].step
        if step["pic"] is not None:
            want = numpy.decode().rgb
            compare(rgb_of(step["pic"]["rgba"], w, h), want, "js-refine")
            assert step["pic"]["info"]["levels"] == [
                numpy.levels.get(u, 0) for u in step["pic"]["info"]["units"]
            ]
    # the last packets are the shallowest units' bases... the very last decode is the full stream
    last = res[-1]["pic"]
    assert last is not None and all(lv == 2 for lv in last["info"]["levels"])
    # a refinement of the deepest unit alone: one trunk step computed, the rest from the cache
    res2 = page.evaluate(
        """(pk) => {
          const L = window.spnrLib;
          const dec = new L.ProgressiveDecoder();
          const n = pk.length - 1;
          for (const p of pk.slice(0, n)) dec.addPacket(Uint8Array.from(atob(p), (c) => c.charCodeAt(0)));
          dec.decode(undefined, undefined, {backend: "js"});
          dec.addPacket(Uint8Array.from(atob(pk[n]), (c) => c.charCodeAt(0)));
          dec.decode(undefined, undefined, {backend: "js"});
          return dec.lastInfo.computedSteps;
        }""",
        [b64(p.to_bytes()) for p in packets[: 1 + rb.header.num_units]]
        + [b64(packets[1 + rb.header.num_units + rb.header.num_units - 1].to_bytes())],
    )
    assert res2 == 1


def test_direct_packets_give_a_unit_its_final_precision_in_one_packet() -> None:
    from codec.refined import direct_packets, direct_refinements

    one = make_stream(seed=5, width=10, hidden=2, rel_step=1 / 64)
    rb = refined(one, 2, 1)
    n = one.header.num_units
    packets = direct_packets(rb)
    assert [p.seq for p in packets] == [3 * n + u + 1 for u in range(n)]
    for u, p in enumerate(packets):  # one byte more than the one-shot unit packet's payload
        assert p.payload == b"\0" + one.units[u].payload and p.level == 2
    # direct for unit 0, base + refinements for the others, a late base of unit 0 ignored
    dec = ProgressiveDecoder(rb.header, rb.stream_id)
    dec.add_packet(packets[0])
    for p in rb.packets()[1:]:
        dec.add_packet(p)
    assert dec.levels == {u: 2 for u in range(n)}
    assert np.array_equal(dec.decode().rgb, ProgressiveDecoder.from_bitstream(one).decode().rgb)
    # a direct packet supersedes a lower level and is itself refined no further
    dec = ProgressiveDecoder(rb.header, rb.stream_id)
    dec.add_packet(rb.packets()[1])
    assert dec.add_packet(packets[0]).accepted and dec.levels[0] == 2
    np.testing.assert_array_equal(
        dec.params[0]["weight"], ProgressiveDecoder.from_bitstream(one).params[0]["weight"]
    )
    # a received stream keeps them apart from the refinements; its file round-trips
    got = Bitstream(rb.header, rb.units, rb.stream_id, rb.refinements, direct_refinements(rb))
    back, _ = load_bitstream(got.to_bytes())
    assert back.to_bytes() == got.to_bytes() and sorted(back.direct) == list(range(n))

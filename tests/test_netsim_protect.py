"""Protection: envelopes and CRCs, repeat / XOR / Reed-Solomon recovery, overhead, unequal plans."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

from netsim import (
    Channel,
    ChannelConfig,
    ChannelConfigError,
    Delivery,
    IndependentLoss,
    ProtectionPlan,
    Scheme,
)
from netsim.envelope import ENVELOPE_HEADER_LENGTH, Envelope
from netsim.protect import Decoder, encode, parse_scheme, recover


def packets(n: int, seed: int = 0, lo: int = 1, hi: int = 3000) -> list[bytes]:
    g = np.random.default_rng(seed)
    return [bytes(g.integers(0, 256, int(g.integers(lo, hi)), dtype=np.uint8)) for _ in range(n)]


def envelopes(wire) -> list[Envelope]:
    return [Envelope.parse(w) for w in wire]


def flip(data: bytes, bit: int) -> bytes:
    buf = bytearray(data)
    buf[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(buf)


def test_envelope_roundtrip_and_every_truncation_refused():
    env = Envelope("rs", 4, 2, 1, 77, 12, b"payload")
    data = env.to_bytes()
    assert len(data) == ENVELOPE_HEADER_LENGTH + 7
    assert Envelope.parse(data) == env
    for length in range(ENVELOPE_HEADER_LENGTH):
        with pytest.raises(ValueError, match=f"datagram has {length} bytes"):
            Envelope.parse(data[:length])
    for length in range(ENVELOPE_HEADER_LENGTH, len(data)):
        assert not Envelope.parse(data[:length]).intact  # a short payload fails its length check


def test_every_single_bit_flip_is_detected():
    data = Envelope("none", 1, 0, 0, 3, 3, b"spinr layer").to_bytes()
    for bit in range(8 * ENVELOPE_HEADER_LENGTH):  # header damage: the datagram is unusable
        with pytest.raises(ValueError, match="CRC mismatch"):
            Envelope.parse(flip(data, bit))
    for bit in range(8 * ENVELOPE_HEADER_LENGTH, 8 * len(data)):  # payload damage: flagged, index kept
        env = Envelope.parse(flip(data, bit))
        assert not env.intact and env.index == 3


@pytest.mark.parametrize(
    ("text", "scheme"),
    [
        ("none", Scheme("none")),
        ("repeat:3", Scheme("repeat", 1, 2)),
        ("xor:4", Scheme("xor", 4, 1)),
        ("RS:8:2", Scheme("rs", 8, 2)),
    ],
)
def test_parse_scheme(text, scheme):
    assert parse_scheme(text) == scheme
    assert parse_scheme(str(scheme)) == scheme


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("xor", "not one of none, repeat:N, xor:K, rs:K:M"),
        ("rs:8", "not one of"),
        ("lzma:3", "not one of"),
        ("xor:a", "non-integer"),
        ("repeat:0", "repeat copies=0 is out of range; allowed [1, 255]"),
        ("rs:200:100", "k + m = 300; allowed k + m <= 256"),
        ("xor:0", "xor group size k=0"),
    ],
)
def test_bad_scheme_names_value_and_range(text, needle):
    with pytest.raises(ChannelConfigError) as info:
        parse_scheme(text)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    "plan",
    ["none", "repeat:3", "xor:4", "rs:5:3", ProtectionPlan.unequal(23, [0, 1, 2], "repeat:2", "rs:4:2")],
)
def test_overhead_equals_extra_wire_bytes_and_clean_roundtrip(plan):
    data = packets(23, seed=1)
    enc = encode(data, plan)
    assert enc.payload_bytes == sum(map(len, data))
    assert enc.overhead_bytes == sum(len(w) for w in enc) - sum(map(len, data))
    assert sum(enc.overhead_by_scheme.values()) == enc.overhead_bytes
    assert enc.overhead_ratio == pytest.approx(enc.overhead_bytes / enc.payload_bytes)
    rec = recover(enc)
    assert rec.packets == dict(enumerate(data)) and not rec.recovered and not rec.flagged


def test_none_overhead_is_one_envelope_per_packet():
    data = packets(10, seed=2)
    assert encode(data, "none").overhead_bytes == 10 * ENVELOPE_HEADER_LENGTH
    rep = encode(data, "repeat:3")
    assert rep.overhead_bytes == 3 * 10 * ENVELOPE_HEADER_LENGTH + 2 * sum(map(len, data))


def group_wire(enc, group: int) -> list[int]:
    return [i for i, e in enumerate(envelopes(enc)) if e.group == group]


def test_xor_recovers_any_single_loss_per_group_bit_exactly():
    data = packets(12, seed=3)  # 3 groups of 4 + parity
    enc = encode(data, "xor:4")
    assert len(enc) == 15
    groups = sorted({e.group for e in envelopes(enc)})
    for lost in itertools.product(*(group_wire(enc, g) for g in groups)):  # one loss in every group
        rec = recover(w for i, w in enumerate(enc) if i not in lost)
        assert rec.packets == dict(enumerate(data))
    # two losses in a group: one packet cannot come back
    two = group_wire(enc, groups[0])[:2]
    assert len(recover(w for i, w in enumerate(enc) if i not in two).packets) == 10


@pytest.mark.parametrize(("k", "m"), [(4, 2), (5, 3), (3, 1)])
def test_rs_recovers_any_m_erasures_bit_exactly(k, m):
    data = packets(k, seed=k * 10 + m, lo=0)
    enc = encode(data, f"rs:{k}:{m}")
    assert len(enc) == k + m
    for lost in itertools.combinations(range(k + m), m):
        rec = recover(w for i, w in enumerate(enc) if i not in lost)
        assert rec.packets == dict(enumerate(data)), lost
        assert rec.recovered == {e.index for i, e in enumerate(envelopes(enc)) if i in lost and e.index < k}
    for lost in itertools.combinations(range(k + m), m + 1):
        rec = recover(w for i, w in enumerate(enc) if i not in lost)
        assert len(rec.packets) < k


def test_rs_partial_last_group_and_arrival_order():
    data = packets(10, seed=4)  # groups of 4, 4, 2
    enc = encode(data, "rs:4:2")
    envs = envelopes(enc)
    assert sorted({(e.group, e.k) for e in envs}) == [(0, 4), (1, 4), (2, 2)]
    # drop two data packets of every group, feed the rest backwards
    drop = {i for g in range(3) for i in [j for j, e in enumerate(envs) if e.group == g and e.index < 10][:2]}
    rec = recover([w for i, w in enumerate(enc) if i not in drop][::-1])
    assert rec.packets == dict(enumerate(data))
    assert rec.stats["recovered"] == 6


@pytest.mark.parametrize("n", [2, 3, 4])
def test_repeat_survives_n_minus_1_losses(n):
    data = packets(6, seed=5)
    enc = encode(data, f"repeat:{n}")
    assert len(enc) == 6 * n
    copies = {i: [j for j, e in enumerate(envelopes(enc)) if e.index == i] for i in range(6)}
    for i in range(6):
        for kept in copies[i]:
            lost = set(copies[i]) - {kept}
            assert recover(w for j, w in enumerate(enc) if j not in lost).packets[i] == data[i]
        assert i not in recover(w for j, w in enumerate(enc) if j not in copies[i]).packets


def test_repeat_copies_are_spread_out():
    enc = encode(packets(20, seed=6), ProtectionPlan.uniform("repeat:2", spread=4))
    positions = {}
    for pos, e in enumerate(envelopes(enc)):
        positions.setdefault(e.index, []).append(pos)
    assert all(b - a >= 4 for a, b in positions.values())


def test_corrupted_packets_dropped_or_delivered_flagged():
    data = packets(30, seed=7, lo=500, hi=1500)
    enc = encode(data, "none")
    out = Channel(ChannelConfig(ber=2e-4, seed=1)).transmit(enc)
    damaged = {d.index for d in out if d.corrupted}
    assert 0 < len(damaged) < 30
    strict = recover(out)
    assert set(strict.packets) == set(range(30)) - damaged
    assert all(strict.packets[i] == data[i] for i in strict.packets)  # nothing damaged slips through
    assert strict.stats["payload_errors"] + strict.stats["header_errors"] == len(damaged)
    lenient = recover(out, use_corrupted=True)
    assert lenient.flagged and lenient.flagged <= damaged
    assert all(lenient.packets[i] == data[i] for i in set(lenient.packets) - lenient.flagged)
    assert all(lenient.packets[i] != data[i] for i in lenient.flagged)
    # header damage leaves nothing to hand over
    assert damaged - lenient.flagged == damaged - set(lenient.packets)


def test_crc_failure_is_repaired_by_parity():
    data = packets(4, seed=8)
    enc = encode(data, "xor:4")
    wire = list(enc)
    wire[1] = flip(wire[1], 8 * ENVELOPE_HEADER_LENGTH + 5)  # payload bit of packet 1
    rec = recover(wire, use_corrupted=True)
    assert rec.packets == dict(enumerate(data)) and rec.recovered == {1} and not rec.flagged
    assert rec.stats["payload_errors"] == 1


def test_decoder_is_incremental():
    data = packets(4, seed=9)
    enc = encode(data, "xor:4")
    dec = Decoder()
    assert dec.feed(enc[0]) == [0]
    assert dec.feed(Delivery(enc[2], 0.0, 0.0, 2)) == [2]
    assert dec.feed(enc[3]) == [3]
    assert dec.feed(enc[4]) == [1]  # parity completes the group
    assert dec.feed(enc[1]) == [] and dec.stats["duplicates"] == 1
    assert zlib.crc32(dec.result().packets[1]) == zlib.crc32(data[1])


def test_unequal_plan_protects_critical_packets_under_20_percent_loss():
    n = 6000
    critical = list(range(0, n, 10))
    data = [bytes([i % 256]) * 64 for i in range(n)]
    rest = [i for i in range(n) if i % 10]
    loss = {}
    for rest_scheme in ("none", "xor:4", "rs:4:2"):
        plan = ProtectionPlan.unequal(n, critical, "repeat:3", rest_scheme)
        enc = encode(data, plan)
        out = Channel([IndependentLoss(0.2)], seed=12).transmit(enc)
        got = recover(out).packets
        assert all(got[i] == data[i] for i in got)
        crit = 1 - np.mean([i in got for i in critical])
        other = 1 - np.mean([i in got for i in rest])
        loss[rest_scheme] = (crit, other)
        assert crit == pytest.approx(0.2**3, abs=0.01)  # every copy must be lost
        assert crit < other / 3
    assert loss["none"][1] == pytest.approx(0.2, abs=0.02)
    assert loss["xor:4"][1] == pytest.approx(0.2 * (1 - 0.8**4), abs=0.02)  # lost and not the only loss of 5
    assert loss["rs:4:2"][1] < loss["xor:4"][1] < loss["none"][1]


def test_unequal_plan_checks_indices():
    with pytest.raises(ChannelConfigError, match=r"critical indices \[5\] are out of range; allowed 0..4"):
        ProtectionPlan.unequal(5, [0, 5])
    plan = ProtectionPlan.unequal(10)
    assert [str(plan.scheme_for(i)) for i in (0, 2, 3)] == ["repeat:3", "repeat:3", "none"]


def test_protection_through_fragmenting_channel():
    data = packets(40, seed=10, lo=2000, hi=6000)
    enc = encode(data, ProtectionPlan.unequal(40, [0, 1, 2], "repeat:3", "rs:4:2"))
    out = Channel(ChannelConfig(loss=0.05, mtu=1200, duplicate=0.05, seed=3)).transmit(enc)
    rec = recover(out)
    assert all(rec.packets[i] == data[i] for i in rec.packets)
    assert {0, 1, 2} <= set(rec.packets) and len(rec.packets) >= 36

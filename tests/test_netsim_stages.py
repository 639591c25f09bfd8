"""Each channel stage on its own: statistics within tolerance, byte paths bit-exact."""

from __future__ import annotations

import math

import numpy as np
import pytest

from netsim import (
    BitFlips,
    ChannelConfigError,
    Delay,
    Delivery,
    Duplication,
    Fragmenter,
    GilbertElliott,
    IndependentLoss,
    Reassembler,
    Reorder,
    TokenBucket,
    Truncation,
)
from netsim.fragment import FRAGMENT_HEADER_LENGTH, FragmentHeader
from netsim.measure import bit_errors, loss_runs, lost_mask, mean_burst


def deliveries(n: int, size: int = 0, spacing: float = 0.0) -> list[Delivery]:
    return [Delivery(bytes([i % 251]) * size, i * spacing, i * spacing, i) for i in range(n)]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.2, 1.0])
def test_independent_loss_rate(rate):
    out = IndependentLoss(rate).apply(deliveries(100_000), rng(1))
    measured = lost_mask(100_000, out).mean()
    assert abs(measured - rate) < 0.005
    # independent losses: runs are geometric with mean 1 / (1 - rate)
    if 0 < rate < 1:
        assert mean_burst(lost_mask(100_000, out)) == pytest.approx(1 / (1 - rate), rel=0.05)


@pytest.mark.parametrize(("loss", "burst"), [(0.05, 2.0), (0.1, 4.0), (0.2, 8.0)])
def test_gilbert_elliott_hits_loss_rate_and_mean_burst(loss, burst):
    model = GilbertElliott.from_mean(loss, burst)
    assert model.stationary_loss == pytest.approx(loss)
    assert model.p_bg == pytest.approx(1 / burst)
    out = model.apply(deliveries(100_000), rng(2))
    lost = lost_mask(100_000, out)
    assert lost.mean() == pytest.approx(loss, rel=0.1)
    assert mean_burst(lost) == pytest.approx(burst, rel=0.08)
    # bursty: far longer runs than independent loss at the same rate would give
    assert loss_runs(lost).max() > 4 * burst


def test_gilbert_elliott_state_carries_across_pushes():
    model = GilbertElliott.from_mean(0.1, 5.0)
    items = deliveries(5000)
    whole = model.apply(items, rng(3))
    run = model.open(rng(3))
    pieces = [d for i in range(0, 5000, 7) for d in run.push(items[i : i + 7])]
    assert [d.index for d in pieces] == [d.index for d in whole]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((0.1, 0.5), "mean burst=0.5 is out of range; allowed [1, inf]"),
        ((0.9, 3.0), "allowed mean burst >= loss/(1-loss) = 9"),
        ((1.0, 4.0), "allowed [0, 1)"),
    ],
)
def test_gilbert_elliott_from_mean_rejects_impossible_targets(args, needle):
    with pytest.raises(ChannelConfigError) as info:
        GilbertElliott.from_mean(*args)
    assert needle in str(info.value)


def test_bit_flips_match_ber_and_mark_corrupted():
    ber, size, n = 2e-4, 500, 2000
    items = deliveries(n, size)
    out = BitFlips(ber).apply(items, rng(4))
    assert len(out) == n and all(len(d.data) == size for d in out)
    flipped, compared = bit_errors([d.data for d in items], out)
    assert compared == n * size * 8
    assert flipped / compared == pytest.approx(ber, rel=0.1)
    corrupted = np.array([d.corrupted for d in out])
    assert corrupted.mean() == pytest.approx(1 - (1 - ber) ** (8 * size), abs=0.04)
    # the flag is exact: corrupted iff the bytes differ
    assert all(d.corrupted == (d.data != o.data) for d, o in zip(out, items, strict=True))


def test_dense_bit_flips_match_ber():
    items = deliveries(200, 100)
    out = BitFlips(0.1).apply(items, rng(5))
    flipped, compared = bit_errors([d.data for d in items], out)
    assert flipped / compared == pytest.approx(0.1, rel=0.05)


def test_truncation_rate_and_lengths():
    items = deliveries(20_000, 100)
    out = Truncation(0.1, min_keep=10).apply(items, rng(6))
    cut = [d for d in out if d.truncated]
    assert len(cut) / len(out) == pytest.approx(0.1, rel=0.1)
    assert all(10 <= len(d.data) < 100 and items[d.index].data.startswith(d.data) for d in cut)
    assert all(d.data == items[d.index].data for d in out if not d.truncated)


def test_duplication_counts_and_flags():
    out = Duplication(0.1).apply(deliveries(20_000, 4), rng(7))
    dups = [d for d in out if d.duplicate]
    assert len(out) == 20_000 + len(dups)
    assert len(dups) / 20_000 == pytest.approx(0.1, rel=0.1)
    assert len({d.index for d in out if not d.duplicate}) == 20_000


def test_reorder_displaces_within_bound_and_loses_nothing():
    out = Reorder(0.05, max_displacement=4).apply(deliveries(20_000), rng(8))
    order = [d.index for d in out]
    assert sorted(order) == list(range(20_000))
    highest = np.maximum.accumulate([-1, *order[:-1]])
    late = int((np.array(order) < highest).sum())  # arrived after a packet sent later
    assert late / 20_000 == pytest.approx(0.05, rel=0.15)
    # a held datagram is passed by at most max_displacement others (plus others held with it)
    positions = {idx: pos for pos, idx in enumerate(order)}
    assert max(positions[i] - i for i in range(20_000)) <= 8


def test_delay_adds_base_and_nonnegative_jitter_and_sorts():
    items = deliveries(5000, 1, spacing=0.001)
    out = Delay(50.0, 20.0).apply(items, rng(9))
    extra = np.array([d.arrival_time - d.send_time for d in out])
    assert extra.min() >= 0.050 and extra.max() <= 0.070
    assert extra.mean() == pytest.approx(0.060, abs=0.001)
    arrivals = [d.arrival_time for d in out]
    assert arrivals == sorted(arrivals)
    assert any(a.index > b.index for a, b in zip(out, out[1:], strict=False))  # jitter > spacing reorders


@pytest.mark.parametrize(("rate", "burst"), [(125_000.0, 1500), (1_000_000.0, 20_000)])
def test_token_bucket_throughput_matches_rate(rate, burst):
    items = deliveries(3000, 1000)
    out = TokenBucket(rate, burst).apply(items, rng())
    duration = max(d.arrival_time for d in out) - min(d.send_time for d in out)
    throughput = sum(len(d.data) for d in out) / duration
    assert throughput == pytest.approx(rate, rel=0.02)
    departures = [d.send_time for d in out]
    assert departures == sorted(departures)
    # the first burst leaves at once
    assert departures[burst // 1000 - 1] == 0.0


def test_token_bucket_respects_late_offers_and_queue_limit():
    # offered slower than the rate: nobody waits
    slow = TokenBucket(10_000.0, 1000).apply(deliveries(100, 500, spacing=0.1), rng())
    assert all(d.send_time == pytest.approx(d.index * 0.1) for d in slow)
    # a 10-packet queue under a burst of 100 packets: tail drop
    limited = TokenBucket(10_000.0, 1000, queue_bytes=5000).apply(deliveries(100, 500), rng())
    assert 9 <= len(limited) <= 12
    assert [d.index for d in limited] == list(range(len(limited)))


def test_fragmentation_5000_bytes_over_mtu_1200():
    packet = bytes(np.random.default_rng(10).integers(0, 256, 5000, dtype=np.uint8))
    frags = Fragmenter(1200).apply([Delivery(packet, 0.0, 0.0, 7)], rng())
    assert len(frags) == 5 == math.ceil(5000 / 1200)
    assert [f.fragment for f in frags] == [(i, 5) for i in range(5)]
    assert [len(f.data) - FRAGMENT_HEADER_LENGTH for f in frags] == [1200] * 4 + [200]
    assert FragmentHeader.parse(frags[3].data) == FragmentHeader(3, 5, 7)
    whole = Reassembler().apply(frags[::-1], rng())
    assert len(whole) == 1 and whole[0].data == packet and whole[0].index == 7 and whole[0].fragment is None
    for lost in range(5):
        assert Reassembler().apply(frags[:lost] + frags[lost + 1 :], rng()) == []


def test_small_packets_travel_unfragmented():
    d = Delivery(b"x" * 1200, 0.0, 0.0, 0)
    assert Fragmenter(1200).apply([d], rng()) == [d]


def test_reassembler_discards_fragment_with_damaged_header():
    packet = b"a" * 3000
    frags = Fragmenter(1000).apply([Delivery(packet, 0.0, 0.0, 1)], rng())
    bad = frags[1].data[:2] + bytes([frags[1].data[2] ^ 1]) + frags[1].data[3:]
    run = Reassembler().open(rng())
    out = run.push([frags[0], type(frags[1])(bad, 0.0, 0.0, 1, fragment=(1, 3)), frags[2]])
    assert out == [] and run.discarded == 1
    # a damaged payload byte keeps the packet but flags it
    damaged = frags[2].data[:-1] + b"b"
    out = Reassembler().apply(
        [frags[0], frags[1], Delivery(damaged, 0.0, 0.0, 1, corrupted=True, fragment=(2, 3))], rng()
    )
    assert out[0].corrupted and out[0].data == packet[:-1] + b"b"


@pytest.mark.parametrize("length", range(FRAGMENT_HEADER_LENGTH))
def test_fragment_header_truncated_at_every_length_is_refused(length):
    data = FragmentHeader(0, 2, 3).to_bytes()
    with pytest.raises(ValueError, match=f"fragment has {length} bytes"):
        FragmentHeader.parse(data[:length])


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: IndependentLoss(1.5), "loss rate=1.5 is out of range; allowed [0, 1]"),
        (lambda: BitFlips(-0.1), "ber=-0.1"),
        (lambda: Truncation(0.1, min_keep=-1), "min_keep=-1"),
        (lambda: Reorder(0.1, 0), "max_displacement=0"),
        (lambda: Delay(-1.0), "delay_ms=-1.0"),
        (lambda: TokenBucket(0.0), "rate_bytes_per_s=0.0"),
        (lambda: Fragmenter(8), "mtu=8"),
        (lambda: Duplication(float("nan")), "nan"),
        (lambda: GilbertElliott(0.0, 0.0), "p_gb + p_bg > 0"),
    ],
)
def test_bad_stage_options_name_value_and_range(make, needle):
    with pytest.raises(ChannelConfigError) as info:
        make()
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)

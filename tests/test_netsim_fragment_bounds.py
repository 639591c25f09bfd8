"""Fragment reassembly stays O(1) amortised per fragment and bounded in memory (issue 11, item 1)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from netsim import Channel, ChannelConfig, ChannelConfigError, Delivery, Fragmenter, Reassembler
from netsim.fragment import FRAGMENT_HEADER_LENGTH, MAX_FRAGMENTS, FragmentHeader, ReassemblyRun

STREAM = [bytes(np.random.default_rng(i).integers(0, 256, 19_000, dtype=np.uint8)) for i in range(4)]
"""76 KB in four layer-sized packets, as in the report that froze the server at mtu 16."""


def fragments(packets: list[bytes], mtu: int) -> list[Delivery]:
    return Fragmenter(mtu).apply(
        [Delivery(p, 0.0, 0.0, i) for i, p in enumerate(packets)], np.random.default_rng()
    )


def test_mtu_16_on_a_76_kb_stream_does_linear_work() -> None:
    frags = fragments(STREAM, 16)
    assert len(frags) == sum(math.ceil(len(p) / 16) for p in STREAM) == 4752
    run = ReassemblyRun()
    out = run.push(frags)
    assert [d.data for d in out] == STREAM and [d.index for d in out] == [0, 1, 2, 3]
    # One visit per fragment plus one per slot of each rebuilt copy; the old per-fragment minimum
    # over all slots cost about fragments * count / 2 = 2.8 million visits here.
    assert run.slot_visits == 2 * len(frags)
    assert run.held == 0 and run.forgotten == 0


def test_mtu_16_through_a_whole_channel_session() -> None:
    session = Channel(ChannelConfig(mtu=16)).session()
    out = [d for p in STREAM for d in session.send(p)] + session.flush()
    assert [d.data for d in out] == STREAM
    assert session.stats["delivered"] == 4 and session.stats["dropped"] == 0


def test_shuffled_duplicated_fragments_rebuild_each_copy_in_linear_work() -> None:
    frags = fragments(STREAM[:2], 16)
    order = np.random.default_rng(3).permutation(2 * len(frags))
    arrivals = [(frags + frags)[i] for i in order]
    run = ReassemblyRun()
    out = run.push(arrivals)
    assert sorted((d.index, d.duplicate) for d in out) == [(0, False), (0, True), (1, False), (1, True)]
    assert all(d.data == STREAM[d.index] for d in out)
    assert run.slot_visits == 2 * len(arrivals)
    assert run.held == 0


def test_a_forged_fragment_count_allocates_nothing_per_slot() -> None:
    forged = FragmentHeader(7, MAX_FRAGMENTS, 1).to_bytes() + b"x" * 16
    run = ReassemblyRun()
    assert run.push([Delivery(forged, 0.0, 0.0, 1, fragment=(7, MAX_FRAGMENTS))]) == []
    (part,) = run.pending.values()
    assert list(part.slots) == [7]
    assert run.held == len(forged) + 200


def test_byte_bound_forgets_the_oldest_incomplete_packets() -> None:
    # Every packet loses its last fragment, so nothing completes and the bound must act.
    frags = [f for f in fragments(STREAM, 1000) if f.fragment[0] != f.fragment[1] - 1]
    run = Reassembler(max_pending_bytes=60_000).open(np.random.default_rng())  # two packets' worth
    for f in frags:
        assert run.push([f]) == []
        assert run.held <= 60_000
    assert run.forgotten == 2 and [k[0] for k in run.pending] == [2, 3]


def test_a_packet_alone_over_the_byte_bound_never_holds_more_than_the_bound() -> None:
    run = Reassembler(max_pending_bytes=5_000).open(np.random.default_rng())
    for f in fragments(STREAM[:1], 1000):
        assert run.push([f]) == []
        assert run.held <= 5_000
    assert run.forgotten >= 1


def test_packet_count_bound_still_holds() -> None:
    frags = [f for f in fragments([b"a" * 40] * 10, 16) if f.fragment[0] == 0]
    run = Reassembler(max_pending=3).open(np.random.default_rng())
    assert run.push(frags) == []
    assert [k[0] for k in run.pending] == [7, 8, 9] and run.forgotten == 7


def test_a_packet_too_big_for_the_mtu_is_a_config_error_naming_the_allowed_mtu() -> None:
    packet = Delivery(b"\0" * (16 * MAX_FRAGMENTS + 1), 0.0, 0.0, 3)
    with pytest.raises(ChannelConfigError) as info:
        Fragmenter(16).split(packet)
    text = str(info.value)
    assert "mtu=16" in text and "packet 3 of 1048561 bytes" in text and "65536 fragments" in text
    assert "mtu >= 17" in text
    # ...and that smallest MTU does fit.
    assert len(Fragmenter(17).split(packet)) == math.ceil(len(packet.data) / 17) <= MAX_FRAGMENTS


def test_fragment_payload_sizes_are_exact() -> None:
    frags = fragments([b"z" * 33], 16)
    assert [len(f.data) - FRAGMENT_HEADER_LENGTH for f in frags] == [16, 16, 1]

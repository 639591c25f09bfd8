"""The ABR controller (a pure function), the link estimator, receiver reports and the simulator."""

from __future__ import annotations

import json
import statistics

import pytest

from netsim import ChannelConfig
from streaming.abr import INITIAL_WINDOW, MIN_WINDOW, AbrState, Goal, Link, Rung, decide
from streaming.abr_sim import simulate
from streaming.feedback import (
    MAX_REPORT_BYTES,
    Arrival,
    FeedbackError,
    LinkEstimator,
    Report,
    SenderBook,
    parse_report,
)

# A SPINR-like ladder: a small first packet, then 16 of 2500 bytes, PSNR rising by diminishing steps.
SPINR = tuple(Rung(1200 if k == 0 else 2500, 18 + 1.2 * k - 0.02 * k * k) for k in range(17))
# A SIREN-like ladder: only the whole set makes a picture.
SIREN = tuple(Rung(2000, None) for _ in range(5)) + (Rung(2000, 30.0),)


def state(**kw) -> AbrState:
    return AbrState(**{"ladder": SPINR, "now": 0.0, **kw})


def test_first_packets_go_out_up_to_the_initial_window_then_it_waits():
    assert decide(state()).action == "send" and decide(state()).unit == 0
    book = SenderBook(list(SPINR), Goal(deadline_s=2.0))
    units = []
    while (d := decide(book.state(0.0))).action == "send":
        book.record_send(d.unit, 0.0)
        units.append(d.unit)
    # before any estimate: a probe of INITIAL_WINDOW bytes (the packet that crosses it included)
    assert units == [0, 1] and SPINR[0].bytes < INITIAL_WINDOW <= SPINR[0].bytes + SPINR[1].bytes
    assert d.action == "wait" and 0 < d.wait_s <= 0.25 and "first estimate" in d.reason
    # with an estimate the window rules: twice the BDP, at least two of the next packet
    est = book.state(0.1)
    d = decide(
        AbrState(SPINR, 0.1, in_flight=est.in_flight, bytes_sent=3700, link=Link(50_000, 0, 0.04, 0.04))
    )
    assert (d.action, d.unit) == ("send", 2)  # 3700 in flight < max(4000, 5000)


def test_a_lost_packet_is_resent_before_anything_newer():
    s = state(delivered=frozenset({0, 1, 3}), lost=frozenset({2}), link=Link(50_000, 0.05, 0.05, 0.04))
    d = decide(s)
    assert (d.action, d.unit, d.resend) == ("send", 2, True)


@pytest.mark.parametrize(
    ("throughput", "deadline", "target"),
    [
        # 10 kB/s for 2 s from now: 20 kB buy packets 0..7 (1200 + 7 * 2500 = 18,700 B); 8 would be late
        (10_000, 2.0, 7),
        (10_000, 1.0, 3),  # 9,700 B
        (1_000, 2.0, 0),  # only the first packet
        (100, 2.0, None),  # not even that: stop at once, spending nothing
        (1e9, 2.0, 16),
    ],
)
def test_the_deadline_sets_the_deepest_rung_worth_sending(throughput, deadline, target):
    s = state(link=Link(throughput, 0.0, 0.02, 0.0), goal=Goal(deadline_s=deadline))
    d = decide(s)
    assert d.target == target
    assert d.action == ("stop" if target is None else "send")
    if target is not None:  # once the target is in flight nothing past it is sent
        sent = {u: 0.0 for u in range(target + 1)}
        last = decide(state(in_flight=sent, link=s.link, goal=s.goal))
        assert last.action == "wait" and last.unit is None
        assert last.target == (target if target < 16 else None)


def test_a_falling_throughput_lowers_the_target_and_time_running_out_stops():
    goal = Goal(deadline_s=3.0)
    targets = [
        decide(state(now=1.0, link=Link(tp, 0, 0.04, 0.04), goal=goal)).target
        for tp in (40e3, 20e3, 8e3, 2e3)
    ]
    assert targets == sorted(targets, reverse=True) and targets[0] == 16 and targets[-1] == 1
    assert decide(state(now=3.0, link=Link(1e9, 0, 0.04, 0.04), goal=goal)).action == "stop"


def test_byte_budget_buys_the_best_prefix_and_never_a_useless_partial_siren():
    d = decide(state(goal=Goal(byte_budget=10_000), bytes_sent=0))
    assert d.target == 3  # 1200 + 3 * 2500 = 8700 <= 10,000 < 11,200
    assert (
        decide(state(goal=Goal(byte_budget=10_000), delivered=frozenset(range(4)), bytes_sent=8700)).action
        == "stop"
    )
    # resends count: after a 2500-byte loss the same budget buys one packet less
    lost = state(
        goal=Goal(byte_budget=10_000),
        delivered=frozenset({0, 2}),
        lost=frozenset({1}),
        bytes_sent=6200,
        link=Link(10_000, 0.3, 0.1, 0.1),
    )
    assert decide(lost).target == 2 and decide(lost).unit == 1  # the resend completes 0..2; 3 no longer fits
    assert decide(AbrState(SIREN, 0.0, goal=Goal(byte_budget=11_999))).action == "stop"
    assert decide(AbrState(SIREN, 0.0, goal=Goal(byte_budget=12_000))).target == 5


def test_open_loop_without_feedback_sends_everything_and_stops():
    s = AbrState(SPINR, 0.0, in_flight={u: 0.0 for u in range(10)}, feedback=False)
    assert decide(s).unit == 10
    done = AbrState(SPINR, 0.0, in_flight={u: 0.0 for u in range(17)}, feedback=False)
    assert decide(done).action == "stop"


def test_window_follows_the_bandwidth_delay_product_of_the_path_not_the_queue():
    link = Link(throughput=100_000, loss=0, rtt=2.0, min_rtt=0.1)  # a deep queue: smoothed RTT 2 s
    in_flight = {
        u: 0.0 for u in range(9)
    }  # 21,200 bytes >= 2 * 100 kB/s * 0.1 s (on the smoothed RTT: 400 kB)
    assert decide(state(in_flight=in_flight, link=link)).action == "wait"
    assert decide(state(in_flight={0: 0.0}, link=link)).action == "send"
    slow = Link(1000, 0, 0.1, 0.1)  # 200 bytes of BDP: the floor keeps a packet or two going
    assert decide(state(in_flight={0: 0.0}, link=slow)).action == "send"
    assert decide(state(in_flight={1: 0.0, 2: 0.0}, link=slow)).action == "wait"  # 5000 >= MIN_WINDOW
    assert MIN_WINDOW <= 1200 + 2500 + 2500


def test_estimator_follows_a_scripted_step_down():
    est = LinkEstimator(window_s=0.5)
    t = 0.0
    for _ in range(20):  # 2500-byte packets every 50 ms: 50 kB/s
        t += 0.05
        est.on_arrival(t, 2500)
    assert est.throughput == pytest.approx(50_000, rel=0.02)
    for _ in range(6):  # then every 500 ms: 5 kB/s
        t += 0.5
        est.on_arrival(t, 2500)
    assert est.throughput == pytest.approx(5_000, rel=0.02)
    for s in [0.1, 0.1, 0.5]:
        est.on_rtt(s)
    assert est.min_rtt == 0.1 and 0.1 < est.rtt < 0.2
    for lost in [True] + [False] * 9:
        est.on_outcome(lost)
    assert 0.0 < est.loss < 0.1


def test_sender_book_acks_losses_and_rtt_from_reports():
    book = SenderBook(list(SPINR), Goal(deadline_s=5.0))
    for u in range(4):
        book.record_send(u, 0.01 * u)
    # the receiver got 0, 1 and 3 (2 missing below the highest) and held the news 10 ms
    report = Report(0.31, (Arrival(1, 1200, 0.2), Arrival(2, 2500, 0.25), Arrival(4, 2500, 0.3)), lost=(3,))
    book.on_report(report, now=0.35)
    assert book.delivered == {0, 1, 3} and book.lost == {2} and set(book.in_flight) == set()
    # samples: arrival news reached the sender 0.24, 0.28 and 0.31 s after each send, once the
    # receiver's holding time (its "at" minus the arrival) is taken off
    assert book.estimator.min_rtt == pytest.approx(0.24)
    assert book.estimator.rtt is not None and 0.24 < book.estimator.rtt < 0.31
    d = decide(book.state(0.35))
    assert (d.action, d.unit, d.resend) == ("send", 2, True)
    book.record_send(2, 0.35)
    # "2 missing" again in a report about packets sent before the resend: not a second loss
    book.on_report(Report(0.4, (), lost=(3,)), now=0.41)
    assert 2 in book.in_flight and book.lost == set()
    # a copy in flight far longer than any round trip is given up
    assert 2 in book.state(10.0).lost


def test_reports_parse_with_bounds_and_name_what_is_wrong():
    r = parse_report(
        json.dumps({"type": "report", "at": 500, "arrived": [[1, 1200, 120.5]], "lost": [2]}), 17
    )
    assert r == Report(0.5, (Arrival(1, 1200, 0.1205),), (2,))
    assert parse_report(r.to_message(), 17) == r
    for msg, match in [
        ("nope", "not valid JSON"),
        ('{"type": "start"}', "unknown message type 'start'; expected 'report'"),
        ('{"type": "report", "at": 1, "x": 2}', r"unknown field\(s\) x in report"),
        ('{"type": "report", "at": -1}', "report at must be milliseconds"),
        ('{"type": "report", "at": 5, "arrived": [[1, 2, 9]]}', "time 9 ms is after the report's at 5 ms"),
        (
            '{"type": "report", "at": 5, "arrived": [[18, 2, 1]]}',
            r"arrived\[0\] seq must be an integer in 0..17",
        ),
        ('{"type": "report", "at": 5, "arrived": [[1, 2]]}', r"arrived\[0\] must be \[seq, bytes, ms\]"),
        ('{"type": "report", "at": 5, "lost": [true]}', r"lost\[0\] must be an integer"),
        ('{"type": "report", "at": 5, "lost": ' + json.dumps(list(range(300))) + "}", "at most 256"),
        (" " * (MAX_REPORT_BYTES + 1), f"report of {MAX_REPORT_BYTES + 1} bytes; at most {MAX_REPORT_BYTES}"),
    ]:
        with pytest.raises(FeedbackError, match=match):
            parse_report(msg, 17)


def test_simulated_stream_abr_beats_send_everything_on_a_lossy_step_down():
    """Bandwidth drops tenfold after 1 s and 5 % of packets are lost: ABR repairs losses, so its
    picture at the deadline is deeper, and it spends fewer bytes (nothing it sends arrives too late)."""
    channel = ChannelConfig(trace="step:200,20,1", loss=0.05, delay_ms=20, seed=3)
    goal = Goal(deadline_s=2.0)
    every = simulate(SPINR, channel, "all", goal)
    abr = simulate(SPINR, channel, "abr", goal)
    assert abr.psnr_at(2.0) is not None and every.psnr_at(2.0) is not None
    assert abr.psnr_at(2.0) >= every.psnr_at(2.0) + 3.0
    assert abr.bytes_sent < every.bytes_sent
    assert any(s["resend"] for s in abr.sent)
    assert abr.first_picture_s() == pytest.approx(every.first_picture_s(), abs=1e-9)
    assert statistics.median(abr.decide_seconds) < 1e-3  # a guard, not the benchmark (spinr experiment abr)


def test_simulated_steady_link_abr_matches_send_everything_with_fewer_bytes():
    channel = ChannelConfig(trace="constant:100", delay_ms=20, seed=3)
    every = simulate(SPINR, channel, "all", Goal(deadline_s=2.0))
    abr = simulate(SPINR, channel, "abr", Goal(deadline_s=2.0))
    assert abr.psnr_at(2.0) == pytest.approx(every.psnr_at(2.0), abs=0.3)
    assert abr.bytes_sent < 0.7 * every.bytes_sent


def test_stream_rungs_from_the_ladder_or_from_the_stage_psnrs():
    from _bitstreams import make_stream

    from codec.header import EXT_LADDER
    from codec.ladder import Ladder
    from streaming.feedback import stream_rungs

    bs = make_stream()  # a SIREN without a ladder: one picture, when every packet is in
    sizes = [len(p.to_bytes()) for p in bs.packets()[1:]]
    rungs = stream_rungs(bs)
    assert [r.bytes for r in rungs] == sizes
    assert [r.psnr for r in rungs] == [None] * (len(sizes) - 1) + bs.header.stage_psnr
    bs.header.extensions[EXT_LADDER] = Ladder.from_sizes(sizes, [None] * (len(sizes) - 1) + [31.5]).to_bytes()
    assert stream_rungs(bs)[-1] == Rung(sizes[-1], 31.5)


def test_a_deeper_rung_that_measured_worse_is_not_the_target():
    ladder = (Rung(500, 20.0), Rung(500, 25.0), Rung(500, 24.5))
    d = decide(AbrState(ladder, 0.0, delivered=frozenset({0, 1}), link=Link(1e6, 0, 0.01, 0.01)))
    assert d.action == "stop" and d.target == 1


def test_a_fast_link_without_an_estimate_gets_probe_after_probe():
    # everything sent so far was acknowledged too quickly to measure a rate: send on, a window at a time
    s = state(delivered=frozenset({0, 1}), bytes_sent=3700)
    assert (decide(s).action, decide(s).unit) == ("send", 2)
    assert decide(state(delivered=frozenset({0}), in_flight={1: 0.0}, bytes_sent=3700)).action == "wait"


def test_estimator_state_stays_bounded_under_hostile_reports():
    est = LinkEstimator()
    for i in range(10_000):  # every arrival at the same instant, then a flood of distinct ones
        est.on_arrival(1.0 if i < 5000 else 1.0 + i * 1e-3, 1000)
    assert len(est._arrivals) <= 60 and len(est._samples) <= 64  # 50 ms of 1-ms arrivals, 64 samples
    assert est.throughput == pytest.approx(1e6, rel=0.01)  # 1000 bytes per ms

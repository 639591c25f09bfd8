"""Time-varying links: bandwidth traces (CSV, generators, Markov presets) and the bucket that follows one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from netsim import Channel, ChannelConfig, ChannelConfigError, Delivery, TokenBucket
from netsim.cli import main as netsim_main
from netsim.shaping import TraceBucket
from netsim.trace import (
    MARKOV_PRESETS,
    TRACES,
    BandwidthTrace,
    load_trace,
    markov,
    on_off,
    parse_csv,
    parse_trace,
    read_csv,
    step,
)


def offered(n: int, size: int, spacing: float = 0.0) -> list[Delivery]:
    return [Delivery(bytes(size), i * spacing, i * spacing, i) for i in range(n)]


def test_capacity_and_its_inverse_on_a_trace_with_an_outage():
    t = BandwidthTrace((0.0, 1.0, 2.0, 3.0), (800.0, 0.0, 400.0, 80.0))  # kbit/s: 100, 0, 50, 10 kB/s
    assert t.capacity(1.0) == 100_000
    assert t.capacity(2.0) == 100_000  # nothing during the outage
    assert t.capacity(2.5) == 125_000
    assert t.capacity(4.0) == 150_000 + 10_000  # the last rate holds after the last row
    assert t.time_for(100_000) == 1.0  # earliest time, not the end of the outage
    assert t.time_for(100_001) == pytest.approx(2.0 + 1 / 50_000)
    for x in [1.0, 50_000.0, 124_999.0, 160_000.0, 1e6]:
        assert t.capacity(t.time_for(x)) == pytest.approx(x)
    assert t.kbps_at(1.5) == 0.0 and t.kbps_at(99.0) == 80.0
    assert t.mean_kbps(4.0) == pytest.approx(160_000 * 8 / 1000 / 4)


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([], "1..100000 rows"),
        ([[0.5, 100]], "starts at time 0"),
        ([[0, 100], [2, 50], [1, 20]], "row 2 is at 1 s after 2 s"),
        ([[0, 100], [1, 0]], "must be > 0"),
        ([[0, -5]], r"trace kbps\[0\]=-5 is out of range"),
        ([[0, float("nan")]], "out of range"),
        ([[0, "fast"]], "must be a number"),
        ([[0, 1, 2]], "must be a pair"),
    ],
)
def test_bad_traces_are_refused_by_name(rows, match):
    with pytest.raises(ChannelConfigError, match=match):
        BandwidthTrace.from_rows(rows)


def test_csv_round_trip_header_comments_and_errors(tmp_path):
    t = BandwidthTrace((0.0, 0.5, 2.25), (1200.0, 0.0, 300.5))
    path = tmp_path / "t.csv"
    path.write_text("# measured on a bus\n" + t.to_csv() + "\n")
    assert read_csv(path) == t
    assert load_trace(str(path)) == t
    assert parse_csv("0,100\n1,200\n") == BandwidthTrace((0.0, 1.0), (100.0, 200.0))
    with pytest.raises(ChannelConfigError, match=r"x.csv line 3: '1,fast' is not two numbers"):
        parse_csv("time,kbps\n0,100\n1,fast\n", "x.csv")
    with pytest.raises(ChannelConfigError, match="line 1: expected 2 columns"):
        parse_csv("0,1,2\n")
    with pytest.raises(ChannelConfigError, match="holds no rows"):
        parse_csv("time_s,kbps\n")
    with pytest.raises(ChannelConfigError, match="cannot read trace"):
        read_csv(tmp_path / "missing.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe0,1")
    with pytest.raises(ChannelConfigError, match="not UTF-8"):
        read_csv(tmp_path / "bin.csv")


def test_generators_and_specs():
    assert step(4000, 400, 1.0) == BandwidthTrace((0.0, 1.0), (4000.0, 400.0))
    oo = on_off(1000, 1.0, 0.5, duration_s=3.0)
    assert oo.times == (0.0, 1.0, 1.5, 2.5, 3.0) and oo.kbps[:3] == (1000.0, 0.0, 1000.0)
    assert oo.kbps[-1] == 1000.0
    assert parse_trace("step-down") == step(4000, 400, 1)
    assert parse_trace("constant:250") == BandwidthTrace.constant(250)
    for name in TRACES:
        assert parse_trace(name).kbps[-1] > 0
    for bad, match in [
        ("warp:9", "unknown trace 'warp:9'"),
        ("step:1,2", "step takes 3..3 arguments"),
        ("step:a,b,c", "arguments must be numbers"),
        ("markov:5g", "unknown Markov link '5g'; allowed: 3g, lte, edge, train"),
    ]:
        with pytest.raises(ChannelConfigError, match=match):
            parse_trace(bad)


@pytest.mark.parametrize("name", list(MARKOV_PRESETS))
def test_markov_presets_are_seeded_and_reach_their_long_run_mean(name):
    link = MARKOV_PRESETS[name]
    a, b = markov(name, 30.0, seed=4), markov(name, 30.0, seed=4)
    assert a == b and a != markov(name, 30.0, seed=5)
    assert a.kbps[-1] == pytest.approx(link.stationary_kbps(), abs=1e-3)
    assert set(np.round(a.times[:-1], 6)) == set(np.round(np.arange(300) * link.step_s, 6))
    long = markov(name, 3000.0, seed=1)  # many dwell times: the mean approaches the chain's
    assert long.mean_kbps(3000.0) == pytest.approx(link.stationary_kbps(), rel=0.15)
    if 0.0 in link.kbps:
        assert 0.0 in long.kbps  # outages do happen
    assert min(long.kbps) >= 0


def test_constant_trace_bucket_matches_the_token_bucket_exactly():
    d = offered(200, 700, spacing=0.003)
    plain = TokenBucket(50_000, 1500).apply(d, np.random.default_rng(0))
    traced = TraceBucket(BandwidthTrace.constant(400.0), 1500).apply(d, np.random.default_rng(0))
    assert [x.send_time for x in traced] == pytest.approx([x.send_time for x in plain], abs=1e-12)


def test_step_down_slows_the_link_at_the_step_and_outages_hold_everything():
    out = TraceBucket(step(800.0, 80.0, 1.0), 1000).apply(offered(150, 1000), np.random.default_rng(0))
    sent = np.array([x.send_time for x in out])
    gaps = np.diff(sent)
    assert np.allclose(gaps[sent[1:] < 0.99], 0.01)  # 100 kB/s: 10 ms per 1000 B
    assert np.allclose(gaps[sent[:-1] > 1.01], 0.1)  # 10 kB/s after the step
    oo = TraceBucket(on_off(800.0, 0.5, 1.0, 10.0), 1000).apply(offered(120, 1000), np.random.default_rng(0))
    times = np.array([x.send_time for x in oo])
    in_off = (times % 1.5 > 0.5 + 1e-9) & (times % 1.5 < 1.5 - 1e-9)
    assert not in_off.any() and times[-1] > 1.5  # waits out the outage, then goes on


def test_channel_config_takes_a_trace_in_every_form_and_round_trips():
    rows = [[0, 2000], [1, 200]]
    by_rows = ChannelConfig.from_dict({"trace": rows, "mtu": 0})
    assert by_rows.trace == step(2000, 200, 1)
    assert ChannelConfig.from_dict(by_rows.to_dict()) == by_rows
    assert json.loads(json.dumps(by_rows.to_dict()))["trace"] == rows
    assert ChannelConfig(trace="step:2000,200,1").trace == by_rows.trace
    mobile = ChannelConfig.from_dict({"preset": "mobile", "trace": "lte"})
    assert mobile.bandwidth_kbps == 0 and mobile.delay_ms == 60.0  # the trace replaces the preset's rate
    with pytest.raises(ChannelConfigError, match="both set the link rate"):
        ChannelConfig(bandwidth_kbps=100, trace="lte")
    with pytest.raises(ChannelConfigError, match="trace must be a trace name"):
        ChannelConfig(trace=7)
    with pytest.raises(ChannelConfigError, match="unknown trace"):
        ChannelConfig.from_dict({"trace": "/etc/passwd"})  # a config never reads files
    # Through a whole channel: the second half of the packets crawls at a tenth of the rate.
    deliveries = Channel(by_rows).transmit([bytes(1000)] * 400)
    assert max(d.arrival_time for d in deliveries) == pytest.approx(
        1.0 + (400_000 - 250_000) / 25_000, rel=0.01
    )


def test_netsim_stats_cli_with_a_trace_file(tmp_path, capsys):
    path = tmp_path / "link.csv"
    path.write_text("time_s,kbps\n0,800\n0.5,80\n")
    assert netsim_main(["stats", "--packets", "100", "--size", "1000", "--trace", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # 50 kB leave in the first 0.5 s, the rest at 10 kB/s; the last datagram leaves once the link has
    # earned all but the bucket's burst and its own size (fragment headers add a little)
    assert 5.2 < report["measured"]["duration_s"] < 5.5
    assert report["channel"]["trace"] == [[0.0, 800.0], [0.5, 80.0]]
    assert netsim_main(["stats", "--packets", "10", "--trace", "markov:5g"]) == 2
    assert "unknown Markov link '5g'" in capsys.readouterr().err


def test_netsim_trace_cli_writes_csv_and_summarises(tmp_path, capsys):
    out = tmp_path / "train.csv"
    assert netsim_main(["trace", "markov:train,5,20", "--csv", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    trace = read_csv(out)
    assert trace == markov("train", 20.0, 5) and summary["trace"] == [list(r) for r in trace.rows()]
    assert summary["rows"] == 201 and summary["duration_s"] == 20.0
    assert summary["min_kbps"] == 0.0 and summary["outage_s"] > 0  # the train preset has outages
    assert summary["mean_kbps"] == pytest.approx(trace.mean_kbps(20.0))
    assert netsim_main(["trace", "on-off:100,1,1,4"]) == 0
    assert "outages 2 s" in capsys.readouterr().out
    assert netsim_main(["trace", "step:1,2"]) == 2
    assert "step takes 3..3 arguments" in capsys.readouterr().err

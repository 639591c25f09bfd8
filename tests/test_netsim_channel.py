"""Channel, config, presets, streaming sessions and the ``netsim stats`` command."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from netsim import Channel, ChannelConfig, ChannelConfigError, Delivery, GilbertElliott, IndependentLoss
from netsim.channel import PRESETS, build_stages
from netsim.cli import add_channel_arguments, channel_config_from_args, main
from netsim.fragment import Fragmenter, Reassembler
from netsim.measure import lost_mask, mean_burst


def packets(n: int, size: int = 300, seed: int = 0) -> list[bytes]:
    g = np.random.default_rng(seed)
    return [bytes(g.integers(0, 256, size, dtype=np.uint8)) for _ in range(n)]


def key(d: Delivery) -> tuple:
    return (d.data, d.send_time, d.arrival_time, d.index, d.corrupted, d.truncated, d.duplicate)


CHAOS = dict(
    loss=0.1,
    burst=3.0,
    ber=1e-4,
    truncate=0.05,
    duplicate=0.05,
    reorder=0.05,
    delay_ms=20,
    jitter_ms=30,
    bandwidth_kbps=5000,
)


def test_seeded_run_is_reproducible_and_seed_matters():
    data = packets(500, 2000)
    a = Channel(ChannelConfig(**CHAOS, seed=5)).transmit(data)
    b = Channel(ChannelConfig(**CHAOS, seed=5)).transmit(data)
    c = Channel(ChannelConfig(**CHAOS, seed=6)).transmit(data)
    assert [key(d) for d in a] == [key(d) for d in b]
    assert [key(d) for d in a] != [key(d) for d in c]
    # transmit restarts from the seed: calling it twice on one channel repeats itself
    ch = Channel(ChannelConfig(**CHAOS, seed=5))
    assert [key(d) for d in ch.transmit(data)] == [key(d) for d in ch.transmit(data)]


def test_deliveries_sorted_by_arrival_and_stats_consistent():
    data = packets(400, 2500)
    ch = Channel(ChannelConfig(**CHAOS, seed=1))
    out = ch.transmit(data)
    arrivals = [d.arrival_time for d in out]
    assert arrivals == sorted(arrivals)
    s = ch.stats
    assert s["sent"] == 400 and s["bytes_sent"] == 400 * 2500
    assert s["delivered"] == len(out)
    assert s["dropped"] == int(lost_mask(400, out).sum()) > 0
    assert s["corrupted"] == sum(d.corrupted for d in out) > 0
    assert s["duplicates"] == sum(d.duplicate for d in out) > 0
    assert s["bytes_delivered"] == sum(len(d.data) for d in out)
    assert s["duration"] == pytest.approx(max(arrivals) - min(d.send_time for d in out), abs=1e-9)
    # fragmented packets arrive whole (or truncated, flagged), never as fragments
    assert all(d.fragment is None for d in out)
    assert all(len(d.data) == 2500 for d in out if not d.truncated)


def test_perfect_channel_delivers_every_byte_in_order():
    data = packets(50, 5000)
    out = Channel(ChannelConfig.preset("perfect")).transmit(data)
    assert [d.data for d in out] == data and [d.index for d in out] == list(range(50))


def test_fragmented_packet_lost_when_any_fragment_is():
    # 5 fragments per packet at 5% datagram loss: packet loss 1 - 0.95^5 = 22.6%
    data = packets(4000, 5000)
    out = Channel(ChannelConfig(loss=0.05, mtu=1200, seed=2)).transmit(data)
    assert lost_mask(4000, out).mean() == pytest.approx(1 - 0.95**5, abs=0.02)
    assert all(d.data == data[d.index] for d in out)
    unfragmented = Channel(ChannelConfig(loss=0.05, mtu=0, seed=2)).transmit(data)
    assert lost_mask(4000, unfragmented).mean() == pytest.approx(0.05, abs=0.01)


def test_config_burst_selects_loss_model():
    assert isinstance(build_stages(ChannelConfig(loss=0.1))[1], IndependentLoss)
    ge = build_stages(ChannelConfig(loss=0.1, burst=4.0, mtu=0))[0]
    assert isinstance(ge, GilbertElliott) and ge.stationary_loss == pytest.approx(0.1)
    stages = build_stages(ChannelConfig(loss=0.1))
    assert isinstance(stages[0], Fragmenter) and isinstance(stages[-1], Reassembler)
    assert build_stages(ChannelConfig(mtu=0)) == []


def test_bursty_preset_measures_its_burst():
    data = [b"p" * 100] * 50_000
    out = Channel(ChannelConfig.preset("bursty", seed=3)).transmit(data)
    lost = lost_mask(len(data), out)
    assert lost.mean() == pytest.approx(0.10, rel=0.1)
    assert mean_burst(lost) == pytest.approx(4.0, rel=0.1)


def test_bandwidth_limit_sets_throughput():
    data = [b"q" * 1000] * 2000
    ch = Channel(ChannelConfig(bandwidth_kbps=800, delay_ms=10, mtu=0))
    out = ch.transmit(data)
    assert ch.stats["bytes_delivered"] * 8 / 1000 / ch.stats["duration"] == pytest.approx(800, rel=0.02)
    assert out[0].arrival_time == pytest.approx(0.010)


def test_adding_a_stage_keeps_other_stages_draws():
    data = packets(3000, 200)
    plain = Channel(ChannelConfig(loss=0.2, seed=9)).transmit(data)
    flipped = Channel(ChannelConfig(loss=0.2, ber=1e-3, seed=9)).transmit(data)
    assert [d.index for d in plain] == [d.index for d in flipped]
    assert any(d.corrupted for d in flipped)


@pytest.mark.parametrize(
    "config",
    [
        dict(loss=0.2, burst=3.0, ber=1e-4, truncate=0.05, duplicate=0.1, bandwidth_kbps=2000),
        dict(loss=0.1, delay_ms=30, jitter_ms=50, duplicate=0.05),
        dict(loss=0.1, burst=2.0, mtu=500),
    ],
)
def test_session_matches_transmit_without_reordering(config):
    data = packets(600, 1200, seed=4)
    cfg = ChannelConfig(**config, seed=11)
    batch = Channel(cfg).transmit(data)
    session = Channel(cfg).session()
    streamed = [d for p in data for d in session.send(p)] + session.flush()
    streamed.sort(key=lambda d: d.arrival_time)
    assert [key(d) for d in streamed] == [key(d) for d in batch]
    assert session.stats["sent"] == 600 and session.stats["delivered"] == len(batch)


def test_session_keeps_gilbert_state_and_seed_override():
    cfg = ChannelConfig(loss=0.3, burst=6.0, mtu=0, seed=1)
    ch = Channel(cfg)
    s = ch.session()
    got = [bool(s.send(b"x")) for _ in range(20_000)]
    lost = ~np.array(got)
    assert mean_burst(lost) == pytest.approx(6.0, rel=0.1)
    other = ch.session(seed=2)
    assert [bool(other.send(b"x")) for _ in range(200)] != got[:200]


def test_session_send_time_and_reorder_flush():
    s = Channel(ChannelConfig(reorder=0.5, delay_ms=10, mtu=0, seed=3)).session()
    out, lag = [], 0
    for i in range(100):
        out += s.send(bytes([i]), send_time=i * 0.01)
        lag = max(lag, i + 1 - len(out))  # packets held back for reordering
    out += s.flush()
    assert lag > 0 and sorted(d.index for d in out) == list(range(100))
    assert [d.index for d in out] != list(range(100))
    assert all(d.arrival_time >= d.send_time + 0.010 - 1e-12 for d in out)


def test_send_times_are_used_and_checked():
    out = Channel(ChannelConfig(delay_ms=5)).transmit([b"a", b"b"], send_times=[1.0, 2.0])
    assert [d.arrival_time for d in out] == pytest.approx([1.005, 2.005])
    with pytest.raises(ChannelConfigError, match="send_times has 1 entries for 2 packets"):
        Channel().transmit([b"a", b"b"], send_times=[0.0])


def test_channel_from_stage_list():
    ch = Channel([IndependentLoss(0.5)], seed=4)
    out = ch.transmit([b"z"] * 2000)
    assert len(out) == pytest.approx(1000, rel=0.1)
    with pytest.raises(ChannelConfigError, match="list of Stage"):
        Channel([object()])


def test_every_preset_runs_and_roundtrips():
    data = packets(200, 1500)
    for name in PRESETS:
        cfg = ChannelConfig.preset(name)
        assert ChannelConfig.from_dict(cfg.to_dict()) == cfg
        out = Channel(cfg).transmit(data)
        assert all(0 <= d.index < 200 for d in out), name
    assert ChannelConfig.preset("lossy-10").loss == 0.1
    assert ChannelConfig.preset("perfect").is_perfect and not ChannelConfig.preset("mobile").is_perfect
    edited = ChannelConfig.preset("lossy-5")
    edited.loss = 0.9
    assert PRESETS["lossy-5"].loss == 0.05  # presets hand out copies


def test_from_dict_partial_preset_and_errors():
    assert ChannelConfig.from_dict({"loss": 0.4, "seed": 3}) == ChannelConfig(loss=0.4, seed=3)
    assert ChannelConfig.from_dict({"preset": "bursty", "seed": 2}) == ChannelConfig(
        loss=0.1, burst=4.0, seed=2
    )
    assert ChannelConfig.from_dict({"mtu": 1500.0}).mtu == 1500
    with pytest.raises(
        ChannelConfigError, match=r"unknown channel option\(s\) 'los', 'x'; allowed: preset, loss"
    ):
        ChannelConfig.from_dict({"los": 0.1, "x": 1})
    with pytest.raises(ChannelConfigError, match="unknown channel preset 'nope'; allowed: perfect"):
        ChannelConfig.from_dict({"preset": "nope"})
    with pytest.raises(ChannelConfigError, match="must be a mapping"):
        ChannelConfig.from_dict([("loss", 0.1)])


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("loss", 1.2, "loss=1.2 is out of range; allowed [0, 1]"),
        ("loss", "0.1", "loss must be a number in [0, 1], got '0.1'"),
        ("burst", 0.5, "burst=0.5 is out of range; allowed [1, 1e+09]"),
        ("ber", True, "ber must be a number"),
        ("delay_ms", -5, "delay_ms=-5 is out of range"),
        ("jitter_ms", float("inf"), "jitter_ms=inf is out of range"),
        ("bandwidth_kbps", -1, "bandwidth_kbps=-1"),
        ("mtu", 8, "mtu=8 is out of range; allowed 0 (no fragmentation) or >= 16"),
        ("mtu", 1.5, "mtu must be an integer"),
        ("seed", -1, "seed=-1 is out of range"),
        ("reorder_depth", 0, "reorder_depth=0"),
    ],
)
def test_bad_config_names_value_and_range(field, value, needle):
    with pytest.raises(ChannelConfigError) as info:
        ChannelConfig(**{field: value})
    assert needle in str(info.value)
    with pytest.raises(ValueError):
        ChannelConfig.from_dict({field: value})


def test_burst_too_short_for_loss_is_refused():
    with pytest.raises(
        ChannelConfigError, match=r"burst=2 is too short for loss=0.8; allowed burst >= loss/\(1-loss\) = 4"
    ):
        ChannelConfig(loss=0.8, burst=2.0)


def test_edited_config_is_revalidated_by_channel():
    cfg = ChannelConfig()
    cfg.loss = 3.0
    with pytest.raises(ChannelConfigError, match="loss=3.0"):
        Channel(cfg)


def parse(argv: list[str]):
    import argparse

    p = argparse.ArgumentParser()
    add_channel_arguments(p)
    return p.parse_args(argv)


def test_channel_flags_to_config():
    assert channel_config_from_args(parse([])) is None
    cfg = channel_config_from_args(
        parse(["--loss", "0.1", "--burst", "3", "--ber", "1e-5", "--truncate", "0.01", "--duplicate", "0.02",
               "--reorder", "0.03", "--delay-ms", "40", "--jitter-ms", "10", "--bandwidth-kbps", "900",
               "--mtu", "0", "--channel-seed", "7"])
    )  # fmt: skip
    assert dataclasses.asdict(cfg) == dict(
        dataclasses.asdict(ChannelConfig()), loss=0.1, burst=3.0, ber=1e-5, truncate=0.01, duplicate=0.02,
        reorder=0.03, delay_ms=40.0, jitter_ms=10.0, bandwidth_kbps=900.0, mtu=0, seed=7,
    )  # fmt: skip
    refined = channel_config_from_args(parse(["--preset", "mobile", "--loss", "0.2"]))
    assert refined == ChannelConfig.preset("mobile", loss=0.2)


def test_stats_command_json(capsys):
    rc = main(
        [
            "stats",
            "--preset",
            "bursty",
            "--packets",
            "20000",
            "--size",
            "200",
            "--channel-seed",
            "4",
            "--json",
        ]
    )
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    m = report["measured"]
    assert m["packets"] == 20_000
    assert m["loss_rate"] == pytest.approx(0.1, rel=0.15)
    assert m["mean_burst"] == pytest.approx(4.0, rel=0.15)
    assert report["channel"]["seed"] == 4
    assert report["stats"]["dropped"] == round(m["loss_rate"] * 20_000)


def test_stats_command_reports_throughput(capsys):
    assert main(["stats", "--bandwidth-kbps", "1000", "--packets", "500", "--size", "1000"]) == 0
    text = capsys.readouterr().out
    assert "throughput" in text
    kbps = float(text.split("throughput")[1].split()[0])
    assert kbps == pytest.approx(1000, rel=0.03)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["stats", "--loss", "2"], "loss=2.0 is out of range; allowed [0, 1]"),
        (["stats", "--loss", "abc"], "invalid float value: 'abc'"),
        (["stats", "--preset", "nope"], "invalid choice: 'nope'"),
        (["stats", "--packets", "0"], "--packets=0 is out of range"),
        (["stats", "--loss", "0.9", "--burst", "2"], "too short"),
        ([], "choose a subcommand"),
    ],
)
def test_stats_command_errors_are_one_line_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err

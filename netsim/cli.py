"""``spinr netsim stats``: simulate N packets through a channel and print what it measured;
``spinr netsim trace``: generate or read a bandwidth trace, summarise it, write it as CSV.

Also the channel flags every command that sends through a simulated channel shares:
:func:`add_channel_arguments` and :func:`channel_config_from_args`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from netsim.channel import Channel
from netsim.config import PRESETS, ChannelConfig
from netsim.errors import ChannelConfigError
from netsim.measure import summarize
from netsim.trace import SPEC_HELP, BandwidthTrace, load_trace
from netsim.validate import integer

# flag dest -> ChannelConfig field
CHANNEL_FLAGS: dict[str, str] = {
    "loss": "loss",
    "burst": "burst",
    "ber": "ber",
    "truncate": "truncate",
    "duplicate": "duplicate",
    "reorder": "reorder",
    "delay_ms": "delay_ms",
    "jitter_ms": "jitter_ms",
    "bandwidth_kbps": "bandwidth_kbps",
    "mtu": "mtu",
    "channel_seed": "seed",
}


def add_channel_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulated-channel flags. All default to None ("not given"), so a preset can be refined."""
    g = parser.add_argument_group("simulated channel")
    g.add_argument("--preset", choices=list(PRESETS), default=None, help="start from a named channel")
    g.add_argument("--loss", type=float, default=None, metavar="P", help="fraction of datagrams lost [0, 1]")
    g.add_argument(
        "--burst", type=float, default=None, metavar="B", help="mean loss burst length (1: independent)"
    )
    g.add_argument("--ber", type=float, default=None, metavar="P", help="bit error rate [0, 1]")
    g.add_argument("--truncate", type=float, default=None, metavar="P", help="fraction of packets truncated")
    g.add_argument(
        "--duplicate", type=float, default=None, metavar="P", help="fraction of packets duplicated"
    )
    g.add_argument("--reorder", type=float, default=None, metavar="P", help="fraction of datagrams reordered")
    g.add_argument("--delay-ms", type=float, default=None, metavar="MS", help="one-way delay in milliseconds")
    g.add_argument(
        "--jitter-ms", type=float, default=None, metavar="MS", help="extra delay uniform in [0, MS]"
    )
    g.add_argument(
        "--bandwidth-kbps", type=float, default=None, metavar="KBPS", help="link rate (0: unlimited)"
    )
    g.add_argument(
        "--trace",
        default=None,
        metavar="TRACE",
        help=f"time-varying link rate instead of --bandwidth-kbps: a CSV file of time_s,kbps or {SPEC_HELP}",
    )
    g.add_argument(
        "--mtu", type=int, default=None, help="largest datagram payload, 0: no fragmentation (default 1200)"
    )
    g.add_argument(
        "--channel-seed", type=int, default=None, metavar="N", help="seed of the channel (default 0)"
    )


def channel_config_from_args(args: argparse.Namespace) -> ChannelConfig | None:
    """The channel the flags describe; None when no channel flag was given (no simulated channel).

    Raises :class:`ChannelConfigError` naming the flag's value and the allowed range."""
    given = {
        field: getattr(args, dest)
        for dest, field in CHANNEL_FLAGS.items()
        if getattr(args, dest, None) is not None
    }
    if getattr(args, "trace", None) is not None:
        given["trace"] = load_trace(args.trace)
    preset = getattr(args, "preset", None)
    if preset is None and not given:
        return None
    return ChannelConfig.preset(preset, **given) if preset else ChannelConfig(**given)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``netsim`` command's subcommands (the ``spinr`` entry point calls this)."""
    sub = parser.add_subparsers(dest="netsim_command", metavar="SUBCOMMAND")
    stats = sub.add_parser("stats", help="simulate packets through a channel and report what it measured")
    stats.add_argument("--packets", type=int, default=10_000, help="packets to send (default 10000)")
    stats.add_argument("--size", type=int, default=1000, help="bytes per packet (default 1000)")
    stats.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_channel_arguments(stats)
    trace = sub.add_parser(
        "trace", help="generate or read a bandwidth trace; print its summary or write it as CSV"
    )
    trace.add_argument("spec", metavar="TRACE", help=f"a CSV file of time_s,kbps or {SPEC_HELP}")
    trace.add_argument("--csv", default=None, metavar="FILE", help="write the trace as CSV (time_s,kbps)")
    trace.add_argument("--json", action="store_true", help="print the summary and the rows as JSON")


def stats_report(config: ChannelConfig, n_packets: int, size: int) -> dict[str, Any]:
    n = integer("--packets", n_packets, 1, 10_000_000)
    size = integer("--size", size, 1, 1 << 24)
    packets = [i.to_bytes(8, "big") * (size // 8) + bytes(size % 8) for i in range(n)]
    channel = Channel(config)
    deliveries = channel.transmit(packets)
    return {"channel": config.to_dict(), "measured": summarize(packets, deliveries), "stats": channel.stats}


def trace_summary(trace: BandwidthTrace) -> dict[str, Any]:
    """Duration, rates and outage time of a trace (over its rows; the last rate holds after them)."""
    span = trace.duration
    outage = sum(b - a for a, b, r in zip(trace.times, trace.times[1:], trace.kbps, strict=False) if r == 0)
    return {
        "rows": len(trace.times),
        "duration_s": span,
        "mean_kbps": trace.mean_kbps(span) if span > 0 else trace.kbps[0],
        "min_kbps": min(trace.kbps),
        "max_kbps": max(trace.kbps),
        "final_kbps": trace.kbps[-1],
        "outage_s": outage,
    }


def _trace(args: argparse.Namespace) -> int:
    try:
        trace = load_trace(args.spec)
    except ChannelConfigError as exc:
        print(f"spinr netsim trace: error: {exc}", file=sys.stderr)
        return 2
    if args.csv:
        try:
            with open(args.csv, "w", encoding="utf-8") as f:
                f.write(trace.to_csv())
        except OSError as exc:
            print(
                f"spinr netsim trace: error: cannot write {args.csv!r}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return 2
    summary = trace_summary(trace)
    if args.json:
        print(json.dumps({**summary, "trace": trace.rows()}))
        return 0
    print(
        f"{summary['rows']} rows over {summary['duration_s']:g} s: mean {summary['mean_kbps']:.1f} kbit/s "
        f"(min {summary['min_kbps']:g}, max {summary['max_kbps']:g}), outages {summary['outage_s']:g} s, "
        f"then {summary['final_kbps']:g} kbit/s" + (f"; wrote {args.csv}" if args.csv else "")
    )
    return 0


def run(args: argparse.Namespace) -> int:
    prog = "spinr netsim"
    if getattr(args, "netsim_command", None) == "trace":
        return _trace(args)
    if getattr(args, "netsim_command", None) != "stats":
        print(f"{prog}: error: choose a subcommand: stats, trace", file=sys.stderr)
        return 2
    try:
        config = channel_config_from_args(args) or ChannelConfig()
        report = stats_report(config, args.packets, args.size)
    except ChannelConfigError as exc:
        print(f"{prog} stats: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return 0
    m = report["measured"]
    throughput = "unlimited" if m["throughput_kbps"] is None else f"{m['throughput_kbps']:.1f} kbit/s"
    print(f"packets        {m['packets']} x {args.size} B, {m['deliveries']} deliveries")
    print(
        f"loss rate      {m['loss_rate']:.4f}  (mean burst {m['mean_burst']:.2f}, longest {m['max_burst']})"
    )
    print(f"corrupted      {m['corrupted_rate']:.4f}  (bit error rate {m['bit_error_rate']:.2e})")
    print(f"truncated      {m['truncated_rate']:.4f}")
    print(f"duplicates     {m['duplicates']}, reordered {m['reordered']}")
    print(
        f"throughput     {throughput} over {m['duration_s']:.3f} s, mean latency {m['mean_latency_ms']:.1f} ms"
    )
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="spinr netsim", description="network channel simulator tools")
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, message already printed)
        return int(exc.code or 0)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

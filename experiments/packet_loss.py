"""``spinr experiment loss``: PSNR against loss rate, mean burst length and bit errors for spinr's real
rate-controlled streams (SIREN, SPINR with ``prefix`` and ``skip`` concealment, SPINR with unequal error
protection) against progressive JPEGs of the same bytes *and the same protection*.

Every stream is what ``spinr encode --bpp B`` makes, at one to four rates (``--rates``; encoded by the
RD experiment's own jobs, see :mod:`experiments.loss_streams`). The streams then go through
``--channel-seeds`` seeded netsim channels per condition (decoding is numpy and cached by the set of
delivered units). Every lane of one image meets the same channel seeds, so curves are paired draws.

Definitions (see :mod:`streaming.transmission`, :mod:`streaming.subjects`, :mod:`streaming.matched`):

- A stream is the header packet then one packet per unit, sent as datagrams with the channel's MTU
  (a packet is lost if any of its fragments is).
- *header reliable* (default): the header packet is handed over intact whatever the channel did (it
  can go over a reliable side channel). *header lossy*: it takes its chances, and a lost header means
  nothing decodes. For a JPEG its first packet plays the header's part.
- Nothing decodable scores as a mid-grey picture (value 128): SIREN missing any unit, SPINR missing the
  header or stage 0, a JPEG prefix without one complete scan.
- Protection ``CRIT[+REST]`` (e.g. ``repeat:3+xor:4``): the header and the packets every prefix needs
  (stage 0; with the shared head also the output layer) get ``CRIT``, later packets ``REST``. Protected
  streams carry netsim's 28-byte envelope on every packet; all of that counts as overhead. Protected
  SPINR decodes with ``prefix`` concealment.
- JPEG: Pillow, progressive, optimized, the highest quality whose bytes on the wire (with the same
  protection plan, over packets cut at the SPINR packets' sizes) are at most the SPINR stream's; a lost
  packet loses everything after it; the intact prefix is cut back to its last complete scan and decoded.
- Bit errors: ``crc`` treats a damaged packet as lost (spinr's CRC, netsim's envelope CRC, or a transport
  checksum for the JPEG); ``use`` decodes damaged packets anyway (spinr's CRC recomputed, JPEG bytes
  as they came).

Tables and plots: :mod:`experiments.packet_loss_report`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codec.errors import ConfigError
from experiments import loss_streams as streams
from experiments import packet_loss_plots as plots
from experiments import packet_loss_report as report
from experiments.loss_streams import Lane, parse_protection
from experiments.pool import JobPool
from experiments.profiles import Profile

DEFAULT_RATES = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
DEFAULT_BURSTS = (1.0, 2.0, 4.0, 8.0)
BURST_LOSS = report.BURST_LOSS
"""Loss rate of the burst-length sweep."""
DEFAULT_BERS = (0.0, 1e-5, 3e-5, 1e-4)
DEFAULT_PROTECTION = ("repeat:3", "repeat:3+xor:4")
CHANNEL_SEEDS = {"tiny": 20, "quick": 100, "paper": 500}
MAX_CHANNEL_SEEDS = 100_000

Key = report.Key
Group = tuple[list[Lane], dict[str, float]]
"""The lanes of one image (every rate) and the no-loss PSNR of each subject."""


@dataclass
class LossOptions:
    """The packet-loss experiment's own options (``--loss-rates`` ... ``--mtu``)."""

    rates: list[float]
    bursts: list[float]
    bers: list[float]
    channel_seeds: int
    protection: list[str]
    mtu: int


def _floats(
    name: str, values: Sequence[float] | None, default: Sequence[float], lo: float, hi: float
) -> list[float]:
    out = [float(v) for v in (values if values is not None else default)]
    if not out:
        raise ConfigError(f"{name} needs at least one value")
    bad = [v for v in out if not lo <= v <= hi]
    if bad:
        raise ConfigError(f"{name} value(s) {bad} out of range: allowed {lo:g}..{hi:g}")
    return sorted(set(out))


def options_from_args(args: Any, profile: Profile) -> LossOptions:
    """The loss experiment's own options, validated (each error names the flag, value and range)."""
    seeds = getattr(args, "channel_seeds", None) or CHANNEL_SEEDS.get(profile.name, 100)
    if not 1 <= seeds <= MAX_CHANNEL_SEEDS:
        raise ConfigError(f"--channel-seeds {seeds} is out of range: allowed 1..{MAX_CHANNEL_SEEDS}")
    mtu = getattr(args, "mtu", None)
    mtu = max(16, round(1200 * profile.mtu_scale)) if mtu is None else mtu
    if mtu != 0 and not 16 <= mtu <= 65535:
        raise ConfigError(f"--mtu {mtu} is out of range: allowed 0 (no fragmentation) or 16..65535")
    protection = list(getattr(args, "protection", None) or DEFAULT_PROTECTION)
    for spec in protection:
        parse_protection(spec)
    return LossOptions(
        _floats("--loss-rates", getattr(args, "loss_rates", None), DEFAULT_RATES, 0.0, 0.95),
        _floats("--bursts", getattr(args, "bursts", None), DEFAULT_BURSTS, 1.0, 1000.0),
        _floats("--bers", getattr(args, "bers", None), DEFAULT_BERS, 0.0, 0.01),
        seeds,
        protection,
        mtu,
    )


@dataclass(frozen=True)
class Condition:
    sweep: str
    """``loss``, ``burst`` or ``ber``."""
    x: float
    """The swept value."""
    channel: Any
    header: str
    """``reliable`` or ``lossy``."""
    modes: tuple[str, ...] = ("crc",)


def conditions(opts: LossOptions) -> list[Condition]:
    from netsim import ChannelConfig

    mtu = opts.mtu
    out = [
        Condition("loss", r, ChannelConfig(loss=r, mtu=mtu), h)
        for h in ("reliable", "lossy")
        for r in opts.rates
    ]
    out += [
        Condition("burst", b, ChannelConfig(loss=BURST_LOSS, burst=b, mtu=mtu), "reliable")
        for b in opts.bursts
    ]
    out += [Condition("ber", e, ChannelConfig(ber=e, mtu=mtu), "reliable", ("crc", "use")) for e in opts.bers]
    return out


def simulate(
    groups: list[Group], conds: list[Condition], seeds: int, quiet: bool
) -> dict[Key, list[tuple[float, int]]]:
    """(sweep, x, header, mode, subject) -> [(psnr, units used)] over groups x channel seeds."""
    from streaming.transmission import transmit

    results: dict[Key, list[tuple[float, int]]] = defaultdict(list)
    start = time.perf_counter()
    for n, cond in enumerate(conds, 1):
        reliable = (0,) if cond.header == "reliable" else ()
        for lanes, _ in groups:
            for seed in range(seeds):
                channel = dataclasses.replace(cond.channel, seed=seed)
                for lane in lanes:
                    rec = transmit(lane.packets, channel, lane.plan, reliable)
                    for name, subject in lane.subjects.items():
                        for mode in cond.modes:
                            key = (cond.sweep, cond.x, cond.header, mode, name)
                            results[key].append(subject.score(rec, mode == "use"))
        if not quiet:
            elapsed = time.perf_counter() - start
            print(
                f"[loss] channel condition {n}/{len(conds)} {cond.sweep}={cond.x:g} header {cond.header} "
                f"({elapsed:.0f}s, eta {elapsed / n * (len(conds) - n):.0f}s)",
                file=sys.stderr,
                flush=True,
            )
    return results


def concealment(groups: list[Group]) -> list[dict[str, Any]]:
    """One middle SPINR layer missing (everything else intact): ``prefix`` vs ``skip``, per layer and rate."""
    from codec.decoder import ProgressiveDecoder
    from streaming.transmission import Received

    rows = []
    for gi, (lanes, clean) in enumerate(groups):
        for lane in lanes:
            names = {streams.split_subject(s)[1]: s for s in lane.subjects}
            if "spinr/skip" not in names:
                continue
            pre, skp = lane.subjects[names["spinr/prefix"]], lane.subjects[names["spinr/skip"]]
            dec = ProgressiveDecoder(conceal="prefix")
            dec.add_packet(pre.packets[0])
            arch = dec.arch
            assert arch is not None
            for k in range(1, arch.depths - 1):
                gone = {u + 1 for u in arch.trunk_units(k)}
                rec = Received({i: p for i, p in enumerate(pre.packets) if i not in gone})
                rows.append({"group": gi, "bpp": streams.split_subject(names["spinr/prefix"])[0],
                             "missing_stage": k, "full": clean[names["spinr/prefix"]],
                             "prefix": pre.score(rec)[0], "skip": skp.score(rec)[0]})  # fmt: skip
    return rows


def measure_overhead(groups: list[Group], subjects: list[str], mtu: int) -> dict[str, dict[str, float]]:
    """Each protected subject's extra bytes (SPINR's and its matched JPEG's): netsim's accounting,
    checked against the bytes the channel was handed at 0 % loss."""
    from netsim import ChannelConfig
    from streaming.transmission import overhead as accounted
    from streaming.transmission import transmit

    out: dict[str, dict[str, float]] = {}
    for name in subjects:
        lanes = [ln for group, _ in groups for ln in group if name in ln.subjects and ln.plan is not None]
        if not lanes:
            continue
        pay = [sum(len(p) for p in ln.packets) for ln in lanes]
        meas = [
            transmit(ln.packets, ChannelConfig(mtu=mtu), ln.plan).wire_bytes - n
            for ln, n in zip(lanes, pay, strict=True)
        ]
        out[name] = {
            "bytes": float(np.mean(meas)),
            "accounted_bytes": float(np.mean([accounted(ln.packets, ln.plan)[0] for ln in lanes])),
            "payload_bytes": float(np.mean(pay)),
            "ratio": float(np.sum(meas) / np.sum(pay)),
        }
    return out


def run(
    images: list[tuple[str, np.ndarray]], profile: Profile, args: Any, out: Path, pool: JobPool | None = None
) -> dict[str, Any]:
    opts = options_from_args(args, profile)
    pool = pool or JobPool.from_args(args)
    rates, effort, steps = streams.settings(profile, args)
    encodes = [e for es in pool.map(streams.stream_job, streams.encode_jobs(images, profile, args), "loss")
               for e in es or []]  # fmt: skip
    groups, facts, errors = streams.build_groups(images, encodes, opts.protection, opts.mtu)
    results = simulate(groups, conditions(opts), opts.channel_seeds, pool.quiet)
    stats = {k: report.stats(v, opts.channel_seeds) for k, v in results.items()}
    subjects = list(groups[0][1])
    clean = {s: float(np.mean([c[s] for _, c in groups])) for s in subjects}
    conceal_rows = concealment(groups)
    overhead = measure_overhead(groups, subjects, opts.mtu)
    report.write_csv_rows(out / "loss.csv", stats, clean, conceal_rows)
    summary = report.summarize(stats, clean, subjects, overhead, conceal_rows, facts)
    summary |= {"channel_seeds": opts.channel_seeds, "groups": len(groups), "errors": [e["error"] for e in errors],
                "settings": {"rates": list(rates), "effort": effort, "steps": steps, "mtu": opts.mtu,
                             "protection": opts.protection}}  # fmt: skip
    summary["expected"] = report.expected(stats, subjects)
    report.write_markdown(out / "loss.md", summary, stats, subjects, profile, facts, conceal_rows)
    plots.plots(summary, subjects, out)
    return summary

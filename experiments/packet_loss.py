"""Packet loss: PSNR against loss rate, mean burst length and bit errors, for SIREN, SPINR (``prefix``
and ``skip`` concealment), SPINR with unequal error protection, and a progressive JPEG of the same size
under the same packetization.

Each image is fitted once per model and seed; the streams then go through ``--channel-seeds`` seeded
netsim channels per condition (decoding is numpy and cached by the set of delivered units). Every
subject of one (image, seed) meets the same channel seeds, so curves are paired draws.

Definitions (see :mod:`streaming.loss`):

- A stream is the header packet then one packet per unit, sent as datagrams with the channel's MTU
  (default 1200 bytes: a packet is lost if any of its fragments is).
- *header reliable* (default): the header packet is handed over intact whatever the channel did (it
  can go over a reliable side channel: it is a few hundred bytes). *header lossy*: it takes its chances,
  and a lost header means nothing decodes. For the JPEG the first packet plays the header's part.
- Nothing decodable scores as a mid-grey picture (value 128): SIREN missing any unit, SPINR missing the
  header or stage 0, a JPEG prefix without one complete scan.
- Protection ``CRIT[+REST]`` (e.g. ``repeat:3+xor:4``): the header and the packets every prefix needs
  (stage 0; with the shared head also the output layer) get ``CRIT``, later layers ``REST`` (none by
  default). Protected streams carry netsim's 28-byte envelope on every datagram; all of that counts as
  overhead. Protected SPINR decodes with ``prefix`` concealment (measured better than ``skip``).
- JPEG: Pillow, progressive, optimized, highest quality whose size is at most the SPINR stream's, cut into
  packets of the SPINR packets' sizes; a lost packet loses everything after it; the intact prefix is cut
  back to its last complete scan and decoded.
- Bit errors: ``crc`` treats a damaged packet as lost (spinr's CRC, netsim's envelope CRC, or a transport
  checksum for the JPEG); ``use`` decodes damaged packets anyway (spinr's CRC recomputed, JPEG bytes
  as they came).
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
from experiments.common import (
    STUDY_SIZES,
    Profile,
    fit_for_job,
    markdown_table,
    plt,
    run_jobs,
    scaled,
    write_csv,
    write_md,
)

DEFAULT_RATES = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
DEFAULT_BURSTS = (1.0, 2.0, 4.0, 8.0)
BURST_LOSS = 0.1
"""Loss rate of the burst-length sweep."""
DEFAULT_BERS = (0.0, 1e-5, 3e-5, 1e-4)
DEFAULT_PROTECTION = ("repeat:3", "repeat:3+xor:4")
CHANNEL_SEEDS = {"tiny": 20, "quick": 100, "paper": 500}
PROTECTED_CONCEAL = "prefix"
"""Concealment of the protected streams: the decoder's default, and the better one in docs/LOSS.md."""
MAX_CHANNEL_SEEDS = 100_000


@dataclass
class Options:
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


def options_from_args(args: Any, profile: Profile) -> Options:
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
    return Options(
        _floats("--loss-rates", getattr(args, "loss_rates", None), DEFAULT_RATES, 0.0, 0.95),
        _floats("--bursts", getattr(args, "bursts", None), DEFAULT_BURSTS, 1.0, 1000.0),
        _floats("--bers", getattr(args, "bers", None), DEFAULT_BERS, 0.0, 0.01),
        seeds,
        protection,
        mtu,
    )


def parse_protection(spec: str) -> tuple[str, str]:
    """``CRIT[+REST]`` -> (critical scheme, rest scheme), each checked by netsim's parser."""
    from netsim import parse_scheme
    from netsim.errors import ChannelConfigError

    crit, _, rest = spec.partition("+")
    try:
        return str(parse_scheme(crit)), str(parse_scheme(rest or "none"))
    except ChannelConfigError as exc:
        raise ConfigError(
            f"--protection {spec!r}: {exc}; expected CRIT[+REST], e.g. repeat:3 or rs:2:2+xor:4"
        ) from None


def fit_job(j: dict[str, Any]) -> dict[str, Any]:
    f = fit_for_job(j)
    # The header's meta holds the training wall time and the stream id is random: both change packet
    # sizes or bytes between identical encodes, and sizes drive fragmentation, the JPEG budget and its
    # cuts. Fixing them makes seeded runs byte-identical; neither affects decoding.
    f.bitstream.header.meta = {**f.bitstream.header.meta, "seconds": 0.0}
    f.bitstream.stream_id = 0x5EED0000 + 2 * j["seed"] + (j["model"] == "spinr")
    return {k: j[k] for k in ("image_name", "model", "seed")} | {
        "psnr": f.psnr,
        "bitstream": f.bitstream,
    }


@dataclass
class Lane:
    """One transmission per channel draw (packets, protection), scored by one or more subjects."""

    packets: list[bytes]
    plan: Any
    subjects: dict[str, Any]
    spec: str = ""


def build_lanes(
    image: np.ndarray, siren: Any, spinr: Any, opts: Options
) -> tuple[list[Lane], dict[str, float], dict[str, Any]]:
    """The lanes of one (image, seed), the no-loss PSNR of every subject, and JPEG/overhead facts."""
    from netsim import ProtectionPlan
    from streaming.loss import InrSubject, JpegSubject, critical_packets, jpeg_of_size, overhead

    sir = InrSubject(siren["bitstream"], image, "prefix")
    pre = InrSubject(spinr["bitstream"], image, "prefix")
    skp = InrSubject(spinr["bitstream"], image, "skip")
    lanes = [
        Lane(sir.packets, None, {"siren": sir}),
        Lane(pre.packets, None, {"spinr/prefix": pre, "spinr/skip": skp}),
    ]
    clean = {"siren": siren["psnr"], "spinr/prefix": spinr["psnr"], "spinr/skip": spinr["psnr"]}
    facts: dict[str, Any] = {"overhead": {}}
    critical = critical_packets(spinr["bitstream"])
    for spec in opts.protection:
        crit, rest = parse_protection(spec)
        plan = ProtectionPlan.unequal(len(pre.packets), critical, crit, rest)
        name = f"spinr/{PROTECTED_CONCEAL}+{spec}"
        lanes.append(
            Lane(pre.packets, plan, {name: InrSubject(spinr["bitstream"], image, PROTECTED_CONCEAL)}, spec)
        )
        clean[name] = spinr["psnr"]
        facts["overhead"][name] = overhead(pre.packets, plan)
    sizes = [len(p) for p in pre.packets]
    data, quality = jpeg_of_size(image, sum(sizes))
    jpg = JpegSubject(data, sizes, image)
    lanes.append(Lane(jpg.packets, None, {"jpeg": jpg}))
    clean["jpeg"] = jpg.full_psnr
    facts |= {
        "jpeg_quality": quality,
        "jpeg_bytes": len(data),
        "jpeg_packets": len(jpg.packets),
        "spinr_bytes": sum(sizes),
        "siren_bytes": sum(len(p) for p in sir.packets),
        "spinr_packets": sizes,
        "critical": critical,
    }
    return lanes, clean, facts


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


def conditions(opts: Options) -> list[Condition]:
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
    groups: list[tuple[list[Lane], dict[str, float]]], conds: list[Condition], seeds: int, quiet: bool
) -> dict[tuple[str, float, str, str, str], list[tuple[float, int]]]:
    """(sweep, x, header, mode, subject) -> [(psnr, units used)] over groups x channel seeds."""
    from streaming.loss import transmit

    results: dict[tuple[str, float, str, str, str], list[tuple[float, int]]] = defaultdict(list)
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


def concealment(groups: list[tuple[list[Lane], dict[str, float]]]) -> list[dict[str, Any]]:
    """One middle SPINR layer missing (everything else intact): ``prefix`` vs ``skip``, per layer."""
    from codec.decoder import ProgressiveDecoder
    from streaming.loss import Received

    rows = []
    for gi, (lanes, clean) in enumerate(groups):
        pre, skp = lanes[1].subjects["spinr/prefix"], lanes[1].subjects["spinr/skip"]
        dec = ProgressiveDecoder(conceal="prefix")
        dec.add_packet(pre.packets[0])
        arch = dec.arch
        assert arch is not None
        for k in range(1, arch.depths - 1):
            gone = {u + 1 for u in arch.trunk_units(k)}
            rec = Received({i: p for i, p in enumerate(pre.packets) if i not in gone})
            rows.append(
                {
                    "group": gi,
                    "missing_stage": k,
                    "full": clean["spinr/prefix"],
                    "prefix": pre.score(rec)[0],
                    "skip": skp.score(rec)[0],
                }
            )
    return rows


def _stats(values: list[tuple[float, int]], seeds: int) -> dict[str, float]:
    """Mean over all draws; std over channel seeds within a fit, pooled over fits (the spread the
    channel causes, not the spread between images)."""
    p = np.array([v for v, _ in values], dtype=np.float64)
    per_fit = p.reshape(-1, seeds)
    return {
        "n": int(p.size),
        "mean": float(p.mean()),
        "std": float(np.sqrt(per_fit.var(axis=1, ddof=1).mean())) if seeds > 1 else 0.0,
        "p10": float(np.percentile(p, 10)),
        "nothing": float(np.mean([u == 0 for _, u in values])),
    }


def _ms(s: dict[str, float]) -> str:
    return f"{s['mean']:.2f} ± {s['std']:.2f}"


def run(images: list[tuple[str, np.ndarray]], profile: Profile, args: Any, out: Path) -> dict[str, Any]:
    opts = options_from_args(args, profile)
    w, h = STUDY_SIZES["spinr"]["small"]
    width, hidden = scaled(w, profile), getattr(args, "depth", None) or h
    quiet = bool(getattr(args, "json", False))
    jobs = [
        {
            "image": img,
            "image_name": name,
            "model": model,
            "width": width,
            "hidden": hidden,
            "seed": seed,
            "steps": profile.steps,
            "device": getattr(args, "device", "cpu"),
        }
        for seed in range(profile.seeds)
        for name, img in images
        for model in ("siren", "spinr")
    ]
    fits = run_jobs(
        fit_job, jobs, getattr(args, "workers", 1), "loss", quiet, getattr(args, "time_budget", 0.0)
    )
    by_key = {(f["image_name"], f["seed"], f["model"]): f for f in fits if f}
    groups, facts = [], []
    for seed in range(profile.seeds):
        for name, img in images:
            siren, spinr = by_key.get((name, seed, "siren")), by_key.get((name, seed, "spinr"))
            if siren and spinr:  # a time budget may have cut one of the pair
                lanes, clean, fact = build_lanes(img, siren, spinr, opts)
                groups.append((lanes, clean))
                facts.append(fact | {"image": name, "seed": seed})
    if not groups:
        raise ConfigError("no (image, seed) pair was fitted for both models: raise --time-budget")
    conds = conditions(opts)
    results = simulate(groups, conds, opts.channel_seeds, quiet)
    stats = {k: _stats(v, opts.channel_seeds) for k, v in results.items()}
    subjects = list(groups[0][1])
    clean = {s: float(np.mean([c[s] for _, c in groups])) for s in subjects}
    conceal_rows = concealment(groups)

    # -- overhead: netsim's accounting, checked against the bytes the channel was handed at 0 % loss
    from netsim import ChannelConfig
    from streaming.loss import transmit

    overhead: dict[str, dict[str, float]] = {}
    for name in subjects:
        if "+" not in name:
            continue
        acc, meas, pay = [], [], []
        for (lanes, _), fact in zip(groups, facts, strict=True):
            lane = next(ln for ln in lanes if name in ln.subjects)
            payload = sum(len(p) for p in lane.packets)
            acc.append(fact["overhead"][name][0])
            meas.append(transmit(lane.packets, ChannelConfig(mtu=opts.mtu), lane.plan).wire_bytes - payload)
            pay.append(payload)
        overhead[name] = {
            "bytes": float(np.mean(meas)),
            "accounted_bytes": float(np.mean(acc)),
            "payload_bytes": float(np.mean(pay)),
            "ratio": float(np.sum(meas) / np.sum(pay)),
        }

    rows = [
        {"sweep": k[0], "x": k[1], "header": k[2], "mode": k[3], "subject": k[4], **s}
        for k, s in stats.items()
    ]
    rows += [
        {"sweep": "clean", "x": 0.0, "header": "", "mode": "", "subject": s, "mean": v}
        for s, v in clean.items()
    ]
    rows += [
        {
            "sweep": "conceal",
            "x": r["missing_stage"],
            "subject": f"spinr/{c}",
            "mean": r[c],
            "group": r["group"],
        }
        for r in conceal_rows
        for c in ("prefix", "skip")
    ]
    write_csv(out / "loss.csv", rows)

    def curve(sweep: str, header: str, mode: str, subject: str) -> list[list[float]]:
        return sorted(
            [k[1], s["mean"], s["std"]]
            for k, s in stats.items()
            if k[0] == sweep and k[2] == header and k[3] == mode and k[4] == subject
        )

    summary: dict[str, Any] = {
        "clean": clean,
        "loss": {hd: {s: curve("loss", hd, "crc", s) for s in subjects} for hd in ("reliable", "lossy")},
        "burst": {s: curve("burst", "reliable", "crc", s) for s in subjects},
        # Bit error rates in errors per million bits: the CLI's JSON rounds floats to 4 decimals.
        "ber_ppm": {
            m: {s: [[x * 1e6, mu, sd] for x, mu, sd in curve("ber", "reliable", m, s)] for s in subjects}
            for m in ("crc", "use")
        },
        "overhead": overhead,
        "conceal": {
            c: float(np.mean([r[c] for r in conceal_rows])) if conceal_rows else float("nan")
            for c in ("prefix", "skip")
        },
        "jpeg": {
            k: [f[k] for f in facts] for k in ("jpeg_quality", "jpeg_bytes", "spinr_bytes", "siren_bytes")
        },
        "channel_seeds": opts.channel_seeds,
        "groups": len(groups),
    }
    expected = {}
    for hd in ("reliable", "lossy"):
        for s in subjects:
            for r in (0.05, 0.1):
                if ("loss", r, hd, "crc", s) in stats:
                    expected.setdefault(hd, {}).setdefault(s, {})[f"{r:.0%}"] = stats[
                        ("loss", r, hd, "crc", s)
                    ]["mean"]
    summary["expected"] = expected

    write_md(
        out / "loss.md",
        "Packet loss: SIREN, SPINR, protected SPINR, progressive JPEG",
        _markdown(summary, stats, subjects, opts, profile, facts, conceal_rows),
    )
    _plots(summary, subjects, out)
    return summary


def _markdown(
    summary: dict[str, Any],
    stats: dict[tuple[str, float, str, str, str], dict[str, float]],
    subjects: list[str],
    opts: Options,
    profile: Profile,
    facts: list[dict[str, Any]],
    conceal_rows: list[dict[str, Any]],
) -> str:
    f0 = facts[0]
    n_draws = summary["groups"] * opts.channel_seeds
    md = (
        f"Profile {profile.name}: {summary['groups']} (image, seed) fit(s) x {opts.channel_seeds} channel seeds "
        f"= {n_draws} draws per cell, {profile.steps} steps, MTU {opts.mtu} bytes. Cells: PSNR (dB), mean over all "
        f"draws ± std over channel seeds (pooled within fits); nothing decodable = mid-grey picture. SPINR stream {np.mean(summary['jpeg']['spinr_bytes']):.0f} B "
        f"in {len(f0['spinr_packets'])} packets (first fit: {f0['spinr_packets']}), SIREN {np.mean(summary['jpeg']['siren_bytes']):.0f} B, "
        f"JPEG {np.mean(summary['jpeg']['jpeg_bytes']):.0f} B (quality {summary['jpeg']['jpeg_quality']}). "
        f"Protected packets (index, 0 = header): {f0['critical']}.\n\n"
    )

    def table(sweep: str, header: str, mode: str, label: str, fmt: str) -> str:
        xs = sorted({k[1] for k in stats if k[0] == sweep})
        body = [
            [s] + [_ms(stats[(sweep, x, header, mode, s)]) for x in xs]
            for s in subjects
            if (sweep, xs[0], header, mode, s) in stats
        ]
        return markdown_table(["subject"] + [format(x, fmt) + label for x in xs], body)

    md += "## PSNR vs loss rate (independent loss), header reliable\n\n" + table(
        "loss", "reliable", "crc", "", ".0%"
    )
    md += "\n## PSNR vs loss rate, header unprotected (a lost header: nothing decodes)\n\n"
    md += table("loss", "lossy", "crc", "", ".0%")
    md += f"\n## PSNR vs mean burst length (Gilbert-Elliott), loss {BURST_LOSS:.0%}, header reliable\n\n"
    md += table("burst", "reliable", "crc", "", "g")
    md += "\n## Bit errors (no loss), header reliable: CRC detection (damaged = lost)\n\n"
    md += table("ber", "reliable", "crc", "", "g")
    md += "\n## Bit errors: damaged packets used anyway\n\n" + table("ber", "reliable", "use", "", "g")
    bers = sorted({k[1] for k in stats if k[0] == "ber"})
    body = [
        [s]
        + [
            " / ".join(f"{stats[('ber', e, 'reliable', m, s)]['p10']:.2f}" for m in ("crc", "use"))
            for e in bers
        ]
        for s in subjects
    ]
    md += "\nWorst draws: 10th percentile PSNR, crc / use.\n\n" + markdown_table(
        ["subject"] + [format(e, "g") for e in bers], body
    )

    md += "\n## Expected PSNR, protection overhead\n\n"
    body = []
    for s in subjects:
        row = [s, f"{summary['clean'][s]:.2f}"]
        for hd in ("reliable", "lossy"):
            for r in (0.05, 0.1):
                st = stats.get(("loss", r, hd, "crc", s))
                row.append(f"{st['mean']:.2f} ({st['nothing']:.0%})" if st else "-")
        oh = summary["overhead"].get(s)
        row.append(f"{oh['bytes']:.0f} B ({oh['ratio']:.1%})" if oh else "0")
        body.append(row)
    md += markdown_table(
        [
            "subject",
            "no loss",
            "5 % (hdr reliable)",
            "10 % (hdr reliable)",
            "5 % (hdr lossy)",
            "10 % (hdr lossy)",
            "overhead",
        ],
        body,
    )
    md += "\nIn brackets: share of draws where nothing decoded. Overhead: extra bytes on the wire (envelopes, copies, parity) per stream, mean over fits, and ratio to the stream's bytes.\n"

    md += "\n## Concealment: one middle SPINR layer missing, all else intact\n\n"
    if conceal_rows:
        ks = sorted({r["missing_stage"] for r in conceal_rows})
        body = [
            [f"stage {k}"]
            + [
                f"{np.mean([r[c] for r in conceal_rows if r['missing_stage'] == k]):.2f}"
                for c in ("full", "prefix", "skip")
            ]
            for k in ks
        ]
        md += markdown_table(["missing", "all layers", "prefix", "skip"], body)
        better = "skip" if summary["conceal"]["skip"] > summary["conceal"]["prefix"] else "prefix"
        md += (
            f"\nMean over missing stages and fits: prefix {summary['conceal']['prefix']:.2f} dB, "
            f"skip {summary['conceal']['skip']:.2f} dB: **{better}** is better.\n"
        )
    else:
        md += "No middle layer (fewer than 2 hidden layers).\n"
    return md


def _plots(summary: dict[str, Any], subjects: list[str], out: Path) -> None:
    pyplot = plt()

    def draw(ax: Any, curves: dict[str, list[list[float]]], style: str = "-", label: bool = True) -> None:
        for i, s in enumerate(subjects):
            c = np.array(curves.get(s) or [])
            if not c.size:
                continue
            color = f"C{i}"
            ax.plot(c[:, 0], c[:, 1], style, marker="o", ms=3, color=color, label=s if label else None)
            if style == "-":
                ax.fill_between(c[:, 0], c[:, 1] - c[:, 2], c[:, 1] + c[:, 2], color=color, alpha=0.06)

    fig, axes = pyplot.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, hd in zip(axes, ("reliable", "lossy"), strict=True):
        draw(ax, summary["loss"][hd])
        ax.set_title(f"header {hd}", fontsize=9)
        ax.set_xlabel("packet loss rate")
    axes[0].set_ylabel("PSNR (dB)")
    axes[1].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=80)
    pyplot.close(fig)

    fig, ax = pyplot.subplots(figsize=(4.8, 3.4))
    draw(ax, summary["burst"])
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"mean burst length (loss {BURST_LOSS:.0%})")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "loss_burst.png", dpi=80)
    pyplot.close(fig)

    fig, ax = pyplot.subplots(figsize=(4.8, 3.4))
    draw(ax, summary["ber_ppm"]["crc"])
    draw(ax, summary["ber_ppm"]["use"], "--", label=False)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("bit errors per million bits")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("solid: CRC drops damaged packets; dashed: damaged packets used", fontsize=8)
    ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "loss_ber.png", dpi=80)
    pyplot.close(fig)

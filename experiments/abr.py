"""ABR: the picture at a deadline on time-varying, lossy links, ABR controller vs fixed policies.

For each image a SPINR stream is encoded once (its rate-quality ladder comes from the encoder); then,
on a virtual clock (:mod:`streaming.abr_sim`, the server's controller and estimator, a netsim
channel), every policy streams it over every trace x loss rate x deadline x channel seed:

- ``all``: every packet of the one-shot stream in order at time 0 (protocol version 1);
- ``abr``: the controller, on receiver reports (protocol version 2), on the same stream split into
  base and refinement packets (``--refinements``, default 1 level of 2 bits; :mod:`codec.refine`),
  choosing refinement vs new layer vs nothing;
- ``abr-units``: the controller on the one-shot stream (new layer vs nothing only);
- ``fixed-K``: the first K packets of the one-shot stream at time 0;
- ``fixed-base``, ``fixed-base+L``: every unit of the refined stream at level 0 (up to L) at time 0.

Traces are scaled to the stream: ``R`` is the rate that carries the whole stream exactly by the
deadline. ``steady`` runs at 0.7 R (the deadline binds), ``drop-10x`` at 1.5 R falling tenfold at half
the deadline, ``rise-10x`` the reverse, ``on-off`` 1.2 R with outages, ``lte`` a seeded LTE Markov trace
scaled to a mean of R. ``--traces`` also takes any netsim trace spec (absolute kbit/s).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.fitting import FitJob, run_fields
from experiments.pool import JobPool
from experiments.profiles import Profile, scaled
from experiments.reports import markdown_table, plt, write_csv, write_md

SCALED_TRACES = ("steady", "drop-10x", "rise-10x", "on-off", "lte")
DEFAULT_DEADLINES = (1.0, 2.0)
DEFAULT_LOSS = (0.0, 0.05)
DELAY_MS = 20.0
CLASSICAL = ("jpeg-progressive", "webp")


def trace_for(name: str, stream_bytes: int, deadline: float, seed: int) -> Any:
    """A :class:`netsim.BandwidthTrace`: one of :data:`SCALED_TRACES` sized to the stream, or a spec."""
    from netsim.trace import BandwidthTrace, markov, on_off, parse_trace, step

    r = stream_bytes * 8 / 1000 / deadline  # kbit/s that carry the stream exactly by the deadline
    if name == "steady":
        return BandwidthTrace.constant(0.7 * r)
    if name == "drop-10x":
        return step(1.5 * r, 0.15 * r, deadline / 2)
    if name == "rise-10x":
        return step(0.15 * r, 1.5 * r, deadline / 2)
    if name == "on-off":
        return on_off(1.2 * r, 0.25 * deadline, 0.15 * deadline, duration_s=4 * deadline)
    if name == "lte":
        from netsim.trace import MARKOV_PRESETS

        base = markov("lte", 4 * deadline, seed)
        k = r / MARKOV_PRESETS["lte"].stationary_kbps()
        return BandwidthTrace(base.times, tuple(x * k for x in base.kbps))
    return parse_trace(name)


@dataclass(kw_only=True)
class AbrJob(FitJob):
    bits: int
    refinements: int = 1
    refinement_bits: int = 2

    def fit_overrides(self) -> dict[str, Any]:
        return {"model": "spinr", "bits": self.bits}


def _job(j: AbrJob) -> dict[str, Any]:
    from codec.classical import at_bytes, decode
    from codec.metrics import psnr
    from codec.refined import refine_stream
    from streaming.feedback import stream_rungs

    f = j.fit()
    bs = f.bitstream
    size = len(bs.to_bytes())
    refined = refine_stream(bs, j.image, j.refinements, j.refinement_bits) if j.refinements else None
    classical = {}
    for codec in CLASSICAL:  # what a classical codec reaches in the stream's bytes
        found = at_bytes(j.image, codec, size)
        classical[codec] = {
            "bytes": len(found.data),
            "psnr": psnr(decode(found.data), j.image) if found.fits else None,
        }
    return {
        "image_name": j.image_name,
        "seed": j.seed,
        "rungs": [(r.bytes, r.psnr) for r in stream_rungs(bs)],
        "refined_rungs": [(r.bytes, r.psnr, r.level, r.direct) for r in stream_rungs(refined)]
        if refined
        else None,
        "refined_bytes": len(refined.to_bytes()) if refined else None,
        "refined_header_bytes": len(refined.packets()[0].to_bytes()) if refined else None,
        "header_bytes": len(bs.packets()[0].to_bytes()),
        "psnr": f.psnr,
        "bytes": size,
        "pixels": int(j.image.shape[0] * j.image.shape[1]),
        "classical": classical,
    }


def simulate_all(
    fits: list[dict[str, Any]], traces: list[str], deadlines: list[float], losses: list[float], seeds: int
) -> tuple[list[dict[str, Any]], list[float], dict[str, Any]]:
    """Every policy on every condition; rows for the CSV, controller decision times, and the quality
    over time of each policy on the first fit's first condition of every trace (for the plot)."""
    from netsim import ChannelConfig
    from streaming.abr import Goal, Rung
    from streaming.abr_sim import policy_names, simulate

    rows, decide_s, decide_cpu, curves = [], [], [], {}
    for fit in fits:
        rungs = [Rung(b, p) for b, p in fit["rungs"]]
        refined = [Rung(b, p, lv, d) for b, p, lv, d in fit["refined_rungs"] or []]
        levels = max((r.level for r in refined), default=0)
        total = fit["header_bytes"] + sum(r.bytes for r in rungs)  # the traces scale to the one-shot stream
        for trace_name in traces:
            for deadline in deadlines:
                for loss in losses:
                    for seed in range(seeds):
                        trace = trace_for(trace_name, total, deadline, seed)
                        channel = ChannelConfig(trace=trace, loss=loss, delay_ms=DELAY_MS, seed=seed)
                        names = policy_names(len(rungs), levels) + (["abr-units"] if refined else [])
                        for policy in names:
                            # abr and fixed-base* stream the refined packets; the rest the one-shot ones
                            on_refined = refined and (policy == "abr" or policy.startswith("fixed-base"))
                            res = simulate(
                                refined if on_refined else rungs,
                                channel,
                                policy.removesuffix("-units"),
                                Goal(deadline_s=deadline),
                                fit["refined_header_bytes" if on_refined else "header_bytes"],
                            )
                            if policy == "abr":
                                decide_s += res.decide_seconds
                                decide_cpu += res.decide_cpu_seconds
                            rows.append(
                                {
                                    "image": fit["image_name"],
                                    "fit_seed": fit["seed"],
                                    "trace": trace_name,
                                    "deadline_s": deadline,
                                    "loss": loss,
                                    "channel_seed": seed,
                                    "policy": policy,
                                    "psnr_at_deadline": res.psnr_at(deadline),
                                    "bytes": res.bytes_sent,
                                    "first_picture_s": res.first_picture_s(),
                                    "stalls": res.stalls(deadline),
                                }
                            )
                            key = (trace_name, policy)
                            if (
                                fit is fits[0]
                                and seed == 0
                                and loss == losses[-1]
                                and deadline == deadlines[-1]
                            ):
                                curves[key] = [
                                    (a["time"], a["psnr"]) for a in res.arrivals if a["psnr"] is not None
                                ]
    plot = {"curves": curves, "deadline": deadlines[-1], "loss": losses[-1], "decide_cpu": decide_cpu}
    return rows, decide_s, plot


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{condition: {policy: means}}``; a condition is ``trace/loss/deadline``. A run with no picture
    by the deadline counts 0 dB (it is in ``no_picture``)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(f"{r['trace']}/loss{r['loss']:g}/{r['deadline_s']:g}s", r["policy"])].append(r)
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (cond, policy), rs in groups.items():
        first = [r["first_picture_s"] for r in rs if r["first_picture_s"] is not None]
        out[cond][policy] = {
            "psnr_at_deadline": statistics.fmean(r["psnr_at_deadline"] or 0.0 for r in rs),
            "bytes": statistics.fmean(r["bytes"] for r in rs),
            "first_picture_s": statistics.fmean(first) if first else None,
            "stalls": statistics.fmean(r["stalls"] for r in rs),
            "no_picture": sum(r["psnr_at_deadline"] is None for r in rs),
            "runs": len(rs),
        }
    return dict(out)


def run(
    images: list[tuple[str, np.ndarray]], profile: Profile, args: Any, out: Path, pool: JobPool | None = None
) -> dict[str, Any]:
    hidden = args.depth or 8
    jobs = [
        AbrJob(
            **run_fields(profile, args, name, img),
            model="spinr",
            width=scaled(128, profile),
            hidden=hidden,
            seed=0,
            bits=args.bits,
            refinements=getattr(args, "refinements", 1),
            refinement_bits=getattr(args, "refinement_bits", 2),
        )  # fmt: skip
        for name, img in images
    ]
    pool = pool or JobPool.from_args(args)
    fits = [r for r in pool.map(_job, jobs, "abr") if r]
    traces = list(args.traces or SCALED_TRACES)
    deadlines = list(args.deadlines or DEFAULT_DEADLINES)
    losses = list(args.loss_rates) if args.loss_rates else list(DEFAULT_LOSS)
    seeds = args.channel_seeds or profile.seeds
    rows, decide_s, plot = simulate_all(fits, traces, deadlines, losses, seeds)
    write_csv(out / "abr.csv", rows)
    table = summarize(rows)
    policies = sorted(
        {p for c in table.values() for p in c}, key=lambda p: (p != "all", p != "abr", p != "abr-units", p)
    )
    body = [
        [cond]
        + [
            f"{table[cond][p]['psnr_at_deadline']:.2f} dB / {table[cond][p]['bytes'] / 1000:.1f} kB"
            if p in table[cond]
            else ""
            for p in policies
        ]
        for cond in table
    ]
    decide_us = sorted(x * 1e6 for x in decide_s)
    cpu_us = sorted(x * 1e6 for x in plot.pop("decide_cpu"))
    timing = {
        "decisions": len(decide_us),
        "median_us": decide_us[len(decide_us) // 2] if decide_us else None,
        "p99_us": decide_us[int(0.99 * (len(decide_us) - 1))] if decide_us else None,
        "cpu_median_us": cpu_us[len(cpu_us) // 2] if cpu_us else None,
        "cpu_p99_us": cpu_us[int(0.99 * (len(cpu_us) - 1))] if cpu_us else None,
    }
    write_md(
        out / "abr.md",
        "ABR: PSNR at the deadline / bytes sent",
        markdown_table(["trace/loss/deadline", *policies], body)
        + f"\n\nController decision time: median {timing['median_us']:.1f} us, p99 {timing['p99_us']:.1f} us"
        f" wall (CPU time: median {timing['cpu_median_us']:.1f} us, p99 {timing['cpu_p99_us']:.1f} us)"
        f" over {timing['decisions']} decisions.\n\nThe streams, and classical codecs in as many bytes:\n\n"
        + markdown_table(
            ["image", "bytes", "bpp", "SPINR dB", *CLASSICAL],
            [
                [f["image_name"], f["bytes"], f"{f['bytes'] * 8 / f['pixels']:.2f}", f"{f['psnr']:.2f}"]
                + [
                    "-" if f["classical"][c]["psnr"] is None else f"{f['classical'][c]['psnr']:.2f}"
                    for c in CLASSICAL
                ]
                for f in fits
            ],
        ),
    )
    _plots(out, table, policies, plot)
    return {
        "traces": table,
        "stream": [
            {
                "image": f["image_name"],
                "bytes": f["bytes"],
                "bpp": f["bytes"] * 8 / f["pixels"],
                "psnr": f["psnr"],
                "packets": len(f["rungs"]),
                "refined_bytes": f["refined_bytes"],
                "refined_packets": sum(not d for *_, d in f["refined_rungs"] or []),
                "ladder": _ladder_summary(f),
                "classical": f["classical"],
            }
            for f in fits
        ],
        "decide": timing,
    }


def _ladder_summary(f: dict[str, Any]) -> dict[str, Any]:
    """Bytes and PSNR of the full one-shot stream and of each uniform level of the refined one (the
    splitting's cost: the same final PSNR for more bytes)."""
    out: dict[str, Any] = {"one_shot": {"bytes": f["bytes"], "psnr": f["psnr"]}}
    if f["refined_rungs"]:
        levels = max(lv for _, _, lv, _ in f["refined_rungs"])
        total = f["refined_header_bytes"]
        for level in range(levels + 1):
            row = [(b, p) for b, p, lv, direct in f["refined_rungs"] if lv == level and not direct]
            total += sum(b for b, _ in row)
            out[f"level_{level}"] = {"bytes": total, "bpp": total * 8 / f["pixels"], "psnr": row[-1][1]}
        out["split_cost"] = total / f["bytes"] - 1
    return out


def _plots(
    out: Path, table: dict[str, dict[str, dict[str, Any]]], policies: list[str], plot: dict[str, Any]
) -> None:
    p = plt()
    conds = list(table)
    fig, ax = p.subplots(figsize=(max(6, 0.9 * len(conds)), 4))
    width = 0.8 / len(policies)
    for i, pol in enumerate(policies):
        ys = [table[c].get(pol, {}).get("psnr_at_deadline", np.nan) for c in conds]
        ax.bar(np.arange(len(conds)) + i * width, ys, width, label=pol)
    ax.set_xticks(np.arange(len(conds)) + 0.4 - width / 2, conds, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("PSNR at the deadline (dB)")
    lows = [v["psnr_at_deadline"] for c in conds for v in table[c].values() if v["psnr_at_deadline"] > 0]
    if lows:
        ax.set_ylim(bottom=max(0.0, min(lows) - 3))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "abr_at_deadline.png", dpi=120)
    p.close(fig)
    curves = plot["curves"]
    traces = sorted({t for t, _ in curves})
    fig, axes = p.subplots(1, len(traces), figsize=(3.2 * len(traces), 3), squeeze=False)
    for ax, t in zip(axes[0], traces, strict=True):
        for pol in [p for p in policies if p != "abr"] + ["abr"]:  # the controller on top
            pts = curves.get((t, pol))
            if pts:
                px, py = zip(*pts, strict=True)
                ax.step(px, py, where="post", label=pol, lw=2.0 if pol == "abr" else 1.0)
        ax.axvline(plot["deadline"], color="k", lw=0.8, ls="--")
        ax.set_title(f"{t}, loss {plot['loss']:g}", fontsize=8)
        ax.set_xlabel("time (s)")
        ax.set_xlim(0, 1.5 * plot["deadline"])
    axes[0][0].set_ylabel("PSNR (dB)")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "abr_over_time.png", dpi=120)
    p.close(fig)

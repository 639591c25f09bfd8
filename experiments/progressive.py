"""Fig 7: the SPINR picture after each stage (every prefix depth) as a strip, PSNR under each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.fitting import FitJob, run_fields
from experiments.pool import JobPool
from experiments.profiles import SPINR_PAPER, STUDY_SIZES, Profile, scaled
from experiments.reports import fmt_ms, markdown_table, mean_std, plt, write_csv, write_md

VARIANTS = {"spinr": {}, "spinr-paper": SPINR_PAPER}


@dataclass(kw_only=True)
class ProgressiveJob(FitJob):
    label: str
    """A key of :data:`VARIANTS`."""
    bits: int


def job(j: ProgressiveJob) -> dict[str, Any]:
    from codec.decoder import ProgressiveDecoder
    from codec.metrics import psnr

    f = j.fit(model="spinr", options=VARIANTS[j.label], bits=j.bits)
    dec = ProgressiveDecoder.from_bitstream(f.bitstream)
    pics = [dec.decode(depth=d).rgb for d in range(1, dec.depths + 1)]
    return {
        "image_name": j.image_name,
        "model": j.label,
        "seed": j.seed,
        "stage_psnr": [psnr(p, j.image) for p in pics],
        "pics": pics if j.seed == 0 else None,
    }


def run(
    images: list[tuple[str, np.ndarray]], profile: Profile, args: Any, out: Path, pool: JobPool | None = None
) -> dict[str, Any]:
    w, h = STUDY_SIZES["spinr"]["small"]
    hidden = args.depth or h
    jobs = [
        ProgressiveJob(
            **run_fields(profile, args, name, img),
            model=label,
            label=label,
            width=scaled(w, profile),
            hidden=hidden,
            seed=seed,
            bits=args.bits,
        )
        for seed in range(profile.seeds)
        for label in VARIANTS
        for name, img in images
    ]
    pool = pool or JobPool.from_args(args)
    res = [r for r in pool.map(job, jobs, "progressive") if r]
    rows = [
        {"image": r["image_name"], "model": r["model"], "seed": r["seed"], "depth": d, "psnr": p}
        for r in res
        for d, p in enumerate(r["stage_psnr"])
    ]
    write_csv(out / "progressive.csv", rows)
    summary, table = {}, []
    for label in VARIANTS:
        per_depth = [
            mean_std(r["psnr"] for r in rows if r["model"] == label and r["depth"] == d)
            for d in range(hidden + 1)
        ]
        summary[label] = per_depth
        table.append(
            [label]
            + [
                fmt_ms(r["psnr"] for r in rows if r["model"] == label and r["depth"] == d)
                for d in range(hidden + 1)
            ]
        )
    md = markdown_table(["model"] + [f"depth {d}" for d in range(hidden + 1)], table)
    md += (
        f"\nPSNR (dB, 8-bit weights, numpy decoder) of the prefix of each depth; profile {profile.name}, "
        f"{len(images)} image(s) x {profile.seeds} seed(s), {profile.steps} steps.\n"
    )
    write_md(out / "progressive.md", "Fig 7: progressive decoding", md)
    pyplot = plt()
    for r in (r for r in res if r["pics"] is not None and r["image_name"] == images[0][0]):
        n = len(r["pics"]) + 1
        fig, axes = pyplot.subplots(1, n, figsize=(1.9 * n, 2.3))
        for ax, pic, p in zip(axes, r["pics"] + [images[0][1]], r["stage_psnr"] + [None], strict=True):
            ax.imshow(pic)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("original" if p is None else f"{p:.2f} dB", fontsize=9)
        fig.suptitle(f"{r['model']}: stages 0..{n - 2}", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / f"progressive_{r['model']}.png", dpi=90)
        pyplot.close(fig)
    fig, ax = pyplot.subplots(figsize=(5, 3.2))
    for label, per_depth in summary.items():
        m = np.array([x[0] for x in per_depth])
        s = np.array([x[1] for x in per_depth])
        ax.plot(range(len(m)), m, marker="o", label=label)
        ax.fill_between(range(len(m)), m - s, m + s, alpha=0.2)
    ax.set_xlabel("layers received (depth)")
    ax.set_ylabel("PSNR (dB)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "progressive.png", dpi=110)
    pyplot.close(fig)
    return {"summary": {k: [round(m, 3) for m, _ in v] for k, v in summary.items()}, "rows": len(rows)}

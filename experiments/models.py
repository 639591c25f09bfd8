"""Table 1: parameters, PSNR, SSIM and compression factor of every model family at the study's two sizes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.datasets import raw_bytes
from experiments.fitting import FitJob, run_fields
from experiments.pool import JobPool
from experiments.profiles import SPINR_PAPER, STUDY_SIZES, Profile, scaled
from experiments.reports import fmt_ms, markdown_table, mean_std, plt, write_csv, write_md

ROWS = [
    ("fourier", "large"),
    ("siren", "large"),
    ("mfn", "large"),
    ("fourier", "small"),
    ("siren", "small"),
    ("mfn", "small"),
    ("wire", "small"),
    ("diner", "small"),
    ("spinr", "small"),
]
PAPER = {  # Table 1 of the study: params (K), PSNR, SSIM, CF
    ("fourier", "large"): (132.09, 30.78, 0.857, 1.22),
    ("siren", "large"): (133.12, 31.68, 0.866, 1.22),
    ("mfn", "large"): (136.96, 33.98, 0.909, 1.17),
    ("fourier", "small"): (66.30, 30.10, 0.832, 2.41),
    ("siren", "small"): (66.82, 30.95, 0.855, 2.40),
    ("mfn", "small"): (70.27, 32.95, 0.895, 2.25),
    ("wire", "small"): (66.82, 25.96, 0.712, 1.20),
    ("diner", "small"): (545.55, 27.34, 0.751, 0.32),
}


def stored_reals(bs: Any) -> int:
    """Real numbers the stream carries (a complex WIRE weight is two)."""
    return sum(int(np.prod(shape)) for u in bs.header.units for _, shape in u.tensors)


@dataclass(kw_only=True)
class ModelsJob(FitJob):
    label: str
    """Row of the table (a model, or a variant such as ``spinr-paper``)."""
    size: str
    """``large`` or ``small`` (the study's two sizes)."""
    bits: int
    options: dict[str, Any] = field(default_factory=dict)

    def fit_overrides(self) -> dict[str, Any]:
        return {"options": self.options, "bits": self.bits}


def job(j: ModelsJob) -> dict[str, Any]:
    f = j.fit()
    return {
        "image": j.image_name,
        "model": j.label,
        "size": j.size,
        "seed": j.seed,
        "width": j.width,
        "hidden_layers": j.hidden,
        "params": f.params,
        "cf_f32": raw_bytes(j.image) / (4 * stored_reals(f.bitstream)),
        "psnr_float": f.psnr_float,
        "psnr": f.psnr,
        "ssim": f.ssim,
        "bytes": f.bytes,
        "cf": raw_bytes(j.image) / f.bytes,
    }


def run(
    images: list[tuple[str, np.ndarray]], profile: Profile, args: Any, out: Path, pool: JobPool | None = None
) -> dict[str, Any]:
    rows = list(ROWS) + [("spinr-paper", "small")]
    if args.models:
        rows = [r for r in rows if r[0] in args.models]
    jobs = []
    for seed in range(profile.seeds):
        for label, size in rows:
            model = label.split("-")[0]
            options = SPINR_PAPER if label == "spinr-paper" else {}
            w, h = STUDY_SIZES[model][size]
            for name, img in images:
                jobs.append(
                    ModelsJob(
                        **run_fields(profile, args, name, img),
                        model=model,
                        label=label,
                        size=size,
                        width=scaled(w, profile),
                        hidden=h,
                        seed=seed,
                        bits=args.bits,
                        options=options,
                    )
                )
    pool = pool or JobPool.from_args(args)
    results = [r for r in pool.map(job, jobs, "models") if r]
    write_csv(out / "models.csv", results)
    table, summary = [], {}
    for label, size in rows:
        rs = [r for r in results if r["model"] == label and r["size"] == size]
        if not rs:
            continue
        star = "*" if size == "large" else ""
        paper = PAPER.get((label, size))
        summary[f"{label}{star}"] = {
            k: mean_std(r[k] for r in rs) for k in ("psnr_float", "psnr", "ssim", "cf", "cf_f32")
        }
        table.append(
            [
                f"{label}{star}",
                f"{rs[0]['params'] / 1000:.2f}",
                len(rs),
                fmt_ms(r["psnr_float"] for r in rs),
                fmt_ms(r["psnr"] for r in rs),
                fmt_ms((r["ssim"] for r in rs), 3),
                f"{mean_std(r['cf'] for r in rs)[0]:.2f}",
                f"{mean_std(r['cf_f32'] for r in rs)[0]:.2f}",
                "—" if paper is None else f"{paper[0]} / {paper[1]} / {paper[2]} / {paper[3]}",
            ]
        )
    md = markdown_table(
        [
            "model",
            "params (K)",
            "fits",
            "PSNR float",
            f"PSNR {args.bits}-bit",
            f"SSIM {args.bits}-bit",
            "CF (stream)",
            "CF (float32)",
            "paper: params / PSNR / SSIM / CF",
        ],
        table,
    )
    md += (
        f"\nProfile {profile.name}: {len(images)} image(s), {profile.seeds} seed(s), {profile.steps} steps, "
        f"crop {profile.crop or 'none'}, width x{profile.width_scale}. Mean ± std over images and seeds. "
        f"CF (stream) = 24-bit raw image bytes / .spnr bytes ({args.bits}-bit weights); CF (float32) = raw bytes / "
        "(4 bytes x stored reals), the study's convention.\n"
    )
    write_md(out / "models.md", "Table 1: model zoo", md)
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(6, 3.2))
    labels = [str(t[0]) for t in table]
    ms = [summary[lb]["psnr_float"] for lb in labels]
    ax.bar(labels, [m for m, _ in ms], yerr=[s for _, s in ms], color="tab:blue", alpha=0.8)
    ax.set_ylabel("PSNR (dB, float)")
    ax.tick_params(axis="x", rotation=45)
    ax.set_ylim(bottom=max(0, min(m for m, _ in ms) - 5))
    fig.tight_layout()
    fig.savefig(out / "models.png", dpi=110)
    pyplot.close(fig)
    return {"summary": summary, "rows": len(results)}

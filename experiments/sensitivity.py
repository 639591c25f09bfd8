"""Fig 5: PSNR against learning rate, width and depth, with 95% confidence bands over seeds and images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.fitting import FitJob, run_fields
from experiments.pool import JobPool
from experiments.profiles import STUDY_SIZES, Profile, scaled
from experiments.reports import markdown_table, mean_std, plt, write_csv, write_md

LR_FACTORS = (0.1, 0.3, 1.0, 3.0, 10.0)
WIDTH_FACTORS = (0.5, 1.0, 2.0)
DEPTH_FACTORS = (0.5, 1.0, 2.0)


@dataclass(kw_only=True)
class SensitivityJob(FitJob):
    axis: str
    """``lr``, ``width`` or ``depth``: the swept hyper-parameter."""
    value: float
    """Its value in this job."""
    lr: float | None
    """The learning rate (None: the model's default)."""

    def fit_overrides(self) -> dict[str, Any]:
        return {"lr": self.lr}


def job(j: SensitivityJob) -> dict[str, Any]:
    f = j.fit()
    return {
        "image": j.image_name,
        "model": j.model,
        "seed": j.seed,
        "axis": j.axis,
        "value": j.value,
        "width": j.width,
        "hidden_layers": j.hidden,
        "lr": j.lr,
        "psnr_float": f.psnr_float,
        "psnr": f.psnr,
    }


def run(
    images: list[tuple[str, np.ndarray]], profile: Profile, args: Any, out: Path, pool: JobPool | None = None
) -> dict[str, Any]:
    from codec.models import MODELS

    models = args.models or ["siren", "fourier"]
    jobs = []
    for model in models:
        w0, h0 = STUDY_SIZES[model]["small"]
        w0 = scaled(w0, profile)
        lr0 = MODELS[model].default_lr
        grid: list[tuple[str, float, int, int, float | None]] = [
            ("lr", lr0 * f, w0, h0, lr0 * f) for f in LR_FACTORS
        ]
        grid += [("width", max(4, int(w0 * f)), max(4, int(w0 * f)), h0, None) for f in WIDTH_FACTORS]
        grid += [("depth", max(1, int(h0 * f)), w0, max(1, int(h0 * f)), None) for f in DEPTH_FACTORS]
        for axis, value, w, h, lr in grid:
            for name, img in images:
                for seed in range(profile.seeds):
                    jobs.append(
                        SensitivityJob(
                            **run_fields(profile, args, name, img),
                            model=model,
                            axis=axis,
                            value=value,
                            width=w,
                            hidden=h,
                            lr=lr,
                            seed=seed,
                        )
                    )
    pool = pool or JobPool.from_args(args)
    rows = [r for r in pool.map(job, jobs, "sensitivity") if r]
    write_csv(out / "sensitivity.csv", rows)
    table, summary = [], {}
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 3, figsize=(11, 3.2))
    for ax, axis in zip(axes, ("lr", "width", "depth"), strict=True):
        for model in models:
            values = sorted({r["value"] for r in rows if r["model"] == model and r["axis"] == axis})
            stats = []
            for v in values:
                ps = [
                    r["psnr_float"]
                    for r in rows
                    if r["model"] == model and r["axis"] == axis and r["value"] == v
                ]
                m, s = mean_std(ps)
                ci = 1.96 * s / np.sqrt(max(1, len(ps)))
                stats.append((m, ci))
                table.append([model, axis, f"{v:g}", f"{m:.2f}", f"± {ci:.2f}", f"{s:.2f}"])
            summary[f"{model}:{axis}"] = {
                f"{v:g}": round(m, 3) for v, (m, _) in zip(values, stats, strict=True)
            }
            means = np.array([x[0] for x in stats])
            cis = np.array([x[1] for x in stats])
            ax.plot(values, means, marker="o", label=model)
            ax.fill_between(values, means - cis, means + cis, alpha=0.25)
        ax.set_xlabel({"lr": "learning rate", "width": "width", "depth": "hidden layers"}[axis])
        if axis == "lr":
            ax.set_xscale("log")
        ax.set_ylabel("PSNR (dB, float)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sensitivity.png", dpi=110)
    pyplot.close(fig)
    md = markdown_table(["model", "axis", "value", "PSNR mean", "95% CI", "std"], table)
    md += (
        f"\nProfile {profile.name}: {len(images)} image(s) x {profile.seeds} seed(s), {profile.steps} steps; "
        "float PSNR; bands are 1.96 x std / sqrt(n).\n"
    )
    write_md(out / "sensitivity.md", "Fig 5: hyper-parameter sensitivity", md)
    return {"summary": summary, "rows": len(rows)}

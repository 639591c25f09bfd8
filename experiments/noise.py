"""Fig 6: Gaussian noise of growing sigma on the network's weights vs on the pixels.

Weights: every transmitted tensor gets ``w + N(0, sigma^2)`` (absolute sigma, the same for every tensor).
Pixels: the image in [0, 1] gets ``x + N(0, sigma^2)``, clipped, rounded to 8 bits. sigma = 0 adds
nothing, so PSNR is the clean one exactly. Weight noise is on the torch model rebuilt from the bitstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.fitting import FitJob, render, run_fields
from experiments.pool import JobPool
from experiments.profiles import STUDY_SIZES, Profile, scaled
from experiments.reports import fmt_ms, markdown_table, mean_std, plt, write_csv, write_md

SIGMAS = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1)


def noisy_pixels(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    if sigma == 0:
        return img.copy()
    x = img.astype(np.float64) / 255.0 + rng.normal(0.0, sigma, img.shape)
    return np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)


def noisy_weights(model: Any, sigma: float, rng: np.random.Generator) -> None:
    import torch

    if sigma == 0:
        return
    with torch.no_grad():
        for _, tensors in model.units():
            for _, t in tensors:
                noise = rng.normal(0.0, sigma, tuple(t.shape)).astype(np.float32)
                t.add_(torch.from_numpy(noise).to(t.device))


@dataclass(kw_only=True)
class NoiseJob(FitJob):
    bits: int
    sigmas: tuple[float, ...]

    def fit_overrides(self) -> dict[str, Any]:
        return {"bits": self.bits}


def job(j: NoiseJob) -> dict[str, Any]:
    from codec.metrics import psnr
    from codec.models import received_model

    img = j.image
    f = j.fit()
    m = received_model(f.bitstream, device=j.device)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    h, w = img.shape[:2]
    clean = render(m, w, h)
    rows, pics = [], []
    for sigma in j.sigmas:
        rng = np.random.Generator(np.random.PCG64([j.seed, int(sigma * 1e6)]))
        m.load_state_dict(state)
        noisy_weights(m, sigma, rng)
        wpic = render(m, w, h)
        ppic = noisy_pixels(img, sigma, rng)
        rows.append(
            {
                "image": j.image_name,
                "model": j.model,
                "seed": j.seed,
                "sigma": sigma,
                "psnr_clean": psnr(clean, img),
                "psnr_weights": psnr(wpic, img),
                "psnr_pixels": psnr(ppic, img) if sigma > 0 else float("inf"),
            }
        )
        pics.append((sigma, wpic, ppic))
    return {
        "rows": rows,
        "pics": pics if j.seed == 0 else None,
        "image_name": j.image_name,
        "model": j.model,
    }


def run(
    images: list[tuple[str, np.ndarray]], profile: Profile, args: Any, out: Path, pool: JobPool | None = None
) -> dict[str, Any]:
    models = args.models or ["siren", "fourier", "spinr"]
    jobs = []
    for model in models:
        w, h = STUDY_SIZES[model]["small"]
        jobs += [
            NoiseJob(
                **run_fields(profile, args, name, img),
                model=model,
                width=scaled(w, profile),
                hidden=h,
                seed=seed,
                bits=args.bits,
                sigmas=SIGMAS,
            )
            for name, img in images
            for seed in range(profile.seeds)
        ]
    pool = pool or JobPool.from_args(args)
    res = [r for r in pool.map(job, jobs, "noise") if r]
    rows = [r for x in res for r in x["rows"]]
    write_csv(out / "noise.csv", rows)
    table, summary = [], {}
    for model in models:
        for sigma in SIGMAS:
            rs = [r for r in rows if r["model"] == model and r["sigma"] == sigma]
            summary[f"{model}@{sigma}"] = {
                "weights": mean_std(r["psnr_weights"] for r in rs),
                "pixels": mean_std(r["psnr_pixels"] for r in rs),
                "clean": mean_std(r["psnr_clean"] for r in rs),
            }
            table.append(
                [
                    model,
                    sigma,
                    fmt_ms(r["psnr_clean"] for r in rs),
                    fmt_ms(r["psnr_weights"] for r in rs),
                    "∞" if sigma == 0 else fmt_ms(r["psnr_pixels"] for r in rs),
                ]
            )
    md = markdown_table(["model", "sigma", "PSNR clean", "PSNR noisy weights", "PSNR noisy pixels"], table)
    md += (
        f"\nProfile {profile.name}: {len(images)} image(s), {profile.seeds} seed(s), {profile.steps} steps.\n"
    )
    write_md(out / "noise.md", "Fig 6: noise on weights vs pixels", md)
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(5, 3.2))
    xs = np.array(SIGMAS[1:])
    for model in models:
        m = np.array([summary[f"{model}@{s}"]["weights"][0] for s in SIGMAS[1:]])
        sd = np.array([summary[f"{model}@{s}"]["weights"][1] for s in SIGMAS[1:]])
        ax.plot(xs, m, marker="o", label=f"{model}: weights")
        ax.fill_between(xs, m - sd, m + sd, alpha=0.2)
    pm = np.array([mean_std(r["psnr_pixels"] for r in rows if r["sigma"] == s)[0] for s in SIGMAS[1:]])
    ax.plot(xs, pm, "k--", marker="s", label="pixels")
    ax.set_xscale("log")
    ax.set_xlabel("noise sigma")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "noise.png", dpi=110)
    pyplot.close(fig)
    ex = next(x for x in res if x["pics"] is not None)
    n = len(ex["pics"])
    fig, axes = pyplot.subplots(2, n, figsize=(1.8 * n, 4))
    for k, (sigma, wpic, ppic) in enumerate(ex["pics"]):
        for row, pic, what in ((0, wpic, "weights"), (1, ppic, "pixels")):
            axes[row, k].imshow(pic)
            axes[row, k].set_xticks([])
            axes[row, k].set_yticks([])
            axes[row, k].set_xlabel(f"{what} σ={sigma:g}", fontsize=8)
    fig.suptitle(f"{ex['model']} on {ex['image_name']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "noise_grid.png", dpi=90)
    pyplot.close(fig)
    return {
        "summary": {k: {kk: round(vv[0], 3) for kk, vv in v.items()} for k, v in summary.items()},
        "rows": len(rows),
    }

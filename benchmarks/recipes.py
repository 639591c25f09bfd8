"""``spinr bench spinr-recipes``: SPINR training recipes against SIREN fitted in the same run.

Each recipe fits every image once (same seed), through the codec's own path (fit -> quantize -> decode),
and reports the final PSNR, the PSNR of every prefix, the PSNR after losing 1, 2 and 3 random hidden
neurons (``experiments.neurons``, averaged over draws) and the fit time as a ratio to SIREN's. This is
the measurement behind SPINR's joint phase and the study recipe (docs/SPINR.md, "Joint phase").
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    "siren (reference)": ("siren", {}),
    "spinr stages only": ("spinr", {}),
    "spinr joint 0.5": ("spinr", {"joint": 0.5}),
    "spinr joint 0.85 (study recipe)": ("spinr", {"joint": 0.85}),
    "spinr joint 0.85 + dropout 0.01": ("spinr", {"joint": 0.85, "dropout": 0.01}),
    "spinr study variant (shared, plain)": ("spinr", {"head": "shared", "residual": False}),
}
LOST = (1, 2, 3)


@dataclass(kw_only=True)
class RecipeJob:
    """One recipe fitted to one image."""

    recipe: str
    """A key of :data:`RECIPES`."""
    image: np.ndarray = field(repr=False)
    width: int
    hidden: int
    steps: int
    device: str
    bits: int
    seed: int
    trials: int
    """Random draws per lost-neuron count."""


def recipe_job(j: RecipeJob) -> dict[str, Any]:
    from codec.models import received_model
    from experiments.fitting import fit_image
    from experiments.neurons import psnr_after_loss

    model, options = RECIPES[j.recipe]
    img = j.image
    start = time.perf_counter()
    # Options spelled out in full: the study's defaults (experiments.profiles.STUDY_OPTIONS) must not leak in.
    full = {"joint": 0.0, **options} if model == "spinr" else options
    f = fit_image(img, model, j.width, j.hidden, j.seed, j.steps, device=j.device, options=full, bits=j.bits)
    seconds = time.perf_counter() - start
    base = received_model(f.bitstream)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    lost = {
        f"L@{c}": float(
            np.mean([psnr_after_loss(base, state, img, c, j.seed, t, c)[0] for t in range(j.trials)])
        )
        for c in LOST
    }
    return {"recipe": j.recipe, "psnr": f.psnr, "stage_psnr": f.stage_psnr, "seconds": seconds, **lost}


def bench_recipes(
    images: list[np.ndarray],
    width: int,
    hidden: int,
    steps: int,
    device: str,
    bits: int,
    trials: int,
    workers: int,
    out: Path,
) -> dict[str, Any]:
    from experiments.pool import JobPool

    jobs = [
        RecipeJob(
            recipe=name,
            image=img,
            width=width,
            hidden=hidden,
            steps=steps,
            device=device,
            bits=bits,
            seed=0,
            trials=trials,
        )
        for name in RECIPES
        for img in images
    ]
    results = JobPool(workers).map(recipe_job, jobs, "spinr-recipes")
    siren_seconds = np.mean([r["seconds"] for r in results if r["recipe"] == "siren (reference)"])
    rows: list[dict[str, Any]] = []
    for name in RECIPES:
        rs = [r for r in results if r["recipe"] == name]
        rows.append(
            {
                "recipe": name,
                "psnr": round(float(np.mean([r["psnr"] for r in rs])), 3),
                "stage_psnr": [round(float(x), 2) for x in np.mean([r["stage_psnr"] for r in rs], axis=0)],
                **{f"L@{c}": round(float(np.mean([r[f"L@{c}"] for r in rs])), 3) for c in LOST},
                "time_vs_siren": round(float(np.mean([r["seconds"] for r in rs]) / siren_seconds), 3),
            }
        )
        print(f"{name:38s} {rows[-1]['psnr']:.2f} dB", file=sys.stderr)
    lines = [
        "| recipe | PSNR | "
        + " | ".join(f"L@{c}" for c in LOST)
        + " | PSNR per prefix | fit time / SIREN's |",
        "|---|---|" + "---|" * len(LOST) + "---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r['psnr']:.2f} | "
            + " | ".join(f"{r[f'L@{c}']:.2f}" for c in LOST)
            + f" | {' '.join(f'{p:.1f}' for p in r['stage_psnr'])} | {r['time_vs_siren']:.2f} |"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "spinr-recipes.md").write_text("\n".join(lines) + "\n")
    return {
        "width": width,
        "hidden_layers": hidden,
        "steps": steps,
        "bits": bits,
        "images": len(images),
        "rows": rows,
    }

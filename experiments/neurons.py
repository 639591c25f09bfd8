"""Tables 2/3: PSNR after losing 1, 5 or 10 random hidden neurons (L@1, L@5, L@10).

A *hidden neuron* is one output unit of the input layer or of a hidden layer (the (H + 1) * width units
that feed the next layer; readout outputs are not neurons). *Losing* neuron j of layer l sets its
parameters to zero: row j of that layer's weight matrix and entry j of its bias — exactly what would be
missing if that neuron's share of the layer's packet were lost. For sine and ReLU layers the neuron then
outputs act(0) = 0, i.e. the same as zeroing its outgoing weights; in SPINR's residual trunk the neuron's
*update* is lost and the stream carries the previous layer's value on. Fourier features' fixed B is not a
neuron (it is regenerated from the header). Neurons are drawn uniformly without replacement from all
hidden neurons with numpy's PCG64 seeded by (seed, trial); each count is averaged over ``--trials`` draws.
Evaluated on the torch model rebuilt from the bitstream's dequantized weights (8-bit).

With a width scale s < 1 (the ``mini`` profile) the network has s times the study's hidden neurons, so
L@k loses k * s neurons *in expectation*, the paper's fraction: each draw loses floor(k * s) or one more,
the larger count in round(frac(k * s) * trials) of the draws (e.g. L@5 at s = 1/4 with 8 draws: six
draws lose 1 neuron and two lose 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.fitting import FitJob, render, run_fields
from experiments.pool import JobPool
from experiments.profiles import SPINR_PAPER, STUDY_SIZES, Profile, scaled
from experiments.reports import fmt_ms, markdown_table, mean_std, plt, write_csv, write_md

COUNTS = (1, 5, 10)
VARIANTS = {
    "fourier": ("fourier", {}),
    "siren": ("siren", {}),
    "spinr": ("spinr", {}),
    "spinr-robust": ("spinr", {"dropout": 0.01}),
    "spinr-paper": ("spinr", SPINR_PAPER),
}
PAPER = {
    "fourier": (66.30, 29.80, 23.12, 20.24),
    "siren": (66.82, 28.26, 20.00, 15.78),
    "spinr-paper": (66.82, 28.32, 24.01, 21.67),
}


def neuron_rows(model: Any) -> list[tuple[Any, Any]]:
    """(weight, bias) of every layer whose outputs are hidden neurons, in order."""
    kind = model.kind
    if kind in ("siren", "spinr"):
        layers = [model.input.linear] + [layer.linear for layer in model.hidden]
    elif kind == "fourier":
        layers = [model.input, *model.hidden]
    else:
        raise ValueError(f"lost-neuron analysis is defined for fourier, siren and spinr, not {kind!r}")
    return [(lin.weight, lin.bias) for lin in layers]


def lose_neurons(model: Any, count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Zero ``count`` random hidden neurons in place; returns their (layer, index)."""
    import torch

    rows = neuron_rows(model)
    sizes = [w.shape[0] for w, _ in rows]
    flat = rng.choice(sum(sizes), size=count, replace=False)
    lost = []
    with torch.no_grad():
        for f in flat:
            layer = int(np.searchsorted(np.cumsum(sizes), f, side="right"))
            j = int(f - sum(sizes[:layer]))
            rows[layer][0][j].zero_()
            rows[layer][1][j] = 0.0
            lost.append((layer, j))
    return lost


def psnr_after_loss(
    model: Any, state: dict[str, Any], image: np.ndarray, count: int, seed: int, trial: int, key: int
) -> tuple[float, int]:
    """(PSNR, neurons lost) of ``model`` reset to ``state`` then losing ``count`` random neurons, drawn
    from PCG64 seeded by (seed, trial, key); the model is left damaged (reset it before the next draw)."""
    from codec.metrics import psnr

    model.load_state_dict(state)
    lost = lose_neurons(model, count, np.random.Generator(np.random.PCG64([seed, trial, key])))
    h, w = image.shape[:2]
    return psnr(render(model, w, h), image), len(lost)


def draw_count(k: int, scale: float, trial: int, trials: int) -> int:
    """Neurons the given draw loses so that ``trials`` draws lose ``k * scale`` on average."""
    c = k * scale
    low = int(np.floor(c + 1e-9))
    return low + int(trial < round((c - low) * trials))


@dataclass(kw_only=True)
class NeuronsJob(FitJob):
    label: str
    """A key of :data:`VARIANTS`."""
    bits: int
    counts: tuple[int, ...]
    trials: int

    def fit_overrides(self) -> dict[str, Any]:
        model, options = VARIANTS[self.label]
        return {"model": model, "options": options, "bits": self.bits}


def job(j: NeuronsJob) -> list[dict[str, Any]]:
    from codec.metrics import psnr
    from codec.models import received_model

    img = j.image
    f = j.fit()
    base = received_model(f.bitstream, device=j.device)
    h, w = img.shape[:2]
    intact = psnr(render(base, w, h), img)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    rows = []
    for count in j.counts:
        for trial in range(j.trials):
            n = draw_count(count, j.scale, trial, j.trials)
            lost_psnr, lost = psnr_after_loss(base, state, img, n, j.seed, trial, count)
            rows.append(
                {
                    "image": j.image_name,
                    "model": j.label,
                    "seed": j.seed,
                    "params": f.params,
                    "psnr_float": f.psnr_float,
                    "psnr": f.psnr,
                    "psnr_intact": intact,
                    "lost": count,
                    "trial": trial,
                    "lost_count": lost,
                    "psnr_lost": lost_psnr,
                }
            )
    return rows


def run(
    images: list[tuple[str, np.ndarray]], profile: Profile, args: Any, out: Path, pool: JobPool | None = None
) -> dict[str, Any]:
    labels = args.models or list(VARIANTS)
    jobs = []
    for seed in range(profile.seeds):
        for label in labels:
            w, h = STUDY_SIZES["spinr" if label.startswith("spinr") else label]["small"]
            for name, img in images:
                jobs.append(
                    NeuronsJob(
                        **run_fields(profile, args, name, img),
                        model=label,
                        label=label,
                        width=scaled(w, profile),
                        hidden=h,
                        seed=seed,
                        bits=args.bits,
                        counts=COUNTS,
                        trials=profile.trials,
                    )
                )
    pool = pool or JobPool.from_args(args)
    rows = [r for rs in pool.map(job, jobs, "neurons") for r in (rs or [])]
    write_csv(out / "neurons.csv", rows)
    table, summary = [], {}
    for label in labels:
        rs = [r for r in rows if r["model"] == label]
        if not rs:
            continue
        fits = {(r["image"], r["seed"]): r for r in rs}.values()
        s = {"psnr_float": mean_std(r["psnr_float"] for r in fits), "psnr": mean_std(r["psnr"] for r in fits)}
        # Average the trials of each fit first, then mean ± std over fits.
        for c in COUNTS:
            per_fit = [
                np.mean([r["psnr_lost"] for r in rs if r["lost"] == c and (r["image"], r["seed"]) == k])
                for k in {(r["image"], r["seed"]) for r in rs}
            ]
            s[f"L@{c}"] = mean_std(per_fit)
        summary[label] = s
        paper = PAPER.get(label)
        table.append(
            [
                label,
                f"{rs[0]['params'] / 1000:.2f}",
                len(fits),
                fmt_ms(r["psnr_float"] for r in fits),
                fmt_ms(r["psnr"] for r in fits),
            ]
            + [f"{s[f'L@{c}'][0]:.2f} ± {s[f'L@{c}'][1]:.2f}" for c in COUNTS]
            + ["—" if paper is None else f"{paper[1]} / {paper[2]} / {paper[3]}"]
        )
    md = markdown_table(
        ["model", "params (K)", "fits", "PSNR float", f"PSNR {args.bits}-bit"]
        + [f"L@{c}" for c in COUNTS]
        + ["paper PSNR / L@5 / L@10"],
        table,
    )
    md += (
        f"\nProfile {profile.name}: {len(images)} image(s), {profile.seeds} seed(s), {profile.steps} steps, "
        f"{profile.trials} draws per count. L@k on the {args.bits}-bit received weights"
        + (
            f"; widths x{profile.width_scale:g}, so L@k loses k x {profile.width_scale:g} neurons on average"
            if profile.width_scale != 1.0
            else ""
        )
        + ". spinr = per-stage heads + residual trunk + joint phase (the study recipe, docs/SPINR.md); "
        "spinr-robust = the same trained with 1 % neuron dropout; spinr-paper = shared head, plain chain, "
        "stages only (the study's).\n"
    )
    write_md(out / "neurons.md", "Tables 2/3: lost neurons", md)
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(5, 3.2))
    for label in labels:
        s = summary[label]
        xs = [0, *COUNTS]
        ms = [s["psnr"][0]] + [s[f"L@{c}"][0] for c in COUNTS]
        sd = [s["psnr"][1]] + [s[f"L@{c}"][1] for c in COUNTS]
        ax.errorbar(xs, ms, yerr=sd, marker="o", capsize=3, label=label)
    ax.set_xlabel("neurons lost")
    ax.set_ylabel("PSNR (dB)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "neurons.png", dpi=110)
    pyplot.close(fig)
    return {"summary": summary, "rows": len(rows)}

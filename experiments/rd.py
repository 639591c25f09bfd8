"""Fig 4: rate-distortion (bpp vs PSNR) of INRs at several widths and bit depths next to classical codecs
at matched bpp, and the BD-rate of the best INR curve against JPEG.

Each INR is fitted once (16-bit quantization, effectively float) and re-quantized at every bit depth
through the codec's quantizer and bitstream (``requantize``); its bpp counts the whole .spnr stream.
The classical codecs are searched for the INR points' bpp on the same image (``codec.classical.at_bpp``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codec.classical import CODECS, at_bpp
from experiments.fitting import Fit, FitJob, run_fields
from experiments.pool import JobPool
from experiments.profiles import Profile
from experiments.reports import markdown_table, plt, write_csv, write_md

BITS = (6, 8)
RD_WIDTHS = {"tiny": (4, 6, 8), "quick": (8, 12, 16, 24), "paper": (16, 24, 32, 48), "mini": (16, 24, 32, 48)}
RD_HIDDEN = {"tiny": 1, "quick": 2, "paper": 4, "mini": 4}
"""The mini profile keeps the paper's widths: its images are 1/16 the pixels, so the same nets span a
bpp range that suits them (about 0.4 to 3 bpp on a 192 x 128 Kodak image at 8 bits)."""


def requantize(fit: Fit, bits: int, image: np.ndarray) -> tuple[int, float]:
    """(bytes, PSNR) of the fit's model re-quantized at ``bits`` through the codec's own path."""
    from codec.bitstream import Bitstream, StreamHeader, new_stream_id
    from codec.decoder import ProgressiveDecoder
    from codec.metrics import psnr
    from codec.models import received_model
    from codec.stepalloc import multiplier_for_bits
    from codec.stepquant import model_steps, model_tensors, quantize_model

    model = received_model(fit.bitstream, device="cpu")
    old = fit.bitstream.header
    multiplier = multiplier_for_bits(bits, sum(t.numel() for t in model_tensors(model)))
    units = quantize_model(model, model_steps(model, image, multiplier))
    header = StreamHeader(old.model, old.arch, old.width, old.height)
    bs = Bitstream(header, {u.index: u for u in units}, new_stream_id())
    rgb = ProgressiveDecoder.from_bitstream(bs).decode().rgb
    return len(bs.to_bytes()), psnr(rgb, image)


@dataclass(kw_only=True)
class RdJob(FitJob):
    bits: tuple[int, ...]
    """Bit depths the fit is re-quantized at."""

    def fit_overrides(self) -> dict[str, Any]:
        return {"bits": 16}  # float-like: the fit is re-quantized at each of ``bits`` afterwards


@dataclass(kw_only=True)
class CodecJob:
    """The classical codecs on one image at the INR points' bit rates."""

    image: np.ndarray
    image_name: str
    targets: list[float]


def job(j: RdJob) -> list[dict[str, Any]]:
    img = j.image
    f = j.fit()
    rows = []
    for bits in j.bits:
        size, p = requantize(f, bits, img)
        rows.append(
            {
                "image": j.image_name,
                "codec": f"{j.model}-{bits}bit",
                "model": j.model,
                "width": j.width,
                "bits": bits,
                "seed": j.seed,
                "params": f.params,
                "bpp": size * 8 / (img.shape[0] * img.shape[1]),
                "psnr": p,
            }
        )
    return rows


def codec_job(j: CodecJob) -> list[dict[str, Any]]:
    out = []
    for codec in CODECS:
        for t in j.targets:
            r = at_bpp(j.image, codec, t)
            out.append({"image": j.image_name, "codec": codec, "target_bpp": t, **r})
    return out


def bd_rate(rate_a: list[float], psnr_a: list[float], rate_b: list[float], psnr_b: list[float]) -> float:
    """Bjontegaard delta rate (%) of curve B against reference A: cubic fit of log-rate over PSNR,
    integrated over the overlapping PSNR interval. Negative = B needs fewer bits. NaN without overlap,
    or when a curve has too few distinct PSNRs for a cubic (its fit would be meaningless).

    The fits run on PSNR centred and scaled (an affine change of variable: the interval average is the
    same), which keeps the cubic's Vandermonde matrix well conditioned at any PSNR level."""
    if min(len(rate_a), len(rate_b)) < 4:
        raise ValueError("BD-rate needs at least 4 points per curve")
    la, lb = np.log(np.asarray(rate_a, float)), np.log(np.asarray(rate_b, float))
    pa, pb = np.asarray(psnr_a, float), np.asarray(psnr_b, float)
    lo, hi = max(pa.min(), pb.min()), min(pa.max(), pb.max())
    if not hi > lo:
        return math.nan
    both = np.concatenate([pa, pb])
    centre, scale = float(both.mean()), float(both.std()) or 1.0
    pa, pb = (pa - centre) / scale, (pb - centre) / scale
    lo, hi = (lo - centre) / scale, (hi - centre) / scale
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.RankWarning)
        try:
            fa, fb = np.polyfit(pa, la, 3), np.polyfit(pb, lb, 3)
        except np.exceptions.RankWarning:
            return math.nan
    ia, ib = np.polyint(fa), np.polyint(fb)
    avg_a = (np.polyval(ia, hi) - np.polyval(ia, lo)) / (hi - lo)
    avg_b = (np.polyval(ib, hi) - np.polyval(ib, lo)) / (hi - lo)
    return float((math.exp(avg_b - avg_a) - 1) * 100)


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    front, best = [], -np.inf
    for b, p in sorted(points):
        if p > best:
            front.append((b, p))
            best = p
    return front


def run(
    images: list[tuple[str, np.ndarray]], profile: Profile, args: Any, out: Path, pool: JobPool | None = None
) -> dict[str, Any]:
    models = args.models or ["siren", "spinr", "fourier"]
    widths = RD_WIDTHS.get(profile.name, RD_WIDTHS["quick"])
    hidden = RD_HIDDEN.get(profile.name, 2)
    jobs = [
        RdJob(**run_fields(profile, args, name, img), model=m, width=w, hidden=hidden, seed=seed, bits=BITS)
        for m in models
        for w in widths
        for name, img in images
        for seed in range(profile.seeds)
    ]
    pool = pool or JobPool.from_args(args)
    inr = [r for rs in pool.map(job, jobs, "rd-inr") for r in (rs or [])]
    # Classical codecs at the INR points' mean bpp per image.
    cjobs = []
    for name, img in images:
        targets = sorted(
            {
                round(
                    float(
                        np.mean(
                            [
                                r["bpp"]
                                for r in inr
                                if r["image"] == name and r["codec"] == c and r["width"] == w
                            ]
                        )
                    ),
                    4,
                )
                for c in {r["codec"] for r in inr}
                for w in widths
            }
        )
        cjobs.append(CodecJob(image=img, image_name=name, targets=targets))
    classic = [r for rs in pool.map(codec_job, cjobs, "rd-codecs", budget=0.0) for r in rs]
    write_csv(out / "rd.csv", inr + classic)
    # Mean curves over images (and seeds): INR per (codec, width); classical per target index.
    curves: dict[str, list[tuple[float, float]]] = {}
    for c in sorted({r["codec"] for r in inr}):
        pts = []
        for w in widths:
            rs = [r for r in inr if r["codec"] == c and r["width"] == w]
            pts.append((float(np.mean([r["bpp"] for r in rs])), float(np.mean([r["psnr"] for r in rs]))))
        curves[c] = sorted(pts)
    n_t = len(cjobs[0].targets)
    for c in CODECS:
        pts = []
        for k in range(n_t):
            rs = [
                r
                for cj in cjobs
                for r in classic
                if r["image"] == cj.image_name and r["codec"] == c and r["target_bpp"] == cj.targets[k]
            ]
            pts.append((float(np.mean([r["bpp"] for r in rs])), float(np.mean([r["psnr"] for r in rs]))))
        curves[c] = sorted(pts)
    best_inr = _pareto([p for c, pts in curves.items() if c not in CODECS for p in pts])
    bd = {}
    for c in [*sorted(k for k in curves if k not in CODECS), "best-inr"]:
        pts = best_inr if c == "best-inr" else curves[c]
        ref = curves["jpeg"]
        try:
            bd[c] = bd_rate(
                [b for b, _ in ref], [p for _, p in ref], [b for b, _ in pts], [p for _, p in pts]
            )
        except (ValueError, np.linalg.LinAlgError):
            bd[c] = float("nan")
    rows = [[c, " ".join(f"{b:.3f}/{p:.2f}" for b, p in pts)] for c, pts in curves.items()]
    md = markdown_table(["curve", "points (bpp/PSNR dB), mean over images"], rows)
    md += "\n" + markdown_table(
        ["INR curve", "BD-rate vs JPEG (%)"], [[c, f"{v:.1f}"] for c, v in bd.items()]
    )
    md += (
        f"\nProfile {profile.name}: {len(images)} image(s), {profile.seeds} seed(s), {profile.steps} steps, "
        f"widths {list(widths)} x {hidden} hidden layers, bits {list(BITS)}. Negative BD-rate = fewer bits than "
        "JPEG for the same PSNR; nan = the PSNR ranges do not overlap.\n"
    )
    write_md(out / "rd.md", "Fig 4: rate-distortion", md)
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(6, 4))
    for c, pts in curves.items():
        style = "--" if c in CODECS else "-"
        ax.plot(
            [b for b, _ in pts],
            [p for _, p in pts],
            style,
            marker="o" if c not in CODECS else "s",
            ms=4,
            label=c,
        )
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "rd.png", dpi=110)
    pyplot.close(fig)
    return {"bd_rate_vs_jpeg": bd, "curves": curves}

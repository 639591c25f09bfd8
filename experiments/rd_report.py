"""The rd experiment's report: mean curves over the images, BD-rates of every spinr curve against every
classical codec, Markdown tables, CSV, a PNG plot and the JSON summary (experiments/rd.py runs it)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codec.rate import WINDOW_LOW
from experiments.bdrate import bd_rate_curves
from experiments.profiles import Profile
from experiments.reports import markdown_table, plt, write_csv, write_md

CLASSICAL = ("jpeg", "webp", "jpeg2000", "avif")
"""The classical codecs of the comparison (``codec.classical`` settings, /work/shared/BASELINES.md)."""
LABELS = {"jpeg": "JPEG", "webp": "WebP", "jpeg2000": "JPEG 2000", "avif": "AVIF"}


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float:
    vals = [float(r[key]) for r in rows if r.get(key) is not None]
    return float(np.mean(vals)) if vals else math.nan


def complete_images(
    rows: Sequence[dict[str, Any]], models: Sequence[str], rates: Sequence[float]
) -> list[str]:
    """Images with a file for every model and rate of the run and no failed encode: the means are over
    these only, so every point of a curve averages the same images."""
    wanted = {(m, float(r)) for m in models for r in rates}
    have: dict[str, set[tuple[str, float]]] = {}
    for r in rows:
        if "error" not in r and r["curve"] == r["model"]:
            have.setdefault(r["image"], set()).add((r["model"], float(r["target_bpp"])))
    failed = {r["image"] for r in rows if "error" in r}
    return sorted(i for i, c in have.items() if wanted <= c and i not in failed)


def inr_curves(rows: Sequence[dict[str, Any]], keep: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Curve name -> one point per rate target: mean bytes, bpp and PSNR over the images ``keep``."""
    ok = [r for r in rows if "error" not in r and r["image"] in set(keep)]
    names = sorted({r["curve"] for r in ok}, key=lambda c: (c.split("-")[0], c))
    out: dict[str, list[dict[str, Any]]] = {}
    for c in names:
        pts = []
        for t in sorted({r["target_bpp"] for r in ok if r["curve"] == c}):
            rs = [r for r in ok if r["curve"] == c and r["target_bpp"] == t]
            pt = {"target_bpp": t, "n": len(rs), **{k: _mean(rs, k) for k in ("bytes", "bpp", "psnr")}}
            if "jpeg_psnr" in rs[0]:
                pt["in_window"] = sum(
                    WINDOW_LOW * r["target_bytes"] <= r["bytes"] <= r["target_bytes"] for r in rs
                )
                pt["seconds"] = _mean(rs, "seconds")
                pt["psnr_float"] = _mean(rs, "psnr_float")
                for codec in CLASSICAL:
                    pt[codec] = _mean(rs, f"{codec}_psnr")
                    pt[f"{codec}_bytes"] = _mean(rs, f"{codec}_bytes")
                    pt[f"{codec}_over"] = sum(not r[f"{codec}_fits"] for r in rs)
            pts.append(pt)
        out[c] = pts
    return out


def classical_curves(rows: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Codec -> (mean bpp, mean PSNR) per grid rate; a rate where every image got the codec's smallest
    file repeats the point below it and is dropped (the mean bpp must grow)."""
    out: dict[str, list[tuple[float, float]]] = {}
    for codec in CLASSICAL:
        pts: list[tuple[float, float]] = []
        for t in sorted({r["target_bpp"] for r in rows if r["curve"] == codec}):
            rs = [r for r in rows if r["curve"] == codec and r["target_bpp"] == t]
            b, p = _mean(rs, "bpp"), _mean(rs, "psnr")
            if not pts or b > pts[-1][0] * (1 + 1e-6):
                pts.append((b, p))
        out[codec] = pts
    return out


def _f(x: float, digits: int = 2) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _rate_table(model: str, pts: list[dict[str, Any]]) -> str:
    rows = []
    for p in pts:
        cells = [f"{p['target_bpp']:g}", f"{p['bytes']:.0f}", _f(p["bpp"], 3), _f(p["psnr"]),
                 f"{p['in_window']}/{p['n']}"]  # fmt: skip
        for c in CLASSICAL:
            over = f" ({p[f'{c}_over']} over)" if p[f"{c}_over"] else ""
            cells.append(f"{_f(p[c])}{over}")
        cells.append(_f(p["seconds"], 1))
        rows.append(cells)
    head = [
        "target bpp",
        "bytes",
        "bpp",
        f"{model} PSNR",
        "in window",
        *(LABELS[c] for c in CLASSICAL),
        "s/image",
    ]
    return markdown_table(head, rows)


def _prefix_table(curves: dict[str, list[dict[str, Any]]]) -> str:
    names = [c for c in curves if c.startswith("spinr-p")] + ["spinr"]
    rows = []
    for k, t in enumerate(p["target_bpp"] for p in curves["spinr"]):
        rows.append([f"{t:g}"] + [
            f"{curves[c][k]['bytes']:.0f} B, {curves[c][k]['bpp']:.3f} bpp, {_f(curves[c][k]['psnr'])} dB"
            for c in names
        ])  # fmt: skip
    return markdown_table(
        ["target bpp", *[c.replace("spinr-p", "prefix ") for c in names[:-1]], "final"], rows
    )


def _plot(
    curves: dict[str, list[dict[str, Any]]],
    classical: dict[str, list[tuple[float, float]]],
    path: Path,
    title: str,
) -> None:
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(7, 4.6))
    for i, (codec, cpts) in enumerate(classical.items()):
        ax.plot(
            [b for b, _ in cpts], [p for _, p in cpts], "--s", ms=3, lw=1, color=f"C{i}", label=LABELS[codec]
        )
    for name, pts in curves.items():
        xs, ys = [p["bpp"] for p in pts], [p["psnr"] for p in pts]
        if name == "spinr":
            ax.plot(xs, ys, "-o", ms=5, lw=2.2, color="C4", label="SPINR (final)")
        elif name == "siren":
            ax.plot(xs, ys, "-^", ms=5, lw=2.2, color="C5", label="SIREN")
        else:
            k = int(name.rsplit("p", 1)[1])
            ax.plot(xs, ys, ":o", ms=3, lw=1, color="C4", alpha=0.35 + 0.15 * k, label=f"SPINR prefix {k}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bits per pixel (whole file; prefixes: header + their packets)")
    ax.set_ylabel("PSNR (dB), mean over images")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def report(
    inr_rows: list[dict[str, Any]],
    codec_rows: list[dict[str, Any]],
    settings: dict[str, Any],
    profile: Profile,
    n_images: int,
    out: Path,
) -> dict[str, Any]:
    write_csv(out / "rd.csv", inr_rows + codec_rows)
    used = complete_images(inr_rows, settings["models"], settings["rates"])
    curves = inr_curves(inr_rows, used)
    classical = classical_curves([r for r in codec_rows if r["image"] in used])
    points = {c: [(p["bpp"], p["psnr"]) for p in pts] for c, pts in curves.items()}
    bd = {
        c: {codec: bd_rate_curves(ref, pts) for codec, ref in classical.items()} for c, pts in points.items()
    }
    errors = [r for r in inr_rows if "error" in r]
    md = ""
    for model in ("spinr", "siren"):
        if model in curves:
            md += f"\n## {model.upper()}: rate-controlled encodes (mean over images)\n\n"
            md += _rate_table(model.upper(), curves[model])
    md += (
        "\nClassical columns: mean PSNR (dB) of each codec's best file of at most the INR file's bytes, per"
        ' image; "(k over)": on k images the codec cannot make a file that small and its smallest (larger)'
        f" file is counted. In window: files within [{WINDOW_LOW:g}, 1] x target.\n"
    )
    if "spinr" in curves and any(c.startswith("spinr-p") for c in curves):
        md += "\n## SPINR prefixes (first k packets: header + k packets; PSNR of that decode)\n\n"
        md += _prefix_table(curves)
    md += "\n## BD-rate (%) against each classical codec (negative: fewer bytes for the same PSNR)\n\n"
    md += markdown_table(
        ["curve", *(f"vs {LABELS[c]}" for c in CLASSICAL)],
        [[c, *(_f(bd[c][codec], 1) for codec in CLASSICAL)] for c in bd],
    )
    md += "\n## Classical curves (mean bpp / PSNR dB over images, the grid of rates)\n\n"
    md += markdown_table(
        ["codec", "points"],
        [[LABELS[c], " ".join(f"{b:.3f}/{p:.2f}" for b, p in pts)] for c, pts in classical.items()],
    )
    md += (
        f"\nProfile {profile.name}: {len(used)} of {n_images} image(s) complete (the means), encode preset `{settings['effort']}` at"
        f" {settings['steps']} steps, {settings['seeds']} seed(s), rates {settings['rates']} bpp, batch"
        f" {settings['batch']}; BD-rate: Bjøntegaard cubic fit of log-rate over centred PSNR, each INR curve"
        " against the classical grid points spanning its PSNR range (at least 4); nan: no overlap."
        + (f" {len(errors)} encode(s) failed: {errors[0]['error']}" if errors else "")
        + "\n"
    )
    write_md(out / "rd.md", "Fig 4: rate-distortion, rate-controlled encodes", md)
    title = f"{profile.name}: {len(used)} images, preset {settings['effort']}, {settings['steps']} steps"
    _plot(curves, classical, out / "rd.png", title)
    return {
        "settings": settings,
        "curves": {**points, **classical},
        "points": curves,
        "bd_rate": bd,
        "bd_rate_vs_jpeg": {c: v["jpeg"] for c, v in bd.items()},
        "errors": len(errors),
        "images_complete": used,
    }

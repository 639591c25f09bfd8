"""``spinr bench rate``: rate-controlled encodes at several bpp beside the classical codecs at the same
bytes, on photographs shrunk to a small size (the measurement behind ``DEFAULT_BPP``).

Each image is centre-cropped to the aspect of ``--size`` and BOX-shrunk to it; each bpp is one real
``encode_image`` with ``--bpp`` (the size model's network, sequential quantization to the byte target);
JPEG, WebP, JPEG 2000 and AVIF are searched for their best file of at most the spinr file's bytes
(``codec.classical.at_bytes``). Tune on sun80 only, never on the test sets.

Besides the curve it checks the rate controller's two promises on every image (issue 10): a targeted
file lands in [WINDOW_LOW, 1] x its target (``in_window``), and an encode with no target at all (the
default rate, ``--default``) is never larger than the raw RGB pixels (``under_raw``). ``--rate-size``
takes several sizes; a target too small for the smallest stream is a row with its ``error``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

CODECS = ("jpeg", "webp", "jpeg2000", "avif")


def load_images(folder: str | None, count: int, size: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    from PIL import Image

    if folder:
        files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    else:
        files = []
    out = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")
            w, h = im.size
            if w < h:
                continue  # landscape photographs only, like the rd report's sets
            aspect = size[0] / size[1]
            cw, ch = (round(h * aspect), h) if w / h > aspect else (w, round(w / aspect))
            box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
            out.append((f.name, np.asarray(im.crop(box).resize(size, Image.Resampling.BOX))))
    step = max(1, len(out) // max(1, count))
    return out[::step][:count]


def encode_row(name: str, img: np.ndarray, bpp: float | None, model: str, steps: int, device: str) -> dict:
    """One encode at ``bpp`` (None: no target, the default rate) with the classical codecs at its bytes,
    or the error that refused it."""
    from codec.classical import at_bytes, decode
    from codec.config import EncodeConfig, ModelSpec, TrainConfig
    from codec.encode import encode_image
    from codec.errors import ConfigError
    from codec.metrics import psnr
    from codec.rate import WINDOW_LOW

    cfg = EncodeConfig(ModelSpec(model), TrainConfig(steps=steps, device=device))
    if bpp is not None:
        cfg = cfg.replace(**{"rate.bpp": bpp})
    h, w = img.shape[:2]
    row: dict[str, Any] = {"image": name, "size": f"{w}x{h}", "target_bpp": bpp, "raw_bytes": 3 * w * h}
    t = time.perf_counter()
    try:
        r = encode_image(img, cfg)
    except ConfigError as exc:
        return {**row, "error": str(exc)}
    ratio = r.bytes / r.target_bytes if r.target_bytes else None
    row.update(
        bytes=r.bytes,
        target_bytes=r.target_bytes,
        ratio=None if ratio is None else round(ratio, 4),
        in_window=None if ratio is None else WINDOW_LOW <= ratio <= 1.0,
        under_raw=r.bytes < row["raw_bytes"],
        bpp=round(r.bpp, 4),
        psnr=round(r.psnr, 3),
        stage_psnr=[round(p, 3) for p in r.stage_psnr],
        arch=r.bitstream.header.arch,
        seconds=round(time.perf_counter() - t, 1),
    )
    for codec in CODECS:
        found = at_bytes(img, codec, r.bytes)
        row[codec] = round(psnr(decode(found.data), img), 3) if found.fits else None
    return row


def checks(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rate controller's promises over every row: targets in the window, defaults under raw RGB."""
    targeted = [r for r in rows if r["target_bpp"] is not None and "error" not in r]
    defaults = [r for r in rows if r["target_bpp"] is None and "error" not in r]
    ratios = [r["ratio"] for r in targeted]
    return {
        "targeted": len(targeted),
        "in_window": sum(bool(r["in_window"]) for r in targeted),
        "ratio_min": min(ratios) if ratios else None,
        "ratio_max": max(ratios) if ratios else None,
        "defaults": len(defaults),
        "defaults_under_raw": sum(bool(r["under_raw"]) for r in defaults),
        "largest_default_share_of_raw": max((r["bytes"] / r["raw_bytes"] for r in defaults), default=None),
        "refused": [
            f"{r['image']} {r['size']} at {r['target_bpp']} bpp: {r['error']}" for r in rows if "error" in r
        ],
    }


def bench_rate(
    images: list[tuple[str, np.ndarray]],
    bpps: list[float],
    model: str,
    steps: int,
    device: str,
    default: bool = False,
) -> dict[str, Any]:
    """Every image at every ``bpp`` (and, with ``default``, with no target), beside the classical codecs."""
    import torch

    torch.set_num_threads(1)
    rows = []
    for name, img in images:
        for bpp in [*bpps, *([None] if default else [])]:
            row = encode_row(name, img, bpp, model, steps, device)
            rows.append(row)
            print(row, flush=True)
    summary = []
    for size, bpp in [(size, bpp) for size in dict.fromkeys(r["size"] for r in rows) for bpp in bpps]:
        mine = [r for r in rows if (r["size"], r["target_bpp"]) == (size, bpp) and "error" not in r]
        if not mine:
            continue
        entry: dict[str, Any] = {
            "size": size,
            "bpp": bpp,
            "psnr": round(float(np.mean([r["psnr"] for r in mine])), 3),
        }
        for codec in CODECS:
            vals = [r[codec] for r in mine if r[codec] is not None]
            entry[codec] = round(float(np.mean(vals)), 3) if len(vals) == len(mine) else None
            entry[f"gain_vs_{codec}"] = (
                round(entry["psnr"] - entry[codec], 3) if entry[codec] is not None else None
            )
        summary.append(entry)
    return {
        "model": model,
        "steps": steps,
        "sizes": sorted({r["size"] for r in rows}),
        "rows": rows,
        "summary": summary,
        "checks": checks(rows),
    }

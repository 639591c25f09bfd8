"""``spinr bench rate``: rate-controlled encodes at several bpp beside the classical codecs at the same
bytes, on photographs shrunk to a small size (the measurement behind ``DEFAULT_BPP``).

Each image is centre-cropped to the aspect of ``--size`` and BOX-shrunk to it; each bpp is one real
``encode_image`` with ``--bpp`` (the size model's network, sequential quantization to the byte target);
JPEG, WebP, JPEG 2000 and AVIF are searched for their best file of at most the spinr file's bytes
(``codec.classical.at_bytes``). Tune on sun80 only, never on the test sets.
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


def bench_rate(
    images: list[tuple[str, np.ndarray]], bpps: list[float], model: str, steps: int, device: str
) -> dict[str, Any]:
    import torch

    from codec.classical import at_bytes, decode
    from codec.config import EncodeConfig, ModelSpec, TrainConfig
    from codec.encode import encode_image
    from codec.metrics import psnr

    torch.set_num_threads(1)
    rows = []
    for name, img in images:
        for bpp in bpps:
            cfg = EncodeConfig(ModelSpec(model), TrainConfig(steps=steps, device=device)).replace(
                **{"rate.bpp": bpp}
            )
            t = time.perf_counter()
            r = encode_image(img, cfg)
            row: dict[str, Any] = {
                "image": name,
                "target_bpp": bpp,
                "bytes": r.bytes,
                "target_bytes": r.target_bytes,
                "bpp": round(r.bpp, 4),
                "psnr": round(r.psnr, 3),
                "stage_psnr": [round(p, 3) for p in r.stage_psnr],
                "arch": r.bitstream.header.arch,
                "seconds": round(time.perf_counter() - t, 1),
            }
            for codec in CODECS:
                found = at_bytes(img, codec, r.bytes)
                row[codec] = round(psnr(decode(found.data), img), 3) if found.fits else None
            rows.append(row)
            print(row, flush=True)
    summary = []
    for bpp in bpps:
        mine = [r for r in rows if r["target_bpp"] == bpp]
        entry: dict[str, Any] = {"bpp": bpp, "psnr": round(float(np.mean([r["psnr"] for r in mine])), 3)}
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
        "size": list(images[0][1].shape[1::-1]) if images else None,
        "rows": rows,
        "summary": summary,
    }

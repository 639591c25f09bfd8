"""``spinr demo``: encode a real photograph and write every progressive stage as PNG, with its PSNR."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from client.codec_cmds import (
    ProgressBar,
    add_encode_options,
    announce,
    classical_at,
    compare_text,
    config_from_args,
)
from codec.outputs import output_folder


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from codec.bitstream import write_file
    from codec.decoder import ProgressiveDecoder
    from codec.encode import encode_image
    from codec.image import load_image, save_png

    cfg = config_from_args(args)
    if args.image:
        image = load_image(args.image)
        source = args.image
    else:
        from skimage import data  # its sample photographs ship inside the wheel: no network

        image = np.ascontiguousarray(data.astronaut()[::4, ::4])  # 128 x 128
        source = "scikit-image astronaut, 128x128"
    out = output_folder(args.out, "--out", quiet=args.quiet)
    print(f"encoding {source}", file=sys.stderr)
    cfg = announce(cfg, image, False)
    bar = ProgressBar(cfg.train.steps, args.quiet)
    try:
        result = encode_image(image, cfg, progress=bar)
    finally:
        bar.close()
    write_file(out / "image.spnr", result.bitstream)
    save_png(out / "original.png", image)
    dec = ProgressiveDecoder.from_bitstream(result.bitstream)
    rows: list[dict[str, Any]] = []
    # One PSNR per decodable depth (a single one for a non-progressive model), measured by the encoder.
    for depth, stage_psnr in enumerate(result.stage_psnr):
        name = f"stage-{depth + 1:02d}.png"
        save_png(out / name, dec.decode(depth=depth + 1).rgb)
        rows.append({"stage": depth + 1, "psnr": round(stage_psnr, 3), "file": name})
    save_png(out / "zoom-2x.png", dec.decode(size=(image.shape[1] * 2, image.shape[0] * 2)).rgb)
    save_png(
        out / "strip.png",
        progress_strip([out / r["file"] for r in rows], [f"{r['stage']}: {r['psnr']:.1f} dB" for r in rows]),
    )
    summary = result.summary()
    summary["stages"] = rows
    summary["out"] = str(out)
    summary["classical"] = classical_at(image, result.bytes, ("jpeg", "webp", "jpeg2000", "avif"))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    for r in rows:
        print(f"stage {r['stage']:>2}: PSNR {r['psnr']:6.2f} dB  {out / r['file']}")
    print(
        f"{out / 'image.spnr'}: {summary['bytes']} bytes ({summary['bpp']} bpp; raw RGB {image.size}),"
        f" PSNR {summary['psnr']:.2f} dB, {summary['params']} params, {summary['seconds']} s"
    )
    print(compare_text(summary))
    return 0


def progress_strip(files: list[Path], labels: list[str], per_row: int = 9) -> Any:
    """The stages side by side with their PSNR under each, as one picture."""
    import numpy as np
    from PIL import Image, ImageDraw

    tiles = [Image.open(f).convert("RGB") for f in files]
    w, h = tiles[0].size
    label_h = 16
    rows = (len(tiles) + per_row - 1) // per_row
    cols = min(per_row, len(tiles))
    sheet = Image.new("RGB", (cols * (w + 4) + 4, rows * (h + label_h + 4) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tile, label) in enumerate(zip(tiles, labels, strict=True)):
        x, y = 4 + (i % per_row) * (w + 4), 4 + (i // per_row) * (h + label_h + 4)
        sheet.paste(tile, (x, y))
        draw.text((x + 2, y + h + 2), label, fill="black")
    return np.asarray(sheet)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "image", nargs="?", help="image to encode (default: a photograph shipped with scikit-image)"
    )
    p.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    add_encode_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(steps=None)

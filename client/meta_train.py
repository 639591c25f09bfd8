"""``spinr meta-train``: learn a shared initialisation θ0 (Reptile) for one network, write it as a
``.spnri`` file with its validation curve (JSON and PNG) beside it (docs/SPINR.md, "Meta-learned
initialisation")."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from codec.decoder import parse_size
from codec.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset", required=True, help="folder of training photographs (sun80; never a test set)"
    )
    p.add_argument("--out", required=True, help="the θ0 file to write (.spnri)")
    p.add_argument(
        "--model", choices=("spinr", "siren"), default="spinr", help="model family (default spinr)"
    )
    p.add_argument(
        "--size",
        default="192x128@0.5",
        help="WxH@BPP: the network the size model plans for that image size and rate (default 192x128@0.5,"
        " the mini-Kodak default); --width/--depth/--pe override it",
    )
    p.add_argument("--width", type=int, help="neurons per hidden layer (instead of the size model's)")
    p.add_argument("--depth", type=int, help="hidden layers (instead of the size model's)")
    p.add_argument("--pe", type=int, help="positional-encoding frequencies L (instead of the size model's)")
    # The defaults are the shipped θ0's recipe (docs/SPINR.md, "Long inner loops": 21 min on one core).
    p.add_argument("--steps", type=int, default=120, help="Reptile meta steps (default 120)")
    p.add_argument("--inner-steps", type=int, default=400, help="Adam steps per crop (default 400)")
    p.add_argument(
        "--inner-pixels", type=int, default=8192, help="pixels per inner step, 0 all (default 8192)"
    )
    p.add_argument("--inner-lr", type=float, default=3e-3, help="inner Adam learning rate (default 3e-3)")
    p.add_argument(
        "--inner-decay",
        type=float,
        default=0.1,
        help="the inner rate decays on a cosine to this fraction (default 0.1, the encoder's; 1: constant)",
    )
    p.add_argument(
        "--inner-penalty",
        type=float,
        default=0.0,
        help="the inner loop's residual penalty λ (an encode's --residual-penalty, l1), stored in the"
        " file for the encodes from θ0 (default 0: none)",
    )
    p.add_argument(
        "--meta-batch", type=int, default=2, help="crops per meta step, their fits averaged (default 2)"
    )
    p.add_argument(
        "--finetune-lr",
        type=float,
        help="the learning rate an encode from θ0 fine-tunes at, stored in the file (default: --inner-lr)",
    )
    p.add_argument("--outer-lr", type=float, default=0.5, help="Reptile step ε at the start (default 0.5)")
    p.add_argument(
        "--outer-lr-end", type=float, default=0.05, help="...decaying linearly to this (default 0.05)"
    )
    p.add_argument(
        "--downscale", type=int, default=4, help="shrink corpus images by this factor first (default 4)"
    )
    p.add_argument(
        "--images", type=int, default=0, help="use only the first N images of the dataset (0: all)"
    )
    p.add_argument(
        "--val-steps", type=int, default=400, help="fine-tuning steps of the validation curve (0: none)"
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=50, help="meta steps between checkpoints (default 50)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start again")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: Any) -> Any:
    from codec.meta.reptile import MetaConfig
    from codec.sizemodel import plan

    size, _, rate = str(args.size).partition("@")
    w, h = parse_size(size)
    try:
        bpp = float(rate or 0.5)
    except ValueError:
        raise ConfigError(
            f"--size {args.size!r}: the rate after @ must be a number of bits per pixel"
        ) from None
    if not 0.01 <= bpp <= 24:
        raise ConfigError(f"--size {args.size!r}: rate {bpp} bpp is out of range 0.01..24")
    chosen = plan(w, h, max(1, int(bpp * w * h / 8)), args.model)
    return MetaConfig(
        model=args.model,
        width=args.width or chosen.width,
        hidden_layers=args.depth if args.depth is not None else chosen.hidden_layers,
        pe_frequencies=args.pe if args.pe is not None else chosen.pe_frequencies,
        pe_scale=chosen.pe_scale,
        crop_width=w,
        crop_height=h,
        downscale=args.downscale,
        meta_steps=args.steps,
        inner_steps=args.inner_steps,
        inner_pixels=args.inner_pixels,
        inner_lr=args.inner_lr,
        inner_decay=args.inner_decay,
        inner_penalty=args.inner_penalty,
        meta_batch=args.meta_batch,
        outer_lr=args.outer_lr,
        outer_lr_end=args.outer_lr_end,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
    ).validate()


class _Bar:
    def __init__(self, quiet: bool) -> None:
        self.bar: Any = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(desc="meta-train", unit="crop", file=sys.stderr, dynamic_ncols=True, leave=False)

    def __call__(self, done: int, total: int, seconds: float) -> None:
        if self.bar is not None:
            self.bar.total = total
            self.bar.n = done
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    import torch

    from codec.meta.corpus import load_corpus
    from codec.meta.curves import validation, write_curve
    from codec.meta.initfile import write_init
    from codec.meta.reptile import finetune_meta, meta_train
    from codec.meta.residual import FINETUNE_LR_RANGE

    torch.set_num_threads(1)
    cfg = config_from_args(args)
    lo, hi = FINETUNE_LR_RANGE
    if args.finetune_lr is not None and not lo <= args.finetune_lr <= hi:
        raise ConfigError(f"--finetune-lr {args.finetune_lr} is out of range: allowed {lo:g}..{hi:g}")
    out = Path(args.out)
    if out.suffix != ".spnri":
        raise ConfigError(f"--out {args.out!r} must end in .spnri")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {args.out!r}: folder {str(out.parent)!r} does not exist")
    train, val = load_corpus(args.dataset, cfg.downscale, args.images)
    ckpt = out.with_name(out.stem + ".ckpt.spnri")
    if args.fresh:
        ckpt.unlink(missing_ok=True)
    net = cfg.build()
    print(
        f"meta-training {cfg.model} {cfg.width} wide x {cfg.hidden_layers} hidden, L={cfg.pe_frequencies}"
        f" ({net.num_params()} parameters) on {len(train)} images ({len(val)} held out),"
        f" {cfg.meta_steps} crops of {cfg.crop_width}x{cfg.crop_height}",
        file=sys.stderr,
    )
    start = time.perf_counter()
    bar = _Bar(args.quiet)
    try:
        init = meta_train(cfg, train, ckpt, bar)
    finally:
        bar.close()
    if args.finetune_lr is not None:
        init.meta["finetune"] = finetune_meta(cfg, args.finetune_lr)
    write_init(out, init)
    ckpt.unlink(missing_ok=True)
    summary: dict[str, Any] = {
        "out": str(out),
        "hash": init.hash_hex,
        "bytes": out.stat().st_size,
        "params": net.num_params(),
        "arch": init.arch,
        "seconds": init.meta["trained"]["seconds"],
    }
    if args.val_steps > 0:
        curve = validation(cfg, init, val, args.val_steps)
        note = write_curve(curve, out.with_suffix(".curve.json"), out.with_suffix(".curve.png"))
        summary["curve"] = curve
        if note:
            print(note, file=sys.stderr)
    summary["total_seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(summary, indent=2))
    return 0

"""``spinr bench``: speed as ratios against a reference measured in the same run, written as JSON.

- ``decode``: the tiled numpy decoder at 768x512 as a share of the machine's single-thread float32
  matmul rate measured in the same run, against the whole-frame pass, progressive decoding of every
  stage against one full decode, and the torch forward pass (``benchmarks/decode_speed.py``).
- ``browser``: the browser decoder's JS and WebGL2 paths at 768x512 in headless Chromium, beside the
  numpy decoder in the same run (``benchmarks/browser_decode.py``; needs Playwright and Chromium).
- ``spinr-variants``: progressive PSNR of SPINR's head/trunk variants on real photographs (the
  measurement behind the defaults, docs/SPINR.md); writes a Markdown table and a PNG plot too.
- ``spinr-recipes``: SPINR's training recipes (stages only, joint phase, neuron dropout, the study's)
  against SIREN in the same run: PSNR, every prefix, lost neurons, fit time (``benchmarks/recipes.py``).
- ``train``: the training loop against COIN's and spinr's plain loops, each fast-path option, torch
  threads, and batched fitting against sequential fits (``benchmarks/train_bench.py``).
- ``format``: what format v2 costs on the demo image, fixed-network presets at several ``--bits-list``,
  rate presets at their default rate (bytes, PSNR, header and packet overhead, the entropy checksum's
  cost) beside JPEG, WebP, JPEG 2000 and AVIF at the same bytes (``benchmarks/format_sizes.py``;
  docs/FORMAT.md, "Sizes").
- ``rate``: rate-controlled encodes (and, with ``--default``, untargeted ones) at ``--bpp-list`` on
  ``--dataset`` photographs shrunk to each ``--rate-size``, beside the classical codecs at the same
  bytes, and whether every file met its target's window and every default one stayed under raw RGB
  (``benchmarks/rate_sweep.py``).
- ``meta``: ``--init meta`` (meta-learned θ0, residual coding) against ``--init random`` at ``--bpp-list``
  on ``--dataset`` photographs shrunk to ``--rate-size``: BD-rate, classical codecs at the same bytes,
  and the fewest ``--fast-steps`` reaching the random encode's PSNR (``benchmarks/meta_init.py``).
- ``load``: ``--clients`` concurrent WebSocket streams against a real server (started here, or
  ``--url``): time to first layer and to completion p50/p95/p99, errors, server RSS, the CPU of the
  server and of the clients per stream (``benchmarks/load.py``); with ``--reference`` the same clients
  against a bare WebSocket app and the ratios (``benchmarks/load_reference.py``); ``--client`` picks
  the load generator(s) (``benchmarks/load_clients.py``); also written to ``load.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

BENCHES = ("decode", "browser", "spinr-variants", "spinr-recipes", "format", "rate", "load", "train", "meta")
TRAIN_SECTIONS = ("loops", "options", "threads", "batched", "server")


VARIANTS = {
    "per_stage+residual (default)": {"head": "per_stage", "residual": True},
    "shared+residual": {"head": "shared", "residual": True},
    "per_stage+plain": {"head": "per_stage", "residual": False},
    "shared+plain (the study's)": {"head": "shared", "residual": False},
}


def bench_variants(
    images: list[np.ndarray], width: int, hidden: int, steps: int, device: str, lrs: list[float], out: Path
) -> dict[str, Any]:
    from codec.config import EncodeConfig, ModelSpec, TrainConfig
    from codec.encode import encode_image

    rows: list[dict[str, Any]] = []
    for name, opts in VARIANTS.items():
        for lr in lrs:
            curves, bytes_ = [], []
            for img in images:
                cfg = EncodeConfig(
                    ModelSpec("spinr", width, hidden, dict(opts)),
                    TrainConfig(steps=steps, lr=lr, device=device),
                )
                encoded = encode_image(img, cfg)
                curves.append(encoded.stage_psnr)
                bytes_.append(encoded.bytes)
            mean = np.mean(curves, axis=0)
            rows.append(
                {
                    "variant": name,
                    "lr": lr,
                    "stage_psnr": [round(float(x), 3) for x in mean],
                    "final_psnr": round(float(mean[-1]), 3),
                    "mean_stage_psnr": round(float(mean.mean()), 3),
                    "bytes": int(np.mean(bytes_)),
                }
            )
            print(
                f"{name:32s} lr {lr:g}: final {mean[-1]:.2f} dB, mean over stages {mean.mean():.2f} dB",
                file=sys.stderr,
            )
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "| variant | lr | PSNR per stage (dB) | final | mean over stages | bytes |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['lr']:g} | {' '.join(f'{p:.1f}' for p in r['stage_psnr'])} | "
            f"{r['final_psnr']:.2f} | {r['mean_stage_psnr']:.2f} | {r['bytes']} |"
        )
    (out / "spinr-variants.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for r in rows:
            ax.plot(
                range(1, len(r["stage_psnr"]) + 1),
                r["stage_psnr"],
                marker="o",
                ms=3,
                label=f"{r['variant']}, lr {r['lr']:g}",
            )
        ax.set_xlabel("stages decoded")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"SPINR variants, width {width}, {hidden} hidden, {steps} steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "spinr-variants.png", dpi=110)
        plt.close(fig)
    except ImportError:
        pass
    return {"width": width, "hidden_layers": hidden, "steps": steps, "images": len(images), "rows": rows}


def _images(dataset: str | None, count: int, crop: int, downscale: int = 1) -> list[np.ndarray]:
    from codec.image import load_image
    from experiments.datasets import center_crop
    from experiments.datasets import downscale as shrink

    if dataset:
        files = sorted(Path(dataset).glob("*.png"))[:count]
        imgs = [load_image(f) for f in files]
    else:
        from skimage import data

        imgs = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()][:count]
    return [center_crop(shrink(img, downscale), crop) for img in imgs]


def _size(text: str) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form AxB, e.g. 768x512") from None
    if not (1 <= a <= 65535 and 0 <= b <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r} is out of range")
    return a, b


def load_clients(text: str) -> tuple[str, ...]:
    """``--client``: load generator names, comma-separated."""
    from benchmarks.load_clients import CLIENTS

    names = tuple(text.split(","))
    unknown = [n for n in names if n not in CLIENTS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown load client(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(CLIENTS)}"
        )
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "which", nargs="*", default=[], help=f"benchmarks to run: {', '.join(BENCHES)} (default: decode)"
    )
    p.add_argument("--out", default="bench-out", help="folder for the JSON (and plots)")
    p.add_argument(
        "--size", type=_size, default=(768, 512), help="decode/browser: output WxH (default 768x512)"
    )
    p.add_argument(
        "--net", type=_size, default=(64, 16), help="decode/browser: SPINR WIDTHxHIDDEN (default 64x16)"
    )
    p.add_argument("--no-torch", action="store_true", help="decode: skip the torch forward pass")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dataset", help="folder of PNGs for spinr-variants (default: scikit-image photographs)")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--crop", type=int, default=96, help="centre crop side (0 = whole image)")
    p.add_argument("--downscale", type=int, default=1, help="shrink images by this factor before cropping")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--steps", type=int, default=700)
    p.add_argument("--lrs", default="1e-3,2e-3", help="comma-separated learning rates for spinr-variants")
    p.add_argument("--device", default="auto")
    p.add_argument("--bits", type=int, default=16, help="spinr-recipes: weight bits (16 is float-like)")
    p.add_argument("--trials", type=int, default=4, help="spinr-recipes: random draws per lost-neuron count")
    p.add_argument("--workers", type=int, default=1, help="spinr-recipes: parallel fit processes")
    p.add_argument(
        "--bits-list", default="6,7,8", help="format: comma-separated --bits values (fixed-network presets)"
    )
    p.add_argument(
        "--presets",
        default="quick,paper",
        help="format: comma-separated presets (a rate preset: one row at its default rate)",
    )
    p.add_argument("--bpp-list", default="0.5,1,2,4", help="rate: comma-separated targets in bpp")
    p.add_argument(
        "--rate-size", default="96x64", help="rate: images shrunk to WxH (comma-separated: several)"
    )
    p.add_argument(
        "--default",
        action="store_true",
        help="rate: also encode every image with no target (the default rate): is it under raw RGB?",
    )
    p.add_argument("--model", default="spinr", help="rate: siren or spinr")
    p.add_argument(
        "--fast-steps", default="100,200,350,500,1000", help="meta: fine-tuning steps tried for speed"
    )
    p.add_argument(
        "--meta-net",
        default="16x3:10",
        help="meta: WIDTHxDEPTH:L, one network for both inits at every rate (the default θ0's); 'plan': the size model's",
    )
    p.add_argument(
        "--meta-steps", type=int, help="meta: steps of the meta encodes at every rate (default --steps)"
    )
    p.add_argument(
        "--meta-lr", type=float, help="meta: the meta encodes' learning rate (default the model's)"
    )
    p.add_argument(
        "--residual-penalty",
        type=float,
        help="meta: the meta encodes' residual penalty (default: θ0's, faded by the rate as an encode does)",
    )
    p.add_argument("--clients", type=int, default=400, help="load: concurrent stream clients")
    p.add_argument("--url", help="load: a running server (default: start one on a loopback port)")
    p.add_argument("--job", help="load: id of a finished image on --url (default: upload a small one)")
    p.add_argument(
        "--channel", type=json.loads, help="load: channel of every stream, JSON, e.g. '{\"loss\": 0.1}'"
    )
    p.add_argument("--server-pid", type=int, help="load: PID of the --url server, to read its RSS")
    p.add_argument(
        "--reference",
        action="store_true",
        help="load: the same clients against a bare WebSocket app too, and the ratios (the machine's floor)",
    )
    p.add_argument(
        "--client",
        type=load_clients,
        default=("lean",),
        help="load: the load generator(s), comma-separated, one round each against the same server: lean "
        "(websockets' sans-I/O protocol on plain asyncio transports, the default) or full (one "
        "websockets.connect client per stream); the first one's numbers are the report's",
    )
    p.add_argument("--fit-size", type=int, default=64, help="train: image side (centre crops)")
    p.add_argument("--fit-steps", type=int, default=200, help="train: steps of every fit")
    p.add_argument("--k", type=int, default=10, help="train: fits in the batch")
    p.add_argument("--compile", action="store_true", help="train: time torch.compile too (slow to compile)")
    p.add_argument(
        "--server-engines",
        default="process,ray",
        help="train: the server section's engines, comma-separated (default process,ray; ray rows need "
        "spinr[ray] and are left out without it)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="train: the server section's Ray cluster, host:port (default: each Ray server starts its own)",
    )
    p.add_argument(
        "--sections",
        default=",".join(TRAIN_SECTIONS),
        help=f"train: comma-separated sections to run (default: all of {', '.join(TRAIN_SECTIONS)})",
    )


def run(args: argparse.Namespace) -> int:
    which = args.which or ["decode"]
    unknown = sorted(set(which) - set(BENCHES))
    if unknown:
        from codec.errors import ConfigError

        raise ConfigError(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHES)}")
    from codec.device import resolve_device
    from codec.outputs import output_folder

    resolve_device(args.device)
    out = output_folder(args.out, "--out")
    report: dict[str, Any] = {"machine": platform.platform(), "python": platform.python_version()}
    (w, h), (net_w, net_h) = args.size, args.net
    if "decode" in which:
        from benchmarks.decode_speed import run_isolated

        report["decode"] = run_isolated(w, h, net_w, net_h, args.repeats, not args.no_torch)
    if "browser" in which:
        from benchmarks.browser_decode import bench_browser

        report["browser"] = bench_browser(w, h, net_w, net_h, args.repeats)
    if "spinr-variants" in which:
        lrs = [float(x) for x in args.lrs.split(",")]
        report["spinr_variants"] = bench_variants(
            _images(args.dataset, args.images, args.crop),
            args.width,
            args.depth,
            args.steps,
            args.device,
            lrs,
            out,
        )
    if "spinr-recipes" in which:
        from benchmarks.recipes import bench_recipes

        report["spinr_recipes"] = bench_recipes(
            _images(args.dataset, args.images, args.crop, args.downscale),
            args.width,
            args.depth,
            args.steps,
            args.device,
            args.bits,
            args.trials,
            args.workers,
            out,
        )
    if "train" in which:
        from benchmarks.train_bench import bench_train

        sections = [x.strip() for x in args.sections.split(",") if x.strip()]
        bad = sorted(set(sections) - set(TRAIN_SECTIONS))
        engines = [x.strip() for x in args.server_engines.split(",") if x.strip()]
        bad += sorted(f"--server-engines {e}" for e in set(engines) - {"process", "ray"})
        if (
            bad
            or not 1 <= args.k <= 256
            or not 1 <= args.fit_steps <= 100_000
            or not 8 <= args.fit_size <= 4096
        ):
            from codec.errors import ConfigError

            raise ConfigError(
                f"bench train: sections {bad} unknown (allowed {', '.join(TRAIN_SECTIONS)}), or --k {args.k}"
                f" (1..256), --fit-steps {args.fit_steps} (1..100000) or --fit-size {args.fit_size}"
                " (8..4096) out of range"
            )
        report["train"] = bench_train(
            _images(args.dataset, args.images, args.fit_size),
            args.width,
            args.depth,
            args.fit_steps,
            args.device,
            args.k,
            args.compile,
            args.repeats,
            lambda name: name in sections,
            engines,
            args.ray_address,
        )
        (out / "train.json").write_text(json.dumps(report["train"], indent=2))
    if "format" in which:
        from benchmarks.format_sizes import bench_format

        bits = [int(x) for x in args.bits_list.split(",")]
        report["format"] = bench_format(bits, tuple(args.presets.split(",")), args.device)
    if "rate" in which:
        from benchmarks.rate_sweep import bench_rate, load_images
        from codec.decoder import parse_size

        sizes = [parse_size(x) for x in args.rate_size.split(",")]
        images = [im for size in sizes for im in load_images(args.dataset, args.images, size)]
        bpps = [float(x) for x in args.bpp_list.split(",")]
        report["rate"] = bench_rate(images, bpps, args.model, args.steps, args.device, args.default)
    if "meta" in which:
        from benchmarks.meta_init import bench_meta
        from benchmarks.rate_sweep import load_images as load_rate_images
        from codec.decoder import parse_size
        from experiments.meta_residual import parse_net

        images = load_rate_images(args.dataset, args.images, parse_size(args.rate_size.split(",")[0]))
        fast = [int(x) for x in args.fast_steps.split(",")]
        net = None if args.meta_net == "plan" else parse_net(args.meta_net)
        bpps = [float(x) for x in args.bpp_list.split(",")]
        tuning: dict[str, Any] = {}
        if args.meta_lr is not None:
            tuning["lr"] = args.meta_lr
        if args.residual_penalty is not None:
            tuning["residual_penalty"] = args.residual_penalty
        report["meta"] = bench_meta(images, bpps, args.steps, fast, args.device, net, args.meta_steps, tuning)
        (out / "meta.json").write_text(json.dumps(report["meta"], indent=2))
    if "load" in which:
        from benchmarks.load import bench_load

        report["load"] = bench_load(
            args.clients,
            args.url,
            args.job,
            args.channel,
            server_pid=args.server_pid,
            reference=args.reference,
            client=args.client,
        )
        (out / "load.json").write_text(json.dumps(report["load"], indent=2))
    path = out / "bench.json"
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0

"""``spinr experiment NAME``: the Streaming Neural Images study, one analysis per name.

Each writes a Markdown table, a CSV and PNG plots into ``--out`` and prints a JSON summary with ``--json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
from typing import Any

from codec.distributed import add_engine_arguments
from codec.errors import ConfigError
from codec.outputs import output_folder
from experiments.datasets import load_dataset
from experiments.pool import JobPool
from experiments.profiles import PROFILES, profile_from_args

EXPERIMENTS = {
    "models": "Table 1: params, PSNR, SSIM, compression factor per model at the study's sizes",
    "rd": "Fig 4: rate-controlled SPINR (every prefix) and SIREN encodes vs JPEG, WebP, JPEG 2000, AVIF; BD-rates",
    "sensitivity": "Fig 5: PSNR vs learning rate, width, depth with confidence bands",
    "noise": "Fig 6: Gaussian noise on the weights vs on the pixels",
    "neurons": "Tables 2/3: PSNR after losing 1, 5, 10 random hidden neurons",
    "progressive": "Fig 7: SPINR after each stage, PSNR under each",
    "loss": "PSNR vs packet loss, burst length, bit errors: rate-controlled SIREN, SPINR, protected SPINR"
    " vs progressive JPEG at the same bytes and protection",
    "abr": "PSNR at a deadline on time-varying lossy links: ABR controller vs send-everything vs fixed rungs",
}
MODULES = {"loss": "packet_loss"}
"""Experiment name -> module under ``experiments/`` where the two differ; each module has
``run(images, profile, args, out, pool)``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name", choices=sorted(EXPERIMENTS), help="; ".join(f"{k}: {v}" for k, v in EXPERIMENTS.items())
    )
    parser.add_argument("--dataset", required=True, help="folder of PNG images (e.g. datasets/set14)")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="quick",
        help="quick: crops, few seeds and steps (CPU minutes); paper: the study's setting (GPU); "
        "mini: the paper profile at 1/4 scale (images 1/4 per side, widths 1/4; CPU)",
    )
    parser.add_argument("--images", type=int, help="use the first N images (0 = all)")
    parser.add_argument("--seeds", type=int, help="seeds per configuration")
    parser.add_argument("--steps", type=int, help="training steps per fit")
    parser.add_argument("--crop", type=int, help="centre crop side in pixels (0 = full image)")
    parser.add_argument("--downscale", type=int, help="shrink images by this integer factor first (1 = none)")
    parser.add_argument("--trials", type=int, help="random draws per lost-neuron count")
    parser.add_argument("--width-scale", type=float, help="multiply every model width (paper profile: 1)")
    parser.add_argument("--models", nargs="+", help="restrict to these models / variants")
    parser.add_argument("--depth", type=int, help="progressive: hidden layers of SPINR (default: study size)")
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        help="rd: rate targets in bpp, at least 4; loss: 1 to 4 (default: the profile's)",
    )
    parser.add_argument(
        "--effort",
        help="rd, loss: encode preset whose training settings the encodes use (quick, standard, thorough;"
        " default: the profile's; --steps overrides its steps)",
    )
    parser.add_argument("--loss-rates", type=float, nargs="+", help="loss: packet loss rates, 0..0.95")
    parser.add_argument(
        "--bursts", type=float, nargs="+", help="loss: mean burst lengths (>= 1) at 10 %% loss"
    )
    parser.add_argument("--bers", type=float, nargs="+", help="loss: bit error rates, 0..0.01")
    parser.add_argument("--channel-seeds", type=int, help="loss: channel draws per fit and condition")
    parser.add_argument(
        "--protection", nargs="+", help="loss: CRIT[+REST] schemes, e.g. repeat:3 rs:2:2+xor:4"
    )
    parser.add_argument("--mtu", type=int, help="loss: datagram MTU in bytes (default 1200, 0 = off)")
    parser.add_argument(
        "--traces",
        nargs="+",
        help="abr: steady drop-10x rise-10x on-off lte (scaled to the stream) or netsim specs",
    )
    parser.add_argument("--deadlines", type=float, nargs="+", help="abr: deadlines in seconds (default 1 2)")
    parser.add_argument(
        "--refinements",
        type=int,
        default=1,
        help="abr: precision refinement levels of the stream the controller plans (0: unit packets only)",
    )
    parser.add_argument("--refinement-bits", type=int, default=2, help="abr: bits each refinement level adds")
    parser.add_argument(
        "--bits",
        type=int,
        default=8,
        help="weight quantization bits (models, neurons, noise, progressive); 16 is float-like",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--workers", type=int, default=1, help="parallel worker processes (each fits one job)"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="fit up to K jobs of one shape (seeds, same-size images) together with batched matmuls; "
        "1 fits one at a time (memory grows K-fold)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads per worker (default: OMP_NUM_THREADS when set, else the cores shared among"
        " the workers; never more than that share)",
    )
    add_engine_arguments(parser, unit="fit", process="this process, or --workers processes")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training step (pays off over many fits of one shape; docs/SPINR.md)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=0.0,
        help="seconds; start no new fit after this (0 = no limit); tables report how many fits ran",
    )
    parser.add_argument("--out", required=True, help="output folder for .md, .csv and .png")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="rd: keep the results an earlier run cut short left in --out (*.partial.jsonl) and run only"
        " the jobs they lack (same images, rates, effort and steps)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as JSON (and no progress lines)"
    )


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return None if not math.isfinite(x) else round(x, 4)
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def run(args: argparse.Namespace) -> int:
    from codec.device import resolve_device

    if args.engine != "ray":  # on Ray, the cluster's workers resolve the device
        resolve_device(args.device)  # fail early, naming the flag, when CUDA is asked for and absent
    elif args.ray_gpus is not None and not 0 <= args.ray_gpus <= 1:
        raise ConfigError(f"--ray-gpus {args.ray_gpus} is out of range: allowed a share 0..1")
    for flag, value, low in (
        ("--batch", args.batch, 1),
        ("--threads", args.threads, 0),
        ("--workers", args.workers, 1),
    ):
        if not low <= value <= 1024:
            raise ConfigError(f"{flag} {value} is out of range: allowed {low}..1024")
    profile = profile_from_args(args)
    images = load_dataset(args.dataset, profile)
    out = output_folder(args.out, "--out", quiet=args.json)
    if not args.resume:
        for old in out.glob("*.partial.jsonl"):
            old.unlink()
    # Every finished job's result is spilled into --out at once: a run cut short keeps its raw numbers.
    pool = JobPool.from_args(args, spill=out)
    mod = importlib.import_module(f"experiments.{MODULES.get(args.name, args.name)}")
    start = time.perf_counter()
    summary = mod.run(images, profile, args, out, pool)
    summary = {
        "experiment": args.name,
        "profile": profile.__dict__,
        "images": [n for n, _ in images],
        "seconds": round(time.perf_counter() - start, 1),
        **summary,
    }
    (out / f"{args.name}.json").write_text(json.dumps(_clean(summary), indent=1))
    if args.json:
        print(json.dumps(_clean(summary)))
    else:
        print((out / f"{args.name}.md").read_text())
        print(f"wrote {out}/{args.name}.{{md,csv,png,json}} in {summary['seconds']} s", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.cli NAME ...`` (the same as ``spinr experiment NAME ...``)."""
    parser = argparse.ArgumentParser(prog="spinr experiment", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

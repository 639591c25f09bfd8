"""Shared machinery of the study's experiments: profiles, datasets, one fit through the codec, tables, plots.

Every fit goes through ``codec.encode.encode_image`` (fit -> quantize -> bitstream -> numpy decode), so
the numbers are the codec's. Perturbation experiments (noise, lost neurons) rebuild the torch model
from the *dequantized* tensors of the bitstream (``received_model``) and evaluate it on the run's device.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codec.errors import ConfigError
from codec.image import load_image
from codec.metrics import psnr, ssim

# The study's two sizes per family (parameter counts match the paper's Table 1 exactly, see docs/STUDY.md):
# "*" rows and the half-width / double-depth rows.
STUDY_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "fourier": {"large": (128, 4), "small": (64, 8)},
    "siren": {"large": (256, 2), "small": (128, 4)},
    "mfn": {"large": (256, 2), "small": (128, 4)},
    "wire": {"small": (128, 4)},
    "diner": {"small": (64, 2)},
    "spinr": {"small": (128, 4)},
}


STUDY_OPTIONS: dict[str, dict[str, Any]] = {
    # At the study's shallow 128 x 4 size a joint phase over the last 85 % of the steps lifts SPINR
    # past SIREN (docs/SPINR.md, "Joint phase"); a variant's own options override these.
    "spinr": {"joint": 0.85},
}
SPINR_PAPER: dict[str, Any] = {"head": "shared", "residual": False, "joint": 0.0}
"""The study's own SPINR recipe: one shared readout, a plain chain, stages only."""


@dataclass
class Profile:
    """How big a run is."""

    name: str
    seeds: int
    steps: int
    crop: int
    """Centre crop side in pixels; 0 keeps full images."""
    images: int
    """Images taken from the dataset folder (sorted by name); 0 takes all."""
    width_scale: float = 1.0
    """Multiplies every model width (the paper profile uses 1: the study's sizes)."""
    trials: int = 3
    """Random draws per lost-neuron count."""
    downscale: int = 1
    """Shrink every image by this integer factor (box filter) before cropping. With ``width_scale`` =
    1/downscale the model keeps the study's parameters per pixel (and so its bits per pixel): a
    miniature of the paper profile that a CPU can run."""
    mtu_scale: float = 1.0
    """Multiplies the loss experiment's MTU, so a miniature splits each layer into as many datagrams
    as the full-size model does."""


PROFILES = {
    "tiny": Profile("tiny", seeds=2, steps=30, crop=32, images=2, width_scale=0.125, trials=2),
    "quick": Profile("quick", seeds=3, steps=300, crop=64, images=2, width_scale=0.25, trials=3),
    "paper": Profile("paper", seeds=10, steps=2000, crop=0, images=0, width_scale=1.0, trials=5),
    # The paper profile at 1/4 scale in each direction: images 1/16 the pixels, widths 1/4 (hidden
    # layers ~1/16 the weights), the same 2000 steps. CPU: ~15 s per fit on Set14.
    "mini": Profile(
        "mini",
        seeds=3,
        steps=2000,
        crop=0,
        images=0,
        width_scale=0.25,
        trials=8,
        downscale=4,
        mtu_scale=1 / 16,
    ),
}


def profile_from_args(args: Any) -> Profile:
    base = PROFILES[args.profile]
    p = Profile(**{**base.__dict__})
    for key in ("seeds", "steps", "images", "crop", "trials", "downscale"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(p, key, value)
    if getattr(args, "width_scale", None) is not None:
        p.width_scale = args.width_scale
    if p.seeds < 1 or p.steps < 1:
        raise ConfigError(f"--seeds {p.seeds} and --steps {p.steps} must both be >= 1")
    if not 1 <= p.downscale <= 64:
        raise ConfigError(f"--downscale {p.downscale} is out of range: allowed 1..64")
    return p


def scaled(width: int, profile: Profile) -> int:
    return max(4, int(round(width * profile.width_scale)))


def center_crop(img: np.ndarray, side: int) -> np.ndarray:
    if side <= 0:
        return img
    h, w = img.shape[:2]
    s = min(side, h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return np.ascontiguousarray(img[top : top + s, left : left + s])


def downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Shrink by an integer factor with a box filter (each output pixel the mean of factor² inputs)."""
    if factor <= 1:
        return img
    from PIL import Image

    h, w = img.shape[:2]
    size = (max(1, w // factor), max(1, h // factor))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BOX))


def load_dataset(folder: str | Path, profile: Profile) -> list[tuple[str, np.ndarray]]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"--dataset {str(folder)!r} is not a folder of PNG images")
    files = sorted(folder.glob("*.png"))
    if not files:
        raise ConfigError(f"--dataset {str(folder)!r} holds no .png files")
    if profile.images:
        files = files[: profile.images]
    return [(f.stem, center_crop(downscale(load_image(f), profile.downscale), profile.crop)) for f in files]


class Progress:
    """One line per finished job on stderr, with an ETA."""

    def __init__(self, total: int, label: str, quiet: bool = False) -> None:
        self.total, self.label, self.quiet = total, label, quiet
        self.done, self.start = 0, time.perf_counter()

    def tick(self, note: str = "") -> None:
        self.done += 1
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        print(
            f"[{self.label}] {self.done}/{self.total} {note} ({elapsed:.0f}s, eta {eta:.0f}s)",
            file=sys.stderr,
            flush=True,
        )


@dataclass
class Fit:
    """One encode of one image: the codec's numbers plus what the perturbation experiments need."""

    model: str
    width: int
    hidden_layers: int
    options: dict[str, Any]
    seed: int
    psnr_float: float
    psnr: float
    """After quantization, numpy decode (what a receiver gets)."""
    ssim: float
    bytes: int
    params: int
    stage_psnr: list[float]
    bitstream: Any = field(repr=False, default=None)
    recon: np.ndarray | None = field(repr=False, default=None)


def fit_image(
    image: np.ndarray,
    model: str,
    width: int,
    hidden_layers: int,
    seed: int,
    steps: int,
    device: str = "cpu",
    options: dict[str, Any] | None = None,
    lr: float | None = None,
    bits: int = 8,
    per_channel: bool = False,
    width_scale: float = 1.0,
) -> Fit:
    """Encode ``image`` with the study's options for ``model`` (``options`` override them).

    ``width_scale`` is the profile's: FourierNet's mapping size shrinks with the widths, so a
    miniature keeps the study's share of parameters in the input layer."""
    from codec.config import EncodeConfig, ModelSpec, QuantConfig, TrainConfig
    from codec.decoder import ProgressiveDecoder
    from codec.encode import encode_image

    options = {**STUDY_OPTIONS.get(model, {}), **(options or {})}
    if device.startswith("cuda"):
        import torch

        # TF32 matmuls: ~5x faster fits on the H200 (measured), well below the PSNR noise across seeds.
        torch.backends.cuda.matmul.allow_tf32 = True
    if model == "fourier":
        from codec.models.fourier import FourierOptions

        options.setdefault("b_seed", seed)
        if width_scale != 1.0:
            options.setdefault("mapping_size", max(8, round(FourierOptions().mapping_size * width_scale)))
    cfg = EncodeConfig(
        ModelSpec(model, width, hidden_layers, options),
        TrainConfig(steps=steps, lr=lr, seed=seed, device=device),
        QuantConfig(bits=bits, per_channel=per_channel),
    )
    res = encode_image(image, cfg)
    rgb = ProgressiveDecoder.from_bitstream(res.bitstream).decode().rgb
    return Fit(
        model,
        width,
        hidden_layers,
        options,
        seed,
        res.float_psnr,
        res.psnr,
        ssim(rgb, image),
        res.bytes,
        res.params,
        list(res.stage_psnr),
        res.bitstream,
        rgb,
    )


def fit_for_job(j: dict[str, Any], **kw: Any) -> Fit:
    """``fit_image`` on a job dict's common fields (image, model, width, hidden, seed, steps, device and the
    profile's width ``scale``); ``kw`` adds or overrides keyword arguments (options, bits, lr, model)."""
    args = {"model": j["model"], "device": j.get("device", "cpu"), "width_scale": j.get("scale", 1.0), **kw}
    return fit_image(
        j["image"], width=j["width"], hidden_layers=j["hidden"], seed=j["seed"], steps=j["steps"], **args
    )


def received_model(fit: Fit, device: str = "cpu"):  # noqa: ANN201
    """The torch model holding the bitstream's dequantized tensors (what the receiver has)."""
    import torch

    from codec.decoder import ProgressiveDecoder
    from codec.device import resolve_device
    from codec.models import build_model

    bs = fit.bitstream
    m = build_model(bs.header.model, fit.width, fit.hidden_layers, fit.options)
    if getattr(m, "needs_image_size", False):
        m.set_image_size(bs.header.width, bs.header.height)
    params = ProgressiveDecoder.from_bitstream(bs).params
    with torch.no_grad():
        for i, (_, tensors) in enumerate(m.units()):
            for name, t in tensors:
                t.copy_(torch.from_numpy(params[i][name]))
    return m.to(resolve_device(device)).eval()


def render(model: Any, width: int, height: int, depth: int | None = None) -> np.ndarray:
    """uint8 image from a torch model (same coordinates and output mapping as the decoder)."""
    import torch

    from codec.coords import grid, to_rgb8

    dev = next(model.parameters()).device
    with torch.no_grad():
        y = model(torch.from_numpy(grid(width, height)).to(dev), depth).float().cpu().numpy()
    return to_rgb8(y, width, height)


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def fmt_ms(values: Iterable[float], digits: int = 2) -> str:
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()})


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    out.write("| " + " | ".join(headers) + " |\n")
    out.write("|" + "---|" * len(headers) + "\n")
    for r in rows:
        out.write("| " + " | ".join(str(c) for c in r) + " |\n")
    return out.getvalue()


def write_md(path: Path, title: str, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {title}\n\n{body}")


def plt():  # noqa: ANN201
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def image_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr(a, b)


def raw_bytes(image: np.ndarray) -> int:
    """24-bit RGB size of an image, the numerator of the compression factor."""
    return int(image.shape[0] * image.shape[1] * 3)


SPILL_DIR: Path | None = None
"""When set (by the CLI: ``--out``), every finished job's result is appended to ``<label>.partial.jsonl``
there at once, so a run cut short (a killed process, a device time limit) keeps its raw numbers."""


def _spill(label: str, result: Any) -> None:
    if SPILL_DIR is None:
        return
    import json

    def plain(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items() if not isinstance(v, np.ndarray) and k != "pics"}
        if isinstance(x, list):
            return [plain(v) for v in x]
        return x if isinstance(x, str | int | float | bool | type(None)) else str(x)

    with open(SPILL_DIR / f"{label}.partial.jsonl", "a") as f:
        f.write(json.dumps(plain(result)) + "\n")


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_jobs(
    fn: Any, jobs: Sequence[Any], workers: int, label: str, quiet: bool = False, budget: float = 0.0
) -> list[Any]:
    """``[fn(job) for job in jobs]``, in worker processes when ``workers > 1`` (spawned: safe with CUDA).

    Results come back in job order; progress goes to stderr. With ``budget`` (seconds, 0 = none) no job
    starts after the budget is spent and skipped jobs come back as None (callers drop them, and their
    tables say how many fits they hold), so list jobs seed-major to keep whole seed rounds."""
    prog = Progress(len(jobs), label, quiet)
    start = time.perf_counter()
    results: list[Any] = [None] * len(jobs)
    if workers <= 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs):
            if budget and time.perf_counter() - start > budget:
                print(f"[{label}] time budget spent: {len(jobs) - i} job(s) skipped", file=sys.stderr)
                break
            results[i] = fn(job)
            _spill(label, results[i])
            prog.tick(_job_note(job))
        return results
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures import TimeoutError as FutureTimeout

    threads = max(1, (os.cpu_count() or 2) // workers)
    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,))
    futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
    try:
        for fut in as_completed(futures, timeout=budget or None):
            i = futures[fut]
            results[i] = fut.result()
            _spill(label, results[i])
            prog.tick(_job_note(jobs[i]))
    except FutureTimeout:
        cancelled = sum(f.cancel() for f in futures)
        print(f"[{label}] time budget spent: {cancelled} job(s) skipped", file=sys.stderr)
        for fut, i in futures.items():
            if not fut.cancelled():
                results[i] = fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _job_note(job: Any) -> str:
    if isinstance(job, dict):
        return " ".join(f"{k}={job[k]}" for k in ("image_name", "model", "seed") if k in job)
    return ""

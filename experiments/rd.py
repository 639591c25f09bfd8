"""Fig 4, the gate of issue #10: rate-distortion of spinr's own rate-controlled encodes against JPEG,
WebP, JPEG 2000 and AVIF, measured in the same run on the same images.

Every INR point is what ``spinr encode --bpp B`` makes: the size model picks the network for the image
size and the target, training and sequential quantization meet it (``codec.encode``), and the numpy
decoder measures what a receiver sees. SPINR gives one curve per prefix (its first k packets: bytes =
header + those packets, PSNR of that prefix's decode) beside its final one; SIREN gives one curve.
Same-size images of one model and rate train as one batch (``encode_images``, ``--batch``).

The classical codecs are measured twice per image through the one search of ``codec.classical``:
on a dense grid of rates (their curves, for the BD-rates), and at the exact bytes of every SPINR and
SIREN file ("what they reach at the same bytes"). The report is in :mod:`experiments.rd_report`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codec.classical import at_bpp, at_bytes, decode
from codec.errors import ConfigError, SpinrError
from codec.metrics import psnr
from experiments.bdrate import bd_rate  # noqa: F401 - the study's BD-rate, re-exported
from experiments.pool import JobPool
from experiments.profiles import Profile
from experiments.rd_report import CLASSICAL, report

INR_MODELS = ("spinr", "siren")
RATES: dict[str, tuple[float, ...]] = {
    "tiny": (3.0, 4.0, 6.0, 8.0),
    "quick": (1.0, 2.0, 3.0, 4.0),
    "mini": (0.25, 0.5, 1.0, 2.0),
    "paper": (0.15, 0.3, 0.6, 1.2),
}
"""Rate targets (bpp) per profile, all above the smallest stream of the profile's image size (a 32 x 32
crop for tiny, 64 x 64 for quick, 192 x 128 for mini, 768 x 512 for paper)."""
EFFORT = {"tiny": "quick", "quick": "quick", "mini": "standard", "paper": "standard"}
"""The encode preset (codec/config.py) whose training settings a profile uses by default."""
GRID_STEP = 2.0
"""The classical codecs' grid: rates spaced by this factor from a quarter of the lowest target (where
SPINR's first prefixes land) up to the highest, and 1.5 x the highest (AVIF's search, the slowest,
costs about a second per rate on a 192 x 128 image: a denser grid would cost more than the encodes)."""


def grid(rates: tuple[float, ...]) -> list[float]:
    lo, hi = min(rates) / 4, max(rates)
    n = int(math.floor(math.log(hi / lo) / math.log(GRID_STEP) + 1e-9)) + 1
    return sorted({round(lo * GRID_STEP**k, 5) for k in range(n)} | {round(hi * 1.5, 5)})


@dataclass(kw_only=True)
class EncodeGroup:
    """Same-size images of one model at one rate target, encoded as one batch."""

    images: list[np.ndarray] = field(repr=False)
    names: list[str]
    model: str
    bpp: float
    effort: str
    steps: int
    seed: int = 0
    device: str = "cpu"

    @property
    def image_name(self) -> str:  # the progress line's label (experiments.pool.job_note)
        more = f"+{len(self.names) - 1}" if len(self.names) > 1 else ""
        return f"{self.names[0]}{more} at {self.bpp:g} bpp"


@dataclass(kw_only=True)
class CodecGrid:
    """The classical codecs on one image at every rate of the grid."""

    image: np.ndarray = field(repr=False)
    image_name: str
    rates: list[float]


def encode_config(job: EncodeGroup) -> Any:
    """The config ``spinr encode --preset EFFORT --model M --bpp B --steps N`` builds."""
    from codec.config import preset

    return preset(job.effort).replace(
        **{
            "model.name": job.model,
            "rate.bpp": job.bpp,
            "train.steps": job.steps,
            "train.seed": job.seed,
            "train.device": job.device,
        }
    )


def at_same_bytes(image: np.ndarray, size: int) -> dict[str, Any]:
    """Each classical codec's best file of at most ``size`` bytes (the smallest one, ``fits`` False,
    when it cannot make a file that small)."""
    out: dict[str, Any] = {}
    for codec in CLASSICAL:
        found = at_bytes(image, codec, size)
        out[f"{codec}_bytes"] = len(found.data)
        out[f"{codec}_psnr"] = psnr(decode(found.data), image)
        out[f"{codec}_fits"] = found.fits
    return out


def _points(name: str, image: np.ndarray, job: EncodeGroup, res: Any) -> list[dict[str, Any]]:
    """The rows of one encode: the final file, and for SPINR every shorter prefix."""
    from codec.decoder import ProgressiveDecoder

    bs = res.bitstream
    packets = bs.packets()
    header = len(packets[0].to_bytes())
    unit_bytes = {p.unit: len(p.to_bytes()) for p in packets[1:]}
    if header + sum(unit_bytes.values()) != res.bytes:
        raise ConfigError(f"internal: {name}'s packets do not add up to its {res.bytes} bytes")
    arch = bs.header.arch
    common = {
        "image": name,
        "model": job.model,
        "target_bpp": job.bpp,
        "effort": job.effort,
        "steps": job.steps,
        "seed": job.seed,
        "target_bytes": res.target_bytes,
        "params": res.params,
        "width": arch.get("width"),
        "hidden": arch.get("hidden_layers"),
        "pe": arch.get("pe_frequencies", 0),
        "seconds": round(res.seconds, 2),
    }
    pixels = image.shape[0] * image.shape[1]
    rows = []
    if job.model == "spinr":
        decoder = ProgressiveDecoder.from_bitstream(bs)
        sent = len(res.stage_psnr)
        for d in range(max(sent, res.network_stages) - 1):
            if d >= sent - 1:  # sent without its last stages (--trim): d + 1 packets are all of it
                rows.append({**common, "curve": f"spinr-p{d + 1}", "packets": sent, "bytes": res.bytes,
                             "bpp": res.bpp, "psnr": res.psnr, "trimmed": True})  # fmt: skip
                continue
            size = header + sum(unit_bytes[u] for u in decoder.used_units(d))
            rows.append({**common, "curve": f"spinr-p{d + 1}", "packets": d + 1, "bytes": size,
                         "bpp": size * 8 / pixels, "psnr": res.stage_psnr[d]})  # fmt: skip
    final = {**common, "curve": job.model, "packets": len(unit_bytes), "bytes": res.bytes, "bpp": res.bpp,
             "psnr": res.psnr, "psnr_float": res.float_psnr, "warnings": "; ".join(res.warnings)}  # fmt: skip
    final.update(at_same_bytes(image, res.bytes))
    return [*rows, final]


def encode_group(job: EncodeGroup) -> list[Any]:
    """What ``spinr encode`` makes of every image of the group (one batch when it holds several): an
    ``EncodeResult`` per image, or the ``SpinrError`` that image's encode raised."""
    from codec.encode import encode_image, encode_images

    cfg = encode_config(job)
    if len(job.images) > 1:
        return list(encode_images(job.images, [cfg.replace() for _ in job.images]))
    try:
        return [encode_image(job.images[0], cfg)]
    except SpinrError as exc:
        return [exc]


def encode_job(job: EncodeGroup) -> list[dict[str, Any]]:
    """Encode the group (one batch when it holds several images) and measure every point."""
    rows: list[dict[str, Any]] = []
    for name, image, res in zip(job.names, job.images, encode_group(job), strict=True):
        if isinstance(res, SpinrError):
            rows.append({"image": name, "model": job.model, "curve": job.model, "target_bpp": job.bpp,
                         "error": str(res)})  # fmt: skip
        else:
            rows += _points(name, image, job, res)
    return rows


def grid_job(job: CodecGrid) -> list[dict[str, Any]]:
    rows = []
    for codec in CLASSICAL:
        for rate in job.rates:
            r = at_bpp(job.image, codec, rate)
            pixels = job.image.shape[0] * job.image.shape[1]
            rows.append({"image": job.image_name, "curve": codec, "target_bpp": rate,
                         "bytes": round(r["bpp"] * pixels / 8), **r})  # fmt: skip
    return rows


def encode_groups(
    images: list[tuple[str, np.ndarray]], models: list[str], rates: tuple[float, ...], batch: int, **kw: Any
) -> list[EncodeGroup]:
    """Same-size images in batches, each batch through every rate and model before the next: a run
    cut short by ``--time-budget`` keeps whole images (the report uses only images with every point)."""
    by_shape: dict[tuple[int, ...], list[tuple[str, np.ndarray]]] = {}
    for name, img in images:
        by_shape.setdefault(img.shape, []).append((name, img))
    out = []
    for same in by_shape.values():
        for k in range(0, len(same), batch):
            chunk = same[k : k + batch]
            for bpp in rates:
                for model in models:
                    out.append(EncodeGroup(images=[i for _, i in chunk], names=[n for n, _ in chunk],
                                           model=model, bpp=bpp, **kw))  # fmt: skip
    return out


def rd_settings(
    profile: Profile,
    args: Any,
    defaults: dict[str, tuple[float, ...]] = RATES,
    counts: tuple[int, int, str] = (4, 64, "for a BD-rate"),
) -> tuple[tuple[float, ...], str, int]:
    """The run's rate targets, encode preset and training steps (``--rates``, ``--effort``, ``--steps``);
    ``counts``: how many rates a run may have (fewest, most, why)."""
    from codec.config import MAX_BPP, PRESETS

    rates = tuple(sorted(set(getattr(args, "rates", None) or defaults.get(profile.name, defaults["quick"]))))
    if len(rates) < counts[0]:
        raise ConfigError(f"--rates needs at least {counts[0]} rates {counts[2]}, got {len(rates)}")
    if len(rates) > counts[1]:
        raise ConfigError(f"--rates takes at most {counts[1]} rates {counts[2]}, got {len(rates)}")
    for r in rates:
        if not 0 < r <= MAX_BPP:
            raise ConfigError(f"--rates {r} is out of range: allowed 0 < bpp <= {MAX_BPP:g}")
    chosen = getattr(args, "effort", None)
    effort = chosen or EFFORT.get(profile.name, "standard")
    if effort not in PRESETS or PRESETS[effort].model.width is not None:
        allowed = ", ".join(k for k, v in PRESETS.items() if v.model.width is None)
        raise ConfigError(f"--effort {effort!r} is not a rate preset: allowed {allowed}")
    steps = getattr(args, "steps", None)
    if steps is None:
        steps = PRESETS[effort].train.steps if chosen else profile.steps
    return rates, effort, int(steps)


def earlier_rows(out: Path, label: str) -> list[dict[str, Any]]:
    """The rows an earlier run spilled into ``out`` (``--resume``); a line cut by a kill is skipped."""
    path = out / f"{label}.partial.jsonl"
    rows: list[dict[str, Any]] = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        rows += [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []
    return rows


def _done_grid(rows: list[dict[str, Any]], job: CodecGrid) -> list[dict[str, Any]] | None:
    mine = {(r["curve"], r["target_bpp"]): r for r in rows if r.get("image") == job.image_name}
    wanted = [(c, r) for c in CLASSICAL for r in job.rates]
    return [mine[k] for k in wanted] if all(k in mine for k in wanted) else None


def _done_group(rows: list[dict[str, Any]], job: EncodeGroup) -> list[dict[str, Any]] | None:
    def same(r: dict[str, Any]) -> bool:
        return (r.get("model"), r.get("target_bpp"), r.get("effort"), r.get("steps"), r.get("seed")) == (
            job.model, job.bpp, job.effort, job.steps, job.seed)  # fmt: skip

    mine = [r for r in rows if r.get("image") in job.names and same(r) and "error" not in r]
    finals = {r["image"] for r in mine if r["curve"] == job.model}
    if finals != set(job.names):
        return None
    return list({(r["image"], r["curve"]): r for r in mine}.values())


def _run_resumed(
    pool: JobPool, fn: Any, jobs: list[Any], label: str, done: Any, earlier: list[Any], **kw: Any
) -> list[Any]:
    """``pool.map(fn, jobs)`` but the jobs whose rows ``done`` finds among ``earlier`` are not run again."""
    kept = [done(earlier, j) for j in jobs]
    todo = [j for j, k in zip(jobs, kept, strict=True) if k is None]
    if len(todo) < len(jobs):
        print(
            f"[{label}] resumed: {len(jobs) - len(todo)} of {len(jobs)} job(s) from the earlier run",
            file=sys.stderr,
        )
    return [k for k in kept if k is not None] + pool.map(fn, todo, label, **kw)


def run(
    images: list[tuple[str, np.ndarray]], profile: Profile, args: Any, out: Path, pool: JobPool | None = None
) -> dict[str, Any]:
    rates, effort, steps = rd_settings(profile, args)
    models = list(getattr(args, "models", None) or INR_MODELS)
    for m in models:
        if m not in INR_MODELS:
            raise ConfigError(f"--models {m!r}: the rd experiment encodes {' and '.join(INR_MODELS)}")
    pool = pool or JobPool.from_args(args)
    start = time.perf_counter()
    resume = bool(getattr(args, "resume", False))
    grids = [CodecGrid(image=i, image_name=n, rates=grid(rates)) for n, i in images]
    codec_rows = _run_resumed(pool, grid_job, grids, "rd-classical", _done_grid,
                              earlier_rows(out, "rd-classical") if resume else [], budget=0.0)  # fmt: skip
    classical_s = time.perf_counter() - start
    seeds = int(getattr(args, "seeds", None) or 1)
    batch = max(1, int(getattr(pool, "batch", 1)))
    jobs = [
        g
        for seed in range(seeds)
        for g in encode_groups(
            images,
            models,
            rates,
            batch,
            effort=effort,
            steps=steps,
            seed=seed,
            device=getattr(args, "device", "cpu"),
        )  # fmt: skip
    ]
    earlier = earlier_rows(out, "rd-encode") if resume else []
    inr_rows = [
        r for rs in _run_resumed(pool, encode_job, jobs, "rd-encode", _done_group, earlier) for r in rs or []
    ]
    settings = {"rates": list(rates), "effort": effort, "steps": steps, "seeds": seeds, "batch": batch,
                "models": models, "classical_seconds": round(classical_s, 1)}  # fmt: skip
    return report(inr_rows, [r for rs in codec_rows for r in rs], settings, profile, len(images), out)

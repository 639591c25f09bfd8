"""``spinr bench meta``: meta-learned initialisation + residual coding against random initialisation
on the same images, rates and architecture (issue #13's targets; docs/SPINR.md, "Meta-learned
initialisation").

For every image and every ``--bpp-list`` rate, two real rate-controlled encodes of ``--steps`` steps
(``--meta-steps`` for the meta one; with a fixed ``--meta-net`` each init is fitted once and that fit
quantized to every rate, ``codec.encode.encode_at_rates``, the same encodes at a quarter of the time):
``--init random`` and ``--init meta`` (the size model's network, which is the shipped θ0's at the
rates θ0 ships for). Reported per rate: bytes, bpp, PSNR of both, JPEG/WebP/JPEG 2000/AVIF at the meta
file's bytes; the BD-rate of meta against random per image and on the mean curves. Speed, at every
rate (``speed_by_rate``; ``speed`` is the first rate's): meta encodes of ``--fast-steps`` steps; the
fewest that reach the random encode's PSNR there (steps and wall time as shares of the random
encode's). Run niced, one torch thread; test sets only measured, never trained on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmarks.rate_sweep import CODECS
from codec.errors import ConfigError

MIN_GAIN_DB = 0.1
"""BD-rate needs curves that rise with the rate: each higher rate at least this much better (else NaN,
and ``delta_psnr`` per rate, meta minus random at equal bytes, is the measure)."""


def _config(
    steps: int, init: str, device: str, net: tuple[int, int, int] | None, tuning: dict[str, Any] | None
) -> Any:
    from codec.config import EncodeConfig, ModelSpec, TrainConfig
    from codec.sizemodel import SPINR_JOINT

    spec = ModelSpec("spinr")
    if net is not None:  # one architecture for both (a shipped θ0's): the issue's "same architecture"
        spec = ModelSpec("spinr", net[0], net[1], {"pe_frequencies": net[2], "joint": SPINR_JOINT})
    return EncodeConfig(spec, TrainConfig(steps=steps, device=device, init=init, **(tuning or {})))


def _row(r: Any, img: np.ndarray, init: str) -> dict[str, Any] | None:
    if isinstance(r, ConfigError):
        return None  # a rate this network cannot reach
    arch = r.bitstream.header.arch
    conceal = _conceal(r.bitstream, img) if init == "meta" else {}
    return {
        **conceal,
        "bytes": r.bytes,
        "bpp": round(r.bpp, 4),
        "psnr": round(r.psnr, 3),
        "float_psnr": round(r.float_psnr, 3),
        "stage_psnr": [round(p, 3) for p in r.stage_psnr],
        "net": f"{arch['width']}x{arch['hidden_layers']} L={arch['pe_frequencies']}",
        "seconds": round(r.seconds, 2),
    }


def _encodes(
    img: np.ndarray,
    bpps: list[float],
    steps: int,
    init: str,
    device: str,
    net: tuple[int, int, int] | None,
    tuning: dict[str, Any] | None = None,
) -> list[dict[str, Any] | None]:
    """Real rate-controlled encodes at every rate: one fit quantized to each rate
    (``codec.encode.encode_at_rates``) for a fixed network, else one encode per rate."""
    from codec.encode import encode_at_rates, encode_image

    cfg = _config(steps, init, device, net, tuning)
    if net is not None:
        return [_row(r, img, init) for r in encode_at_rates(img, cfg, bpps)]
    return [_row(encode_image(img, cfg.replace(**{"rate.bpp": b})), img, init) for b in bpps]


def _conceal(bs: Any, img: np.ndarray) -> dict[str, Any]:
    """PSNR with each middle unit lost, concealed by stopping (prefix), leaving it out (skip) or θ0's unit."""
    from codec.bitstream import Bitstream
    from codec.decoder import ProgressiveDecoder
    from codec.metrics import psnr

    out: dict[str, list[float]] = {"lost_prefix": [], "lost_skip": [], "lost_theta0": []}
    for lost in range(1, bs.header.num_units - 1):
        part = Bitstream(bs.header, {u: v for u, v in bs.units.items() if u != lost}, bs.stream_id)
        for how in ("prefix", "skip", "theta0"):
            rgb = ProgressiveDecoder.from_bitstream(part, conceal=how).decode().rgb
            out[f"lost_{how}"].append(round(psnr(rgb, img), 3))
    return out


def _classical(img: np.ndarray, size: int) -> dict[str, float | None]:
    from codec.classical import at_bytes, decode
    from codec.metrics import psnr

    out: dict[str, float | None] = {}
    for codec in CODECS:
        found = at_bytes(img, codec, size)
        out[codec] = round(psnr(decode(found.data), img), 3) if found.fits else None
    return out


def _bd(rows: list[dict[str, Any]]) -> float:
    from experiments.rd import bd_rate

    ok = sorted((r for r in rows if r.get("random") and r.get("meta")), key=lambda r: r["target_bpp"])
    if len(ok) < 4:
        return math.nan
    for init in ("random", "meta"):
        gains = np.diff([r[init]["psnr"] for r in ok])
        if np.any(gains < MIN_GAIN_DB):
            return math.nan  # a curve that saturates (a network too small for the rate): no cubic fits it
    return bd_rate(
        [r["random"]["bytes"] for r in ok],
        [r["random"]["psnr"] for r in ok],
        [r["meta"]["bytes"] for r in ok],
        [r["meta"]["psnr"] for r in ok],
    )


def bench_meta(
    images: list[tuple[str, np.ndarray]],
    bpps: list[float],
    steps: int,
    fast_steps: list[int],
    device: str,
    net: tuple[int, int, int] | None = None,
    meta_steps: int | None = None,
    meta_tuning: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``net`` (width, hidden layers, L) fixes the architecture of both encodes at every rate; None:
    the size model's network per rate (and ``--init meta`` snapped to the nearest shipped θ0).
    ``meta_steps`` (default ``steps``): the meta encodes' steps at every rate; ``meta_tuning``: their
    TrainConfig fields (``lr``, ``residual_penalty``, ``residual_norm``; default the config's)."""
    import torch

    torch.set_num_threads(1)
    per_image = []
    for name, img in images:
        randoms = _encodes(img, bpps, steps, "random", device, net)
        metas = _encodes(img, bpps, meta_steps or steps, "meta", device, net, meta_tuning)
        rows = []
        for bpp, rnd, met in zip(bpps, randoms, metas, strict=True):
            row: dict[str, Any] = {"target_bpp": bpp, "random": rnd, "meta": met}
            if met is not None:
                row["classical_at_meta_bytes"] = _classical(img, met["bytes"])
            rows.append(row)
            print(name, row, flush=True)
        if rows[0]["random"] is None:
            raise ConfigError(
                f"{name}: the random encode cannot reach {bpps[0]} bpp, the speed rate (the first)"
            )
        runs = _fast_runs(img, bpps, rows, sorted(fast_steps), device, net, meta_tuning, name)
        by_rate = [
            _speed(bpp, steps, row, [(k, rs[i]) for k, rs in runs])
            for i, (bpp, row) in enumerate(zip(bpps, rows, strict=True))
        ]
        per_image.append(
            {
                "image": name,
                "rows": rows,
                "bd_rate_percent": round(_bd(rows), 2),
                "speed": by_rate[0],
                "speed_by_rate": by_rate,
            }
        )
    return {
        "images": len(images),
        "steps": steps,
        "meta_steps": meta_steps or steps,
        "meta_tuning": meta_tuning or {},
        "bpps": bpps,
        "net": None if net is None else {"width": net[0], "hidden_layers": net[1], "pe_frequencies": net[2]},
        "per_image": per_image,
        "summary": summarize(per_image, bpps),
    }


def _fast_runs(
    img: np.ndarray,
    bpps: list[float],
    rows: list[dict[str, Any]],
    fast_steps: list[int],
    device: str,
    net: tuple[int, int, int] | None,
    tuning: dict[str, Any] | None,
    name: str,
) -> list[tuple[int, list[dict[str, Any] | None]]]:
    """Meta encodes of each of ``fast_steps`` steps at every rate (one fit per step count with a fixed
    network), fewest first, until each rate has one that reaches the random encode's PSNR there."""
    runs: list[tuple[int, list[dict[str, Any] | None]]] = []
    for k in fast_steps:
        got = _encodes(img, bpps, k, "meta", device, net, tuning)
        runs.append((k, got))
        print(name, "fast", k, [None if r is None else r["psnr"] for r in got], flush=True)
        at_rate = [[(k, rs[i]) for k, rs in runs] for i in range(len(rows))]
        if all(_first_reaching(row["random"], rs) for row, rs in zip(rows, at_rate, strict=True)):
            break
    return runs


def _first_reaching(
    rnd: dict[str, Any] | None, runs: list[tuple[int, dict[str, Any] | None]]
) -> tuple[int, dict[str, Any]] | None:
    """The first (steps, encode) of ``runs`` at one rate whose PSNR reaches the random encode's there
    (None when none does, or the random encode missed this rate)."""
    if rnd is None:
        return None
    return next(((k, r) for k, r in runs if r is not None and r["psnr"] >= rnd["psnr"]), None)


def _speed(
    bpp: float, steps: int, row: dict[str, Any], runs: list[tuple[int, dict[str, Any] | None]]
) -> dict[str, Any]:
    """At one rate: the fewest meta steps that reach the random encode's PSNR, as shares of its steps
    and of its wall time (None when no run reached it, or the random encode missed this rate)."""
    rnd = row["random"]
    out: dict[str, Any] = {
        "bpp": bpp,
        "random_steps": steps,
        "random_psnr": rnd and rnd["psnr"],
        "random_seconds": rnd and rnd["seconds"],
        "steps_share": None,
        "time_ratio": None,
    }
    out["meta_runs"] = [{"steps": k, **r} for k, r in runs if r is not None]
    reached = _first_reaching(rnd, runs)
    if reached is not None:
        assert rnd is not None
        k, r = reached
        out["steps_share"] = round(k / steps, 4)
        out["time_ratio"] = round(rnd["seconds"] / r["seconds"], 2)
    return out


def summarize(per_image: list[dict[str, Any]], bpps: list[float]) -> dict[str, Any]:
    """Mean curves, the BD-rate on them and the mean of the per-image BD-rates, and the speed shares."""
    table = []
    for i, bpp in enumerate(bpps):
        rows = [p["rows"][i] for p in per_image]
        entry: dict[str, Any] = {"target_bpp": bpp}
        if any(r["random"] is None or r["meta"] is None for r in rows):
            entry["random"] = entry["meta"] = None  # a rate the network cannot reach on some image
            table.append(entry)
            continue
        for init in ("random", "meta"):
            entry[init] = {
                k: round(float(np.mean([r[init][k] for r in rows])), 4)
                for k in ("bytes", "bpp", "psnr", "seconds")
            }
        entry["delta_psnr"] = round(entry["meta"]["psnr"] - entry["random"]["psnr"], 3)
        for codec in CODECS:
            vals = [r["classical_at_meta_bytes"][codec] for r in rows]
            entry[codec] = round(float(np.mean(vals)), 3) if None not in vals else None
        table.append(entry)
    mean_rows = [{"target_bpp": t["target_bpp"], "random": t["random"], "meta": t["meta"]} for t in table]
    conceal: dict[str, float | None] = {}
    for how in ("prefix", "skip", "theta0"):  # none when every stream is too short to lose a middle unit
        vals = [v for p in per_image for r in p["rows"] if r["meta"] for v in r["meta"][f"lost_{how}"]]
        conceal[how] = round(float(np.mean(vals)), 3) if vals else None
    bds = [p["bd_rate_percent"] for p in per_image if not math.isnan(p["bd_rate_percent"])]
    by_rate = []
    for i, bpp in enumerate(bpps):
        sp = [p["speed_by_rate"][i] for p in per_image]
        ok = None not in [s["steps_share"] for s in sp]
        by_rate.append(
            {
                "bpp": bpp,
                "steps_share_worst": max(s["steps_share"] for s in sp) if ok else None,
                "steps_share_mean": round(float(np.mean([s["steps_share"] for s in sp])), 4) if ok else None,
                "time_ratio_mean": round(float(np.mean([s["time_ratio"] for s in sp])), 2) if ok else None,
                "time_ratio_worst": min(s["time_ratio"] for s in sp) if ok else None,
            }
        )
    return {
        "speed_by_rate": by_rate,
        "table": table,
        "bd_rate_mean_curves_percent": round(_bd(mean_rows), 2),
        "bd_rate_per_image_mean_percent": round(float(np.mean(bds)), 2) if bds else None,
        # the first rate's, as every image's "speed" is
        "steps_share": by_rate[0]["steps_share_mean"],
        "steps_share_worst": by_rate[0]["steps_share_worst"],
        "time_ratio": by_rate[0]["time_ratio_mean"],
        "time_ratio_worst": by_rate[0]["time_ratio_worst"],
        "lost_middle_unit_mean_psnr": conceal,
    }

"""Tuning rate-aware fine-tuning from θ0 (issue #13) on held-out sun80 crops, cheaply: each recipe
(init, steps, learning rate, residual penalty) is fitted once in float, then the same fit is quantized
to every rate of ``--bpp-list`` (the real sequential quantizer and bitstream of ``spinr encode``, from a
copy of the fitted model), so one fit gives a whole rate-distortion curve. Reported per recipe: float
PSNR, fit seconds, and per rate bytes / bpp / PSNR; the BD-rate of each meta recipe against the random
one (same network). Only a training corpus may be tuned on (codec.meta.corpus refuses test sets).

    python -m experiments.meta_residual --dataset ../shared/datasets/sun80 --images 2 \\
        --recipe random:2000 --recipe meta:500 --recipe meta:500:lr=3e-3:pen=30 --out tune.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from typing import Any

import numpy as np

NET = (16, 3, 10)
"""The default rate's θ0 network (SPINR 16 x 3, L = 10): both inits use it unless ``--net`` says."""


def parse_net(text: str) -> tuple[int, int, int]:
    """``WIDTHxHIDDEN:L``, e.g. ``9x3:8`` (the 0.25 bpp θ0's network); without ``:L``, L = 0. Also
    ``spinr bench meta --meta-net``'s parser."""
    from codec.decoder import parse_size

    size, _, pe = text.partition(":")
    width, hidden = parse_size(size)
    return width, hidden, int(pe or 0)


def parse_recipe(text: str) -> dict[str, Any]:
    """``init:steps[:lr=..][:pen=..][:norm=l1|l2][:t0=FILE]``; ``t0`` names a θ0 file to start from
    instead of the shipped one (it must be of the same network), e.g. a ``spinr meta-train`` output."""
    parts = text.split(":")
    out: dict[str, Any] = {"init": parts[0], "steps": int(parts[1]), "lr": None, "pen": 0.0, "norm": "l1"}
    for p in parts[2:]:
        k, v = p.split("=")
        out[k] = v if k in ("norm", "t0") else float(v)
    return out


def _theta0(recipe: dict[str, Any], planned: Any) -> Any:
    """The recipe's own θ0 (``t0=FILE``, registered so the decode finds it), else the planned one."""
    if not recipe.get("t0") or planned is None:
        return planned
    from codec.meta import store
    from codec.meta.initfile import read_init

    init = read_init(recipe["t0"])
    init.check_matches(planned.model, planned.arch)
    store.register(init)
    return init


def run_recipe(
    img: np.ndarray, recipe: dict[str, Any], bpps: list[float], net: tuple[int, int, int] = NET
) -> dict[str, Any]:
    from codec.config import EncodeConfig, ModelSpec, TrainConfig
    from codec.encode import _build, _plan, _train_config, seq_steps
    from codec.errors import ConfigError
    from codec.finish import finish
    from codec.sizemodel import SPINR_JOINT
    from codec.train import fit

    spec = ModelSpec("spinr", net[0], net[1], {"pe_frequencies": net[2], "joint": SPINR_JOINT})
    train = TrainConfig(
        steps=recipe["steps"], lr=recipe["lr"], init=recipe["init"], device="cpu",
        residual_penalty=recipe["pen"], residual_norm=recipe["norm"],
    )  # fmt: skip
    asked = EncodeConfig(spec, train)
    cfg, _, init, _ = _plan(img, asked.replace(**{"rate.bpp": bpps[0] if bpps else 0.5}))
    init = _theta0(recipe, init)
    model = _build(img, cfg, init)
    seq = seq_steps(cfg, len(model.units()))
    t = time.perf_counter()
    result = fit(model, img, _train_config(cfg, model, seq))
    seconds = time.perf_counter() - t
    drift = None
    if init is not None:
        from codec.meta.residual import base_tensors

        base = base_tensors(model, init)
        assert base is not None
        now = [t.detach().numpy() for _, ts in model.units() for _, t in ts]
        drift = float(
            np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(now, base, strict=True)))
            / np.sqrt(sum((b**2).sum() for b in base))
        )
    rows = []
    for bpp in bpps:
        c, target, _, _ = _plan(img, asked.replace(**{"rate.bpp": bpp}))
        m = copy.deepcopy(model)
        try:
            r = finish(m, img, c, result, seconds, target=target, seq=seq, init=init)
        except ConfigError as e:  # a target this network cannot reach
            rows.append({"bpp": bpp, "error": str(e)})
            continue
        rows.append(
            {"bpp": round(r.bpp, 4), "bytes": r.bytes, "psnr": round(r.psnr, 3), "stages": len(r.stage_psnr)}
        )
    return {
        "recipe": recipe,
        "float_psnr": round(result.stage_psnr[-1], 3),
        "fit_seconds": round(seconds, 1),
        "relative_drift": None if drift is None else round(drift, 4),
        "rows": rows,
    }


def bd(ref: dict[str, Any], test: dict[str, Any]) -> float:
    from experiments.rd import bd_rate

    a = [r for r in ref["rows"] if "psnr" in r]
    b = [r for r in test["rows"] if "psnr" in r]
    try:
        return bd_rate(
            [r["bytes"] for r in a], [r["psnr"] for r in a], [r["bytes"] for r in b], [r["psnr"] for r in b]
        )
    except Exception:  # noqa: BLE001 - a curve no cubic fits
        return math.nan


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--bpp-list", default="0.2,0.3,0.4,0.5")
    ap.add_argument("--recipe", action="append", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--net", default="16x3:10", help="WIDTHxHIDDEN:L of both inits (default 16x3:10)")
    a = ap.parse_args(argv)
    import torch

    from codec.meta.corpus import center, load_corpus

    torch.set_num_threads(1)
    _, val = load_corpus(a.dataset, 4)
    imgs = [center(v, 192, 128) for v in val[: a.images]]
    bpps = [float(b) for b in a.bpp_list.split(",") if b]  # none: float PSNR only
    out: list[dict[str, Any]] = []
    for text in a.recipe:
        recipe = parse_recipe(text)
        per = [run_recipe(img, recipe, bpps, parse_net(a.net)) for img in imgs]
        entry = {"recipe": text, "per_image": per}
        if out:
            entry["bd_rate_vs_first"] = [
                round(bd(r, p), 2) for r, p in zip(out[0]["per_image"], per, strict=True)
            ]
        out.append(entry)
        print(json.dumps(entry), flush=True)
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``spinr bench train``: the training loop's speed, every number a ratio against a reference timed in
the same run (docs/SPINR.md, "Speed").

- ``loops``: a SIREN fitted by a plain PyTorch loop written like COIN's reference trainer
  (``benchmarks/coin_loop.py``), by spinr's plain loop and by its fast loop: steps/s and PSNR.
- ``options``: a SPINR fit with each fast-path option on its own (fused sine kernels, the prefix
  cache, bf16 autocast with its PSNR change, ``torch.compile``, a host sync at every step) against the
  plain loop; all fits share seed, image and steps, so their PSNRs compare.
- ``threads``: the same fast fit with 1 torch thread and with all of this process's cores, and the
  machine's load average while it ran (a busy machine punishes threads that wait for each other).
- ``batched``: K small SIRENs (different images and seeds, one size) fitted as one batch against the
  same K fitted one after another (fast loop and plain loop).
- ``server``: a real ``spinr serve`` finishing K queued same-size jobs with ``--batch 1`` and with
  ``--batch K``, on the embedded process pool and on Ray (``--engine ray``, a local cluster).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.timed import Timed, best_of, result_row, result_rows

OPTIONS: dict[str, dict[str, Any]] = {
    "plain loop (reference)": {"loop": "plain", "prefix_cache": False},
    "plain loop + prefix cache": {"loop": "plain"},
    "fast loop + fused sine only": {"prefix_cache": False},
    "fast loop defaults (fused + cache)": {},
    "batched loop at K=1, no option": {"batched": True, "kernels": "plain", "prefix_cache": False},
    "batched loop at K=1, defaults": {"batched": True},
    "batched loop at K=1, host sync every step": {"batched": True, "sync_every": 1},
    "defaults + bf16 autocast": {"precision": "bf16"},
    "defaults + torch.compile": {"compile": True},
}
"""TrainConfig fields of each measured variant (the rest are TrainConfig's defaults: the fast loop,
which for one fp32 CPU fit keeps the plain loop's host-side bookkeeping); ``batched`` runs the fit
through ``codec.batched.fit_many`` as a batch of one (what bf16, compile and CUDA fits use)."""


def _fit(
    name: str, width: int, depth: int, image: np.ndarray, seed: int, steps: int, device: str, **train: Any
) -> tuple[float, Any]:
    """Seconds and FitResult of one fit (model built and seeded as ``encode_image`` does)."""
    import torch

    from codec.batched import fit_many
    from codec.config import TrainConfig
    from codec.models import build_model
    from codec.train import fit

    torch.manual_seed(seed)
    model = build_model(name, width, depth)
    model.set_image_size(image.shape[1], image.shape[0])
    batched = train.pop("batched", False)
    cfg = TrainConfig(steps=steps, device=device, seed=seed, **train)
    start = time.perf_counter()
    result = fit_many([model], [image], [cfg])[0] if batched else fit(model, image, cfg)
    if isinstance(result, Exception):
        raise result
    return time.perf_counter() - start, result


def _spinr_fit(
    name: str, width: int, depth: int, image: np.ndarray, seed: int, steps: int, device: str, **train: Any
) -> Callable[[], float]:
    return lambda: _fit(name, width, depth, image, seed, steps, device, **train)[1].stage_psnr[-1]


def bench_loops(
    image: np.ndarray, width: int, depth: int, steps: int, device: str, repeats: int
) -> dict[str, Any]:
    """COIN's loop, spinr's plain loop and its fast loop on one SIREN, all at COIN's constant
    learning rate (``lr_decay`` 1) so the three fit the same function the same way."""
    import torch

    from benchmarks.coin_loop import coin_train
    from codec.coords import grid
    from codec.device import resolve_device
    from codec.models import build_model
    from codec.train import image_tensor

    dev = resolve_device(device)
    coords = torch.from_numpy(grid(image.shape[1], image.shape[0])).to(dev)
    target = image_tensor(image, dev)

    def coin() -> float:
        torch.manual_seed(0)
        model = build_model("siren", width, depth).to(dev)
        return coin_train(model, coords, target, steps, model.default_lr)

    timed = best_of(
        [
            ("COIN-style loop (reference)", coin),
            (
                "spinr plain loop",
                _spinr_fit("siren", width, depth, image, 0, steps, device, loop="plain", lr_decay=1.0),
            ),
            ("spinr fast loop", _spinr_fit("siren", width, depth, image, 0, steps, device, lr_decay=1.0)),
            (
                "spinr fast loop, bf16 autocast",
                _spinr_fit("siren", width, depth, image, 0, steps, device, lr_decay=1.0, precision="bf16"),
            ),
        ],
        repeats,
    )
    rows = result_rows(timed, steps)
    return {"model": f"siren {width} x {depth}", "image": list(image.shape[:2]), "steps": steps, "rows": rows}


def bench_options(
    image: np.ndarray, width: int, depth: int, steps: int, device: str, compile_: bool, repeats: int
) -> dict[str, Any]:
    """Each fast-path option on its own against the plain loop, on a SPINR fit."""
    variants = [
        (label, _spinr_fit("spinr", width, depth, image, 0, steps, device, **train))
        for label, train in OPTIONS.items()
        if compile_ or not train.get("compile")
    ]
    first_compile = None
    if compile_:
        # The first compiled fit pays for compiling every stage; the timed ones reuse what they can.
        first_compile, _ = _fit("spinr", width, depth, image, 0, steps, device, compile=True)
    timed = best_of(variants, repeats)
    base = timed[0][3]
    rows = result_rows(timed, steps)
    for row in rows:
        row["psnr_change_db"] = round(row["psnr"] - base, 3)
    out = {"model": f"spinr {width} x {depth}", "image": list(image.shape[:2]), "steps": steps, "rows": rows}
    if first_compile is not None:
        out["first_compiled_fit_s"] = round(first_compile, 2)
    return out


def bench_threads(
    image: np.ndarray, width: int, depth: int, steps: int, device: str, repeats: int
) -> dict[str, Any]:
    """One fast SPINR fit with 1 torch thread and with every core."""
    import torch

    from codec.threads import cores

    before = torch.get_num_threads()
    rows: list[dict[str, Any]] = []
    fit_once = _spinr_fit("spinr", width, depth, image, 0, steps, device)
    first: Timed | None = None
    try:
        for n in sorted({1, cores()}):
            torch.set_num_threads(n)
            load = os.getloadavg()[0]
            ((label, wall, cpu, psnr),) = best_of([(f"{n} thread(s)", fit_once)], repeats)
            first = first or (label, wall, cpu, psnr)
            rows.append(result_row(label, wall, cpu, steps, psnr, first))
            rows[-1].update(threads=n, load_average=round(load, 2))
    finally:
        torch.set_num_threads(before)
    return {"model": f"spinr {width} x {depth}", "cores": cores(), "rows": rows}


def bench_batched(
    images: list[np.ndarray], width: int, depth: int, steps: int, device: str, k: int, repeats: int
) -> dict[str, Any]:
    """K SIRENs of one size as one batch against the same K fitted one after another."""
    import torch

    from codec.batched import fit_many
    from codec.config import TrainConfig
    from codec.models import build_model

    jobs = [(images[i % len(images)], i) for i in range(k)]
    psnrs: dict[str, list[float]] = {}

    def sequential(label: str, **train: Any) -> Callable[[], float]:
        def run() -> float:
            psnrs[label] = [
                _fit("siren", width, depth, img, s, steps, device, **train)[1].stage_psnr[-1]
                for img, s in jobs
            ]
            return float(np.mean(psnrs[label]))

        return run

    def batch() -> float:
        models = []
        for _, s in jobs:
            torch.manual_seed(s)
            models.append(build_model("siren", width, depth))
        cfgs = [TrainConfig(steps=steps, device=device, seed=s) for _, s in jobs]
        results = fit_many(models, [img for img, _ in jobs], cfgs)
        psnrs["batch"] = [r.stage_psnr[-1] if not isinstance(r, Exception) else float("nan") for r in results]
        return float(np.mean(psnrs["batch"]))

    timed = best_of(
        [
            (f"{k} sequential fits, plain loop (reference)", sequential("plain", loop="plain")),
            (f"{k} sequential fits, fast loop", sequential("fast")),
            (f"one batch of {k}", batch),
        ],
        repeats,
    )
    rows = result_rows(timed, k * steps)
    rows[-1]["speedup_vs_fast_sequential"] = round(timed[1][1] / timed[2][1], 3)
    rows[-1]["cpu_speedup_vs_fast_sequential"] = round(timed[1][2] / timed[2][2], 3)
    worst = max(abs(a - b) for a, b in zip(psnrs["batch"], psnrs["fast"], strict=True))
    return {
        "model": f"siren {width} x {depth}",
        "image": list(images[0].shape[:2]),
        "k": k,
        "steps": steps,
        "rows": rows,
        "max_psnr_difference_batch_vs_alone_db": round(worst, 4),
    }


def bench_train(
    images: list[np.ndarray],
    spinr_width: int,
    spinr_depth: int,
    steps: int,
    device: str,
    k: int,
    compile_: bool,
    repeats: int,
    sections: Callable[[str], bool] = lambda _: True,
    server_engines: list[str] | tuple[str, ...] = ("process", "ray"),
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Every section ``sections`` admits, each variant timed best of ``repeats``; the SIRENs are the
    issue's small net (32 x 4)."""
    import torch

    from codec.threads import cores

    report: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "cores": cores(), "repeats": repeats}
    report["load_average_at_start"] = round(os.getloadavg()[0], 2)
    if sections("loops"):
        print("[bench train] loops", file=sys.stderr)
        report["loops"] = bench_loops(images[0], 32, 4, steps, device, repeats)
    if sections("options"):
        print("[bench train] options", file=sys.stderr)
        report["options"] = bench_options(
            images[0], spinr_width, spinr_depth, steps, device, compile_, repeats
        )
    if sections("threads"):
        print("[bench train] threads", file=sys.stderr)
        report["threads"] = bench_threads(images[0], spinr_width, spinr_depth, steps, device, repeats)
    if sections("batched"):
        print("[bench train] batched", file=sys.stderr)
        report["batched"] = bench_batched(images, 32, 4, steps, device, k, repeats)
    if sections("server"):
        print("[bench train] server", file=sys.stderr)
        from benchmarks.server_bench import bench_server

        report["server"] = bench_server(k, steps, tuple(server_engines), ray_address, repeats)
    return report

"""``spinr bench train``'s ``server`` section: a real ``spinr serve`` (one worker, the tiny preset)
finishing K jobs of one size uploaded at once, one job at a time (``--batch 1``) against batches
(``--batch K``), on the embedded process pool and on Ray (``--engine ray``). Each configuration runs
``repeats`` times, round-robin (a busy machine's load drifts over minutes; every configuration sees
it alike), and keeps its best time; the first configuration is the reference."""

from __future__ import annotations

import importlib.util
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.train_bench import Timed, _row

SERVER_ENGINES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("process pool, --batch 1", ("--batch", "1")),
    ("process pool, --batch K", ("--batch", "K")),
    ("ray, --batch 1", ("--engine", "ray", "--batch", "1")),
    ("ray, --batch K", ("--engine", "ray", "--batch", "K")),
)
"""The configurations compared (one worker each; Ray on ``--ray-address`` when given, else on a
private local cluster each server starts, whose start is timed apart: ``start_seconds``)."""


def _run_once(flags: tuple[str, ...], k: int, steps: int) -> tuple[float, float, float]:
    """(seconds for the k jobs from the first upload to the last result, seconds the server took to
    be ready, mean PSNR) of one fresh server."""
    import httpx

    from benchmarks.load import LocalServer, small_image

    with tempfile.TemporaryDirectory(prefix="spinr-bench-") as tmp:
        server = LocalServer(Path(tmp) / "data", extra=(*flags, "--max-queued", str(k)))
        try:
            t0 = time.perf_counter()
            server.start(timeout=300.0)
            ready = time.perf_counter() - t0
            with httpx.Client(base_url=server.url, timeout=30) as http:
                start = time.perf_counter()
                ids = []
                for seed in range(k):
                    files = {"file": ("bench.png", small_image(), "image/png")}
                    r = http.post("/api/jobs", files=files, data={"steps": str(steps), "seed": str(seed)})
                    r.raise_for_status()
                    ids.append(r.json()["id"])
                jobs = _wait_all(http, ids)
                seconds = time.perf_counter() - start
        finally:
            server.stop()
    return seconds, ready, float(np.mean([j["result"]["psnr"] for j in jobs]))


def bench_server(
    k: int,
    steps: int,
    engines: tuple[str, ...] = ("process", "ray"),
    ray_address: str | None = None,
    repeats: int = 1,
) -> dict[str, Any]:
    """Every configuration of ``engines`` (``process``, ``ray``: left out when Ray is not installed)."""
    configs = [c for c in SERVER_ENGINES if ("ray" if "ray" in c[1] else "process") in engines]
    if "ray" in engines and importlib.util.find_spec("ray") is None:
        print(
            "[bench train] server: Ray is not installed (spinr[ray]); its rows are left out", file=sys.stderr
        )
        configs = [c for c in configs if "ray" not in c[1]]
    best: dict[str, tuple[float, float, float]] = {}
    for _ in range(max(1, repeats)):
        for label, flags in configs:
            extra = tuple(str(k) if f == "K" else f for f in flags)
            if "ray" in extra and ray_address:
                extra += ("--ray-address", ray_address)
            run = _run_once(extra, k, steps)
            best[label] = min(best.get(label, run), run)
    rows: list[dict[str, Any]] = []
    first: Timed | None = None
    for label, _ in configs:
        seconds, ready, psnr = best[label]
        label = label.replace("K", str(k))
        label, reference = (f"{label} (reference)", None) if first is None else (label, first)
        row = _row(label, seconds, None, k * steps, psnr, reference)
        first = first or (label, seconds, math.nan, psnr)
        rows.append({**row, "speedup": row.get("speedup", 1.0), "start_seconds": round(ready, 2)})
    return {
        "jobs": k,
        "image": [32, 32],
        "preset": "tiny",
        "steps": steps,
        "workers": 1,
        "repeats": max(1, repeats),
        "rows": rows,
    }


def _wait_all(http: Any, ids: list[str], timeout: float = 1800.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [http.get(f"/api/jobs/{i}").json() for i in ids]
        bad = [j for j in jobs if j["state"] in ("failed", "cancelled")]
        if bad:
            raise RuntimeError(f"bench job {bad[0]['id']} {bad[0]['state']}: {bad[0]['error']}")
        if all(j["state"] == "done" for j in jobs):
            return jobs
        time.sleep(0.1)
    raise RuntimeError(f"the server's jobs did not finish within {timeout:g} s")

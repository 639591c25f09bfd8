"""``spinr bench train``'s ``server`` section: a real ``spinr serve`` (one worker, the tiny preset)
finishing K jobs of one size uploaded at once, one job at a time (``--batch 1``) against batches
(``--batch K``), on the embedded process pool and on Ray (``--engine ray``). Each configuration runs
``repeats`` times, round-robin (a busy machine's load drifts over minutes; every configuration sees
it alike), and keeps its best time; the first configuration is the reference.

Wall-clock time on a shared machine also measures the scheduler: with autogroup scheduling (Linux's
default for desktops and many servers) every session gets an equal share of the CPU, and Ray starts
each worker in a session of its own while the process pool's workers share the server's, so under
load a Ray worker is handed more CPU. The CPU seconds the server's whole process tree spent on the
jobs (the server, its workers and, for a cluster it started itself, every Ray process) is the work
itself: ``cpu_seconds`` and ``cpu_speedup``."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.procstat import proc_stat
from benchmarks.timed import Timed, result_row

SERVER_ENGINES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("process pool, --batch 1", ("--batch", "1")),
    ("process pool, --batch K", ("--batch", "K")),
    ("ray, --batch 1", ("--engine", "ray", "--batch", "1")),
    ("ray, --batch K", ("--engine", "ray", "--batch", "K")),
)
"""The configurations compared (one worker each; Ray on ``--ray-address`` when given, else on a
private local cluster each server starts, whose start is timed apart: ``start_seconds``)."""


def _tree(pid: int) -> list[int]:
    """``pid`` and every process descended from it (Linux /proc; Ray's workers are the server's
    descendants through the raylet of a cluster the server started)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each live process of ``pid``'s tree."""
    if not Path("/proc/self/stat").exists():
        return {}  # not Linux: no CPU column
    return {p: stat[0] for p in _tree(pid) if (stat := proc_stat(p)) is not None}


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two samples (processes that started in between count in full)."""
    return sum(cpu - before.get(p, 0.0) for p, cpu in after.items())


def _run_once(flags: tuple[str, ...], k: int, steps: int) -> tuple[float, float, float, float]:
    """(seconds for the k jobs from the first upload to the last result, CPU seconds the server's
    process tree spent meanwhile, seconds the server took to be ready, mean PSNR) of a fresh server."""
    import httpx

    from benchmarks.load import LocalServer, small_image

    with tempfile.TemporaryDirectory(prefix="spinr-bench-") as tmp:
        server = LocalServer(Path(tmp) / "data", extra=(*flags, "--max-queued", str(k)))
        try:
            t0 = time.perf_counter()
            server.start(timeout=300.0)
            ready = time.perf_counter() - t0
            assert server.process is not None
            cpu0 = tree_cpu_seconds(server.process.pid)
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
            cpu = _spent(cpu0, tree_cpu_seconds(server.process.pid))
        finally:
            server.stop()
    return seconds, cpu, ready, float(np.mean([j["result"]["psnr"] for j in jobs]))


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
    best: dict[str, tuple[float, float, float, float]] = {}
    for _ in range(max(1, repeats)):
        for label, flags in configs:
            extra = tuple(str(k) if f == "K" else f for f in flags)
            if "ray" in extra and ray_address:
                extra += ("--ray-address", ray_address)
            run = _run_once(extra, k, steps)
            old = best.get(label, run)  # the best wall time and, apart, the least CPU of the runs
            best[label] = (min(old[0], run[0]), min(old[1], run[1]), *min(old, run)[2:])
    rows: list[dict[str, Any]] = []
    first: Timed | None = None
    for label, _ in configs:
        seconds, cpu, ready, psnr = best[label]
        label = label.replace("K", str(k))
        label, reference = (f"{label} (reference)", None) if first is None else (label, first)
        row = result_row(label, seconds, cpu or None, k * steps, psnr, reference)
        first = first or (label, seconds, cpu, psnr)
        row = {**row, "speedup": row.get("speedup", 1.0)}
        if cpu:
            row["cpu_speedup"] = row.get("cpu_speedup", 1.0)
        if "ray" in label and ray_address:
            row["cpu_note"] = "the cluster's processes are not the server's: its CPU is left out"
        rows.append({**row, "start_seconds": round(ready, 2)})
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

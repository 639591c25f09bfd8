"""Timing variants round-robin and the result rows of ``spinr bench train`` (and its server section)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

Timed = tuple[str, float, float, float]
"""(label, best wall-clock seconds, best CPU seconds of this process, PSNR)."""


def best_of(variants: list[tuple[str, Callable[[], float]]], repeats: int) -> list[Timed]:
    """Each variant (a callable returning its PSNR) run round-robin ``repeats`` times, its best times
    kept: on a shared machine the load drifts, and each variant meets it alike. The CPU time of this
    process is kept too: with one torch thread it is the work itself, which other processes' load
    barely changes (wall-clock time under a load of 9 on 2 cores varied 2x from run to run here)."""
    best = {label: (math.inf, math.inf, 0.0) for label, _ in variants}
    for _ in range(repeats):
        for label, run in variants:
            wall, cpu = time.perf_counter(), time.process_time()
            psnr = run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[label] = (min(best[label][0], wall), min(best[label][1], cpu), psnr)
    return [(label, *best[label]) for label, _ in variants]


def result_row(
    label: str, seconds: float, cpu: float | None, steps: int, psnr: float, reference: Timed | None
) -> dict[str, Any]:
    """A result row; speedups are the reference's time over this one's (wall clock and CPU)."""
    note = f"{cpu:7.2f} s CPU" if cpu is not None else ""
    rate = steps / seconds
    print(f"  {label:42s} {seconds:7.2f} s {note} {rate:7.1f} steps/s {psnr:6.2f} dB", file=sys.stderr)
    row: dict[str, Any] = {"variant": label, "seconds": round(seconds, 3), "steps_per_s": round(rate, 2)}
    if cpu is not None:
        row["cpu_seconds"] = round(cpu, 3)
    row["psnr"] = round(psnr, 3)
    if reference is not None:
        row["speedup"] = round(reference[1] / seconds, 3)
        if cpu is not None:
            row["cpu_speedup"] = round(reference[2] / cpu, 3)
    return row


def result_rows(timed: list[Timed], steps: int) -> list[dict[str, Any]]:
    """Rows of ``best_of``'s results against the first (the reference)."""
    return [result_row(label, wall, cpu, steps, psnr, timed[0]) for label, wall, cpu, psnr in timed]

"""What the local pool (experiments/pool.py) and the Ray pool (experiments/ray_pool.py) share: the
progress line and the body that runs one group of fits."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


class JobProgress:
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


def job_note(job: Any) -> str:
    """What the progress line says about a job: its image, model and seed, those it has."""
    return " ".join(f"{k}={getattr(job, k)}" for k in ("image_name", "model", "seed") if hasattr(job, k))


def run_group(fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
    """``[fn(job) for job in jobs]``, the jobs' fits first trained together as one batch when there
    are several (they share a shape: :func:`experiments.fitting.batch_key`)."""
    if len(jobs) > 1:
        from experiments.fitting import fit_images

        for job, fitted in zip(jobs, fit_images([j.fit_args() for j in jobs]), strict=True):
            job.prefit = fitted
    try:
        return [fn(job) for job in jobs]
    finally:
        for job in jobs:
            if hasattr(job, "prefit"):
                job.prefit = None  # the result holds what it needs; don't keep models alive

"""Runs an experiment's jobs: in order in this process, or in spawned worker processes, with a progress
line per finished job, an optional time budget, and each result spilled to disk as it arrives."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


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


def _plain(x: Any) -> Any:
    """A result as JSON: arrays and pictures left out, anything unknown as its string."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items() if not isinstance(v, np.ndarray) and k != "pics"}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x if isinstance(x, str | int | float | bool | type(None)) else str(x)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


@dataclass
class JobPool:
    """How an experiment's jobs run."""

    workers: int = 1
    """Worker processes (spawned: safe with CUDA); 1 runs the jobs in this process."""
    quiet: bool = False
    """No progress lines."""
    budget: float = 0.0
    """Seconds (0 = none): no job starts after the budget is spent."""
    spill: Path | None = None
    """When set, every finished job's result is appended to ``<label>.partial.jsonl`` here at once,
    so a run cut short (a killed process, a device time limit) keeps its raw numbers."""

    @classmethod
    def from_args(cls, args: Any, spill: Path | None = None) -> JobPool:
        """The pool the ``spinr experiment`` flags describe (``--workers``, ``--json``, ``--time-budget``)."""
        return cls(
            getattr(args, "workers", 1),
            bool(getattr(args, "json", False)),
            getattr(args, "time_budget", 0.0),
            spill,
        )

    def _spill(self, label: str, result: Any) -> None:
        if self.spill is not None:
            with open(self.spill / f"{label}.partial.jsonl", "a") as f:
                f.write(json.dumps(_plain(result)) + "\n")

    def map(
        self, fn: Callable[[Any], Any], jobs: Sequence[Any], label: str, budget: float | None = None
    ) -> list[Any]:
        """``[fn(job) for job in jobs]`` in job order; ``budget`` overrides the pool's.

        With a budget, skipped jobs come back as None (callers drop them, and their tables say how
        many fits they hold), so list jobs seed-major to keep whole seed rounds."""
        budget = self.budget if budget is None else budget
        if self.workers <= 1 or len(jobs) <= 1:
            return self._map_here(fn, jobs, label, budget)
        return self._map_workers(fn, jobs, label, budget)

    def _map_here(
        self, fn: Callable[[Any], Any], jobs: Sequence[Any], label: str, budget: float
    ) -> list[Any]:
        prog = JobProgress(len(jobs), label, self.quiet)
        start = time.perf_counter()
        results: list[Any] = [None] * len(jobs)
        for i, job in enumerate(jobs):
            if budget and time.perf_counter() - start > budget:
                print(f"[{label}] time budget spent: {len(jobs) - i} job(s) skipped", file=sys.stderr)
                break
            results[i] = fn(job)
            self._spill(label, results[i])
            prog.tick(job_note(job))
        return results

    def _map_workers(
        self, fn: Callable[[Any], Any], jobs: Sequence[Any], label: str, budget: float
    ) -> list[Any]:
        import multiprocessing as mp
        import os
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures import TimeoutError as FutureTimeout

        prog = JobProgress(len(jobs), label, self.quiet)
        results: list[Any] = [None] * len(jobs)
        threads = max(1, (os.cpu_count() or 2) // self.workers)
        ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
        )
        futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
        try:
            for fut in as_completed(futures, timeout=budget or None):
                i = futures[fut]
                results[i] = fut.result()
                self._spill(label, results[i])
                prog.tick(job_note(jobs[i]))
        except FutureTimeout:
            cancelled = sum(f.cancel() for f in futures)
            print(f"[{label}] time budget spent: {cancelled} job(s) skipped", file=sys.stderr)
            for fut, i in futures.items():
                if not fut.cancelled():
                    results[i] = fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results

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

from experiments.fit_groups import JobProgress, job_note, run_group


def _plain(x: Any) -> Any:
    """A result as JSON: arrays and pictures left out, anything unknown as its string."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items() if not isinstance(v, np.ndarray) and k != "pics"}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x if isinstance(x, str | int | float | bool | type(None)) else str(x)


def _init_worker(workers: int, threads: int) -> None:
    from codec.threads import size_torch_threads

    size_torch_threads(workers, threads)


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
    batch: int = 1
    """Fit up to this many jobs of one shape (seeds, same-size images of one model) together, with
    batched matmuls (``codec.batched``); 1 fits one at a time. Memory grows with it."""
    threads: int = 0
    """Torch threads per worker (0: ``OMP_NUM_THREADS`` when set, else the cores shared equally; never
    more than that share: ``codec.threads``)."""
    engine: str = "process"
    """``process``: this process or spawned worker processes; ``ray``: tasks of a Ray cluster
    (experiments.ray_pool, ``spinr[ray]``), ``workers`` fits sharing each GPU."""
    ray_address: str | None = None
    """The Ray cluster with ``engine="ray"`` (None: a private local one)."""
    ray_gpus: float | None = None
    """GPUs each Ray fit reserves (None: the cluster's GPUs shared by ``workers`` fits, none on CPU)."""
    device: str = "auto"
    """The fits' device (``--device``): ``cpu`` reserves no GPU on Ray."""

    @classmethod
    def from_args(cls, args: Any, spill: Path | None = None) -> JobPool:
        """The pool the ``spinr experiment`` flags describe (``--workers``, ``--json``, ``--time-budget``,
        ``--batch``, ``--threads``, ``--engine``, ``--ray-address``, ``--ray-gpus``, ``--device``)."""
        return cls(
            getattr(args, "workers", 1),
            bool(getattr(args, "json", False)),
            getattr(args, "time_budget", 0.0),
            spill,
            getattr(args, "batch", 1),
            getattr(args, "threads", 0),
            getattr(args, "engine", "process"),
            getattr(args, "ray_address", None),
            getattr(args, "ray_gpus", None),
            getattr(args, "device", "auto"),
        )

    def _spill(self, label: str, result: Any) -> None:
        if self.spill is not None:
            with open(self.spill / f"{label}.partial.jsonl", "a") as f:
                f.write(json.dumps(_plain(result)) + "\n")

    def groups(self, jobs: Sequence[Any]) -> list[list[int]]:
        """Job indices in the units that run together: jobs of one fit shape in groups of up to
        ``batch`` (in order of first appearance), any other job alone."""
        if self.batch <= 1:
            return [[i] for i in range(len(jobs))]
        from experiments.fitting import batch_key

        by_key: dict[str, list[int]] = {}
        out: list[list[int]] = []
        for i, job in enumerate(jobs):
            if not hasattr(job, "fit_args"):
                out.append([i])
                continue
            key = batch_key(job.fit_args())
            if key not in by_key or len(by_key[key]) >= self.batch:
                by_key[key] = []
                out.append(by_key[key])
            by_key[key].append(i)
        return out

    def map(
        self, fn: Callable[[Any], Any], jobs: Sequence[Any], label: str, budget: float | None = None
    ) -> list[Any]:
        """``[fn(job) for job in jobs]`` in job order; ``budget`` overrides the pool's.

        With a budget, skipped jobs come back as None (callers drop them, and their tables say how
        many fits they hold), so list jobs seed-major to keep whole seed rounds (with ``batch``, the
        seeds of one fit shape run together instead)."""
        budget = self.budget if budget is None else budget
        groups = self.groups(jobs)
        if self.engine == "ray":
            from experiments.ray_pool import map_ray

            return map_ray(self, fn, jobs, groups, label, budget)
        if self.workers <= 1 or len(groups) <= 1:
            return self._map_here(fn, jobs, groups, label, budget)
        return self._map_workers(fn, jobs, groups, label, budget)

    def _finished(
        self,
        label: str,
        prog: JobProgress,
        jobs: Sequence[Any],
        group: list[int],
        out: list[Any],
        results: list[Any],
    ) -> None:
        for i, result in zip(group, out, strict=True):
            results[i] = result
            self._spill(label, result)
            prog.tick(job_note(jobs[i]))

    def _map_here(
        self,
        fn: Callable[[Any], Any],
        jobs: Sequence[Any],
        groups: list[list[int]],
        label: str,
        budget: float,
    ) -> list[Any]:
        from codec.threads import size_torch_threads

        size_torch_threads(1, self.threads)
        prog = JobProgress(len(jobs), label, self.quiet)
        start = time.perf_counter()
        results: list[Any] = [None] * len(jobs)
        for n, group in enumerate(groups):
            if budget and time.perf_counter() - start > budget:
                left = sum(len(g) for g in groups[n:])
                print(f"[{label}] time budget spent: {left} job(s) skipped", file=sys.stderr)
                break
            self._finished(label, prog, jobs, group, run_group(fn, [jobs[i] for i in group]), results)
        return results

    def _map_workers(
        self,
        fn: Callable[[Any], Any],
        jobs: Sequence[Any],
        groups: list[list[int]],
        label: str,
        budget: float,
    ) -> list[Any]:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures import TimeoutError as FutureTimeout

        prog = JobProgress(len(jobs), label, self.quiet)
        results: list[Any] = [None] * len(jobs)
        ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=_init_worker, initargs=(self.workers, self.threads)
        )
        futures = {pool.submit(run_group, fn, [jobs[i] for i in g]): g for g in groups}
        try:
            for fut in as_completed(futures, timeout=budget or None):
                self._finished(label, prog, jobs, futures[fut], fut.result(), results)
        except FutureTimeout:
            cancelled = sum(len(g) for f, g in futures.items() if f.cancel())
            print(f"[{label}] time budget spent: {cancelled} job(s) skipped", file=sys.stderr)
            for fut, group in futures.items():
                if not fut.cancelled():
                    for i, result in zip(group, fut.result(), strict=True):
                        results[i] = result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results

"""``spinr experiment ... --engine ray``: an experiment's fits as tasks of a Ray cluster.

Each unit of :meth:`experiments.pool.JobPool.groups` (one fit, or a batch of same-shape fits) is one
Ray task reserving ``--threads`` CPUs (1 by default; also its torch threads) and a share of a GPU
(``--ray-gpus``, else the cluster's GPUs shared by ``--workers`` fits), so the cluster's resources
decide how many run at once. Results come back in job order, each spilled and counted as it arrives,
as with the process pool. With ``--time-budget``, fits not finished when it is spent are cancelled
(``ray.cancel``) and come back as None.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from codec.distributed import connect, gpu_share

if TYPE_CHECKING:
    from experiments.pool import JobPool


def _run_group(fn: Callable[[Any], Any], jobs: list[Any], threads: int) -> list[Any]:
    """The body of one Ray task: torch at ``threads`` threads, then the group's fits."""
    from codec.threads import size_torch_threads
    from experiments.fit_groups import run_group

    size_torch_threads(1, threads)
    return run_group(fn, jobs)


def map_ray(
    pool: JobPool,
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    groups: list[list[int]],
    label: str,
    budget: float,
) -> list[Any]:
    from experiments.fit_groups import JobProgress

    ray = connect(pool.ray_address)
    threads = max(1, pool.threads)
    task = ray.remote(_run_group).options(
        num_cpus=threads,
        num_gpus=gpu_share(pool.ray_gpus, pool.device, pool.workers),
        max_retries=0,  # a fit whose worker died is reported, not silently run twice
    )
    prog = JobProgress(len(jobs), label, pool.quiet)
    results: list[Any] = [None] * len(jobs)
    pending = {task.remote(fn, [jobs[i] for i in g], threads): g for g in groups}
    start = time.perf_counter()
    while pending:
        left = budget - (time.perf_counter() - start) if budget else None
        if left is not None and left <= 0:
            for ref in pending:
                ray.cancel(ref, force=True)  # a running fit is killed with its worker: its CPUs come back now
            skipped = sum(len(g) for g in pending.values())
            print(f"[{label}] time budget spent: {skipped} job(s) cancelled", file=sys.stderr)
            break
        done, _ = ray.wait(list(pending), num_returns=1, timeout=left)
        for ref in done:
            group = pending.pop(ref)
            pool._finished(label, prog, jobs, group, ray.get(ref), results)
    return results

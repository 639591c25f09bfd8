"""How many threads torch may use in each of a pool's worker processes.

Torch starts one intra-op thread per core in every process. Several such processes on one machine
oversubscribe it: on this project's 2-core machine, busy with other work, steps ran 15-20x slower
with torch's default 2 threads than with 1 (docs/SPINR.md, "Speed"). The server's training workers
and the experiments' pools therefore size their threads so workers x threads never exceeds the cores.
"""

from __future__ import annotations

import os


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells, else the core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, requested: int = 0) -> int:
    """Threads for each of ``workers`` processes: ``requested`` when given (capped so the pool fits
    the cores), else an equal share of the cores; at least 1."""
    share = max(1, cores() // max(1, workers))
    return max(1, min(requested, share) if requested > 0 else share)


def size_torch_threads(workers: int, requested: int = 0) -> int:
    """Set this process's torch threads to its share (:func:`threads_per_worker`); returns it."""
    import torch

    n = threads_per_worker(workers, requested)
    torch.set_num_threads(n)
    return n

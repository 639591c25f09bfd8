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


def omp_threads() -> int:
    """``OMP_NUM_THREADS`` when it is set to a positive whole number (the usual way to ask a process
    for fewer threads), else 0."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 0


def threads_per_worker(workers: int, requested: int = 0) -> int:
    """Threads for each of ``workers`` processes: ``requested`` when given, else ``OMP_NUM_THREADS``
    when set, else an equal share of the cores; never more than that share, at least 1.

    ``OMP_NUM_THREADS`` counts because the share alone assumes the machine is idle: on this 2-core
    machine under a load of 9, one worker's fit ran 21x slower with its share (2 threads) than with
    1 thread (188 s against 8.8 s), and the tests' servers ask for 1 thread that way."""
    share = max(1, cores() // max(1, workers))
    wanted = requested if requested > 0 else omp_threads()
    return max(1, min(wanted, share) if wanted > 0 else share)


def size_torch_threads(workers: int, requested: int = 0) -> int:
    """Set this process's torch threads to its share (:func:`threads_per_worker`); returns it."""
    import torch

    n = threads_per_worker(workers, requested)
    torch.set_num_threads(n)
    return n

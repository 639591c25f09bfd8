"""Where training workers run: the seam between the job manager (server.jobs) and its backends.

The job manager owns every job's state (the store), the queue, batching, cancel deadlines and
restart recovery; an engine only starts workers, hands them tasks, forwards cancels and reports what
they say. Two engines share that one lifecycle:

- ``process`` (the default, nothing to install): spawned worker processes on this machine
  (``server.worker.worker_main``), reporting on one multiprocessing queue;
- ``ray`` (``spinr[ray]``): one Ray actor per worker on a Ray cluster (``server.ray_engine``), with
  its CPU and GPU share accounted by Ray (a fractional GPU lets several small fits share one GPU).

Both speak the events of ``server.worker``: ``(kind, worker index, job id, payload)``.
"""

from __future__ import annotations

import os
import queue
from typing import Any, Protocol

from server.settings import ENGINES, Settings
from server.worker import Task, worker_main

__all__ = ["ENGINES", "Engine", "Event", "ProcessEngine", "WorkerHandle"]

Event = tuple[str, int, "str | None", Any]
"""A worker's report: ``(kind, worker index or -1, job id or None, payload)`` (server.worker)."""


class WorkerHandle(Protocol):
    """One training worker as the job manager sees it."""

    index: int

    def submit(self, task: Task) -> None:
        """Start training ``task``; the cancel slots it uses start cleared."""

    def cancel(self, slot: int) -> None:
        """Ask the job in ``slot`` of the current task to stop at its next step."""

    def alive(self) -> bool:
        """False once the worker is gone (crashed, killed or stopped)."""

    def death(self) -> str:
        """Why it is gone, for the error of the jobs it was training (``... while training``)."""

    def terminate(self) -> None:
        """Kill it now (it ignored a cancel, or the server is stopping)."""

    def shutdown(self) -> None:
        """Ask it to exit once its task is over (a cancel is sent separately)."""

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for it to exit; True when it has."""


class Engine(Protocol):
    name: str

    def spawn(self, index: int) -> WorkerHandle:
        """Start worker ``index``; it reports ``ready`` (or ``fatal``) once it can train."""

    def events(self, timeout: float) -> list[Event]:
        """Every report waiting, after up to ``timeout`` s for the first one."""

    def close(self) -> None:
        """Release what the engine holds (after its workers are stopped)."""


# -- the embedded pool -----------------------------------------------------------------------------
class _Process:
    """A spawned worker process with its task queue and one cancel ``Event`` per batch slot."""

    def __init__(self, engine: ProcessEngine, index: int) -> None:
        s = engine.settings
        self.index = index
        self.tasks = engine.ctx.Queue()
        self.cancels = [engine.ctx.Event() for _ in range(s.batch)]
        self.process = engine.ctx.Process(
            target=worker_main,
            args=(index, self.tasks, engine.queue, self.cancels, s.device, os.getpid(), s.workers),
            name=f"spinr-worker-{index}",
            daemon=True,
        )
        self.process.start()
        self.pid = self.process.pid

    def submit(self, task: Task) -> None:
        for slot in range(len(task)):
            self.cancels[slot].clear()
        self.tasks.put(task)

    def cancel(self, slot: int) -> None:
        self.cancels[slot].set()

    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def death(self) -> str:
        return f"worker process died (exit code {self.process.exitcode})"

    def terminate(self) -> None:
        self.process.terminate()
        self.process.join(2.0)

    def shutdown(self) -> None:
        if self.process.is_alive():
            self.tasks.put(None)

    def join(self, timeout: float) -> bool:
        self.process.join(timeout)
        return not self.process.is_alive()


class ProcessEngine:
    """Worker processes of the ``spawn`` context (safe with CUDA; torch imported once per worker)."""

    name = "process"

    def __init__(self, settings: Settings) -> None:
        import multiprocessing as mp

        self.settings = settings
        self.ctx: Any = mp.get_context("spawn")
        self.queue: Any = self.ctx.Queue()

    def spawn(self, index: int) -> WorkerHandle:
        return _Process(self, index)

    def events(self, timeout: float) -> list[Event]:
        try:
            out = [self.queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        pass

"""The job queue: training runs in workers, never on the event loop.

Each worker is long-lived (torch is imported once per worker, not once per job; ``server.worker``)
and trains one task at a time, with a cancel per slot; where it runs is the engine's business
(``server.engine``: worker processes on this machine, or actors on a Ray cluster), and every
engine's workers report on one event stream. A dispatcher thread in the server process owns every
state change: it hands queued jobs to idle workers (with ``Settings.batch`` > 1, up to that many
queued jobs of one shape at once, trained as one batch), writes progress to the store, stores
results, notices a worker that died (its jobs fail with the reason, a new worker takes its place)
and a worker that ignores a cancel request. Job state, cancels, progress, worker death and restart
recovery therefore behave the same on every engine.
Workers never touch the database, so a worker outliving a killed server changes nothing; they also
exit on their own when their parent process (the Ray driver, for actors) disappears.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from server.engine import Engine, ProcessEngine, WorkerHandle
from server.settings import Settings
from server.states import IllegalTransition, JobState
from server.store import STOP_REASON, QueueFull, Store
from server.worker import Task, encode_config

__all__ = ["CANCEL_GRACE", "JobManager", "Worker", "encode_config"]

log = logging.getLogger("spinr.jobs")

CANCEL_GRACE = 30.0
"""Seconds a worker has to honour a cancel before it is terminated and replaced."""


# -- server side --------------------------------------------------------------------------------
@dataclass
class Worker:
    index: int
    handle: WorkerHandle
    """The engine's worker (a process, a Ray actor)."""
    jobs: list[str] = field(default_factory=list)
    """The jobs it is training (in slot order); empty when idle."""
    ready: bool = False
    cancel_sent: float | None = None
    device: str | None = None
    threads: int = 0
    """Torch threads it runs with (its share of the cores)."""

    def cancel(self, job_id: str) -> bool:
        """Ask it to stop ``job_id``; False when it is not training it."""
        if job_id not in self.jobs:
            return False
        self.handle.cancel(self.jobs.index(job_id))
        self.cancel_sent = time.monotonic()
        return True


def make_engine(settings: Settings) -> Engine:
    """The engine ``settings.engine`` names; Ray is imported only when it is asked for."""
    if settings.engine == "ray":
        from server.ray_engine import RayEngine

        return RayEngine(settings)
    return ProcessEngine(settings)


@dataclass
class JobManager:
    store: Store
    settings: Settings
    workers: list[Worker] = field(default_factory=list)
    device: str | None = None
    """The device the workers resolved (``cpu``, ``cuda``...), once one has started."""

    def __post_init__(self) -> None:
        self.engine: Engine | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._start_failures = 0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> dict[str, list[str]]:
        recovered = self.store.recover()
        for job_id in recovered["failed"]:
            log.warning(
                "job failed by restart", extra={"job": job_id, "reason": "server restarted during training"}
            )
        for job_id in recovered["requeued"]:
            log.info("job requeued after restart", extra={"job": job_id})
        self.engine = make_engine(self.settings)
        for i in range(self.settings.workers):
            self.workers.append(self._spawn(i))
        self._thread = threading.Thread(target=self._loop, name="spinr-dispatcher", daemon=True)
        self._thread.start()
        return recovered

    def _spawn(self, index: int) -> Worker:
        assert self.engine is not None
        handle = self.engine.spawn(index)
        log.info("worker started", extra={"worker": index, "engine": self.engine.name})
        return Worker(index, handle)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for w in self.workers:
            for job_id in list(w.jobs):
                w.cancel(job_id)
            w.handle.shutdown()
        deadline = time.monotonic() + timeout
        for w in self.workers:
            if not w.handle.join(max(0.0, deadline - time.monotonic())):
                w.handle.terminate()
        try:
            self._drain(0.2)  # results that arrived while stopping still count
        except Exception:
            log.exception("could not read the last worker reports")
        if self.engine is not None:
            self.engine.close()
        # Jobs still marked running were interrupted by the shutdown: same policy as a crash.
        for job_id in self.store.ids_in_state(JobState.RUNNING):
            self._transition(job_id, JobState.FAILED, error=STOP_REASON)

    # -- API ------------------------------------------------------------------------------------
    def retry_after(self) -> int:
        mean = self.store.mean_seconds() or 10.0
        queued = self.store.counts()[JobState.QUEUED.value]
        return int(min(3600, max(1, math.ceil(mean * max(1, queued) / self.settings.workers))))

    def check_capacity(self) -> None:
        """QueueFull early (before an upload is decoded) when the queue is already full."""
        queued = self.store.counts()[JobState.QUEUED.value]
        if queued >= self.settings.max_queued_jobs:
            raise QueueFull(queued, self.settings.max_queued_jobs, self.retry_after())

    def submit(
        self,
        job_id: str,
        name: str,
        options: dict[str, Any],
        width: int,
        height: int,
        png: bytes,
        plan: dict[str, Any] | None = None,
    ) -> dict:
        job = self.store.create_job(
            job_id, name, options, width, height, png, self.settings.max_queued_jobs, self.retry_after(), plan
        )
        log.info("job queued", extra={"job": job_id, "width": width, "height": height})
        self._wake.set()
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Queued or running -> cancelled (IllegalTransition when finished, KeyError when unknown)."""
        with self._lock:
            job = self.store.transition(job_id, JobState.CANCELLED, error=None)
            for w in self.workers:
                w.cancel(job_id)
        log.info("job cancelled", extra={"job": job_id})
        self._wake.set()
        return job

    def counts(self) -> dict[str, int]:
        c = self.store.counts()
        return {"queued": c["queued"], "running": c["running"]}

    # -- dispatcher thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._drain(0.05)
                self._check_workers()
                self._dispatch()
            except Exception:  # the dispatcher must survive anything; the error is logged
                log.exception("dispatcher error")
            self._wake.wait(0.05)
            self._wake.clear()

    def _drain(self, timeout: float) -> None:
        if self.engine is None:
            return
        for event in self.engine.events(timeout):
            self._handle(*event)

    def _worker(self, index: int, job_id: str | None) -> Worker | None:
        if index >= 0:
            return self.workers[index] if index < len(self.workers) else None
        return next((w for w in self.workers if job_id in w.jobs), None)

    def _handle(self, kind: str, index: int, job_id: str | None, payload: Any) -> None:
        if kind == "progress" and job_id is not None:
            self.store.update_progress(job_id, **payload)
            return
        w = self._worker(index, job_id)
        if kind == "ready":
            if w is not None:
                w.ready, w.device, w.threads = True, payload["device"], payload["threads"]
            self.device = payload["device"]
            log.info("worker ready", extra={"worker": index, **payload})
            return
        if kind == "fatal":
            log.error("worker cannot start", extra={"worker": index, "reason": payload})
            if w is not None:
                w.ready = False
            self.device = f"unavailable: {payload}"
            return
        if job_id is None:  # every other report names its job
            log.error("worker report without a job", extra={"worker": index, "kind": kind})
            return
        if w is not None and job_id in w.jobs:
            w.jobs.remove(job_id)
            w.cancel_sent = None
        try:
            if kind == "done":
                result, data = payload
                self.store.finish(job_id, data, result)
                log.info("job done", extra={"job": job_id, "bytes": len(data), "psnr": result.get("psnr")})
            elif kind == "failed":
                self.store.transition(job_id, JobState.FAILED, error=payload)
                log.warning("job failed", extra={"job": job_id, "reason": payload})
            elif kind == "cancelled":
                # A user's cancel is in the store before the worker hears of it; a job still running
                # here was stopped by the shutdown (stop() cancels every worker): that is a failure
                # with its reason, not a cancel nobody asked for.
                job = self.store.get_job(job_id)
                if job is not None and job["state"] == JobState.RUNNING.value:
                    if self._stop.is_set():
                        self.store.transition(job_id, JobState.FAILED, error=STOP_REASON)
                    else:
                        self.store.transition(job_id, JobState.CANCELLED)
        except IllegalTransition:
            pass  # cancelled while it was finishing: the cancel wins, the result is dropped

    def _transition(self, job_id: str, state: JobState, **fields: Any) -> None:
        with contextlib.suppress(IllegalTransition, KeyError):
            self.store.transition(job_id, state, **fields)

    def _check_workers(self) -> None:
        for i, w in enumerate(self.workers):
            stuck = w.cancel_sent is not None and time.monotonic() - w.cancel_sent > CANCEL_GRACE
            if w.handle.alive() and not stuck:
                continue
            if stuck:
                log.warning("worker ignored cancel; terminating", extra={"worker": i, "jobs": w.jobs})
                w.handle.terminate()
            elif self._stop.is_set():
                continue
            death = w.handle.death()
            for job_id in w.jobs:
                self._transition(job_id, JobState.FAILED, error=f"{death} while training")
                log.error("worker died", extra={"worker": i, "job": job_id, "reason": death})
            if not w.ready and not w.jobs:
                self._start_failures += 1
                if self._start_failures > 3:
                    continue  # it cannot start (e.g. no CUDA): the error is logged, no respawn loop
            self.workers[i] = self._spawn(i)

    def _dispatch(self) -> None:
        idle = [w for w in self.workers if w.ready and not w.jobs and w.handle.alive()]
        queued = self.store.ids_in_state(JobState.QUEUED) if idle else []
        while idle and queued:
            group = self._group(queued)
            w = idle.pop(0)
            task: Task = []
            with self._lock:
                for job_id in group:
                    try:
                        job = self.store.transition(job_id, JobState.RUNNING, progress=0.0)
                    except IllegalTransition:
                        continue  # cancelled in between
                    w.jobs.append(job_id)
                    task.append((job_id, str(self.store.file_path(job_id, "original")), job["options"]))
                if task:  # inside the lock: a cancel of these jobs reaches the task, not the one before
                    w.handle.submit(task)
            if not task:
                idle.insert(0, w)
                continue
            log.info("job started", extra={"jobs": [t[0] for t in task], "worker": w.index})

    def _group(self, queued: list[str]) -> list[str]:
        """The next task's jobs, taken out of ``queued``: the first queued job and, up to
        ``Settings.batch``, the later ones of its shape (same image size and options but the seed)."""
        first = queued.pop(0)
        if self.settings.batch <= 1:
            return [first]
        key = self._batch_key(first)
        group = [first]
        for job_id in list(queued):
            if len(group) >= self.settings.batch or key is None:
                break
            if self._batch_key(job_id) == key:
                queued.remove(job_id)
                group.append(job_id)
        return group

    def _batch_key(self, job_id: str) -> tuple[Any, ...] | None:
        """What jobs trained together must share (None: the job trains alone)."""
        from codec.batched import batchable

        job = self.store.get_job(job_id)
        if job is None:
            return None
        try:
            cfg = encode_config(job["options"], self.settings.device)
        except Exception:  # the worker will report what is wrong with it
            return None
        if not batchable(cfg):
            return None
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=0))
        return job["image"]["width"], job["image"]["height"], repr(cfg)

"""The job queue: training runs in worker processes, never on the event loop.

Each worker is a long-lived process of the ``spawn`` context (torch is imported once per worker, not
once per job) with its own task queue and its own cancel ``Event``; all workers report on one shared
event queue. A dispatcher thread in the server process owns every state change: it hands queued jobs
to idle workers, writes progress to the store, stores results, notices a worker that died (its job
fails with the exit code, a new worker takes its place) and a worker that ignores a cancel request.
Workers never touch the database, so a worker outliving a killed server changes nothing; they also
exit on their own when their parent process disappears.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from codec.config import EncodeConfig, apply_overrides, preset
from server.settings import Settings
from server.states import IllegalTransition, JobState
from server.store import STOP_REASON, QueueFull, Store

log = logging.getLogger("spinr.jobs")

PROGRESS_INTERVAL = 0.1
"""Seconds between progress reports of a worker (stage boundaries are always reported)."""
CANCEL_GRACE = 30.0
"""Seconds a worker has to honour a cancel before it is terminated and replaced."""


def encode_config(options: dict[str, Any], device: str) -> EncodeConfig:
    """A job's options (already range-checked by the API) -> a validated EncodeConfig."""
    return apply_overrides(preset(options.get("preset", "quick")), {**options, "device": device})


# -- worker process -----------------------------------------------------------------------------
def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(3)  # the server is gone; nobody would read our results
        time.sleep(0.5)


def worker_main(index: int, tasks: Any, events: Any, cancel: Any, device: str, parent: int) -> None:
    """Entry point of a worker process: import torch once, then run tasks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops us
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    try:
        from codec.device import resolve_device

        resolved = str(resolve_device(device))
    except Exception as exc:
        events.put(("fatal", index, None, str(exc)))
        return
    events.put(("ready", index, None, resolved))
    while True:
        task = tasks.get()
        if task is None:
            return
        job_id, image_path, options = task
        try:
            result = _run_job(job_id, image_path, options, device, events, cancel)
            events.put(("done", index, job_id, result))
        except BaseException as exc:  # noqa: BLE001 - everything is reported, the worker lives on
            from codec.errors import Cancelled, SpinrError

            if isinstance(exc, Cancelled):
                events.put(("cancelled", index, job_id, None))
            elif isinstance(exc, SpinrError):
                events.put(("failed", index, job_id, str(exc)))
            elif isinstance(exc, MemoryError):
                events.put(("failed", index, job_id, "out of memory while training"))
            else:
                tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
                events.put(("failed", index, job_id, f"internal error: {tb}"))


def _run_job(
    job_id: str, image_path: str, options: dict[str, Any], device: str, events: Any, cancel: Any
) -> tuple[dict[str, Any], bytes]:
    """Train, quantize, serialise; the ``.spnr`` bytes go back to the server, which stores them."""
    from codec.encode import encode_image
    from codec.image import load_image

    cfg = encode_config(options, device)
    image = load_image(image_path)
    last = [0.0]

    def progress(p: Any) -> None:
        now = time.monotonic()
        if p.event == "step" and now - last[0] < PROGRESS_INTERVAL and p.step < p.steps:
            return
        last[0] = now
        psnr = p.psnr if math.isfinite(p.psnr) else None
        events.put(
            (
                "progress",
                -1,
                job_id,
                {
                    "progress": p.fraction,
                    "stage": p.stage,
                    "stages": p.stages,
                    "step": p.step,
                    "steps": p.steps,
                    "psnr": psnr,
                },
            )
        )

    result = encode_image(image, cfg, progress=progress, cancel=cancel)
    data = result.bitstream.to_bytes()
    summary = result.summary()
    return {
        "bpp": summary["bpp"],
        "psnr": summary["psnr"],
        "psnr_float": summary["psnr_float"],
        "stage_psnr": summary["stage_psnr"],
        "packets": summary["packets"],
        "params": summary["params"],
        "seconds": summary["seconds"],
        "warnings": summary["warnings"],
    }, data


# -- server side --------------------------------------------------------------------------------
@dataclass
class Worker:
    index: int
    process: Any
    tasks: Any
    cancel: Any
    job: str | None = None
    ready: bool = False
    cancel_sent: float | None = None
    device: str | None = None


@dataclass
class JobManager:
    store: Store
    settings: Settings
    workers: list[Worker] = field(default_factory=list)
    device: str | None = None
    """The device the workers resolved (``cpu``, ``cuda``...), once one has started."""

    def __post_init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self._events: Any = self._ctx.Queue()
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
        for i in range(self.settings.workers):
            self.workers.append(self._spawn(i))
        self._thread = threading.Thread(target=self._loop, name="spinr-dispatcher", daemon=True)
        self._thread.start()
        return recovered

    def _spawn(self, index: int) -> Worker:
        tasks = self._ctx.Queue()
        cancel = self._ctx.Event()
        proc = self._ctx.Process(
            target=worker_main,
            args=(index, tasks, self._events, cancel, self.settings.device, os.getpid()),
            name=f"spinr-worker-{index}",
            daemon=True,
        )
        proc.start()
        log.info("worker started", extra={"worker": index, "pid": proc.pid})
        return Worker(index, proc, tasks, cancel)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for w in self.workers:
            if w.job is not None:
                w.cancel.set()
            if w.process.is_alive():
                w.tasks.put(None)
        deadline = time.monotonic() + timeout
        for w in self.workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.terminate()
                w.process.join(1.0)
        try:
            self._drain(0.2)  # results that arrived while stopping still count
        except Exception:
            log.exception("could not read the last worker reports")
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
        self, job_id: str, name: str, options: dict[str, Any], width: int, height: int, png: bytes
    ) -> dict:
        job = self.store.create_job(
            job_id, name, options, width, height, png, self.settings.max_queued_jobs, self.retry_after()
        )
        log.info("job queued", extra={"job": job_id, "width": width, "height": height})
        self._wake.set()
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Queued or running -> cancelled (IllegalTransition when finished, KeyError when unknown)."""
        with self._lock:
            job = self.store.transition(job_id, JobState.CANCELLED, error=None)
            for w in self.workers:
                if w.job == job_id:
                    w.cancel.set()
                    w.cancel_sent = time.monotonic()
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
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._handle(*event)
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return

    def _worker(self, index: int, job_id: str | None) -> Worker | None:
        if index >= 0:
            return self.workers[index] if index < len(self.workers) else None
        return next((w for w in self.workers if w.job == job_id), None)

    def _handle(self, kind: str, index: int, job_id: str | None, payload: Any) -> None:
        if kind == "progress":
            self.store.update_progress(job_id, **payload)
            return
        w = self._worker(index, job_id)
        if kind == "ready":
            if w is not None:
                w.ready, w.device = True, payload
            self.device = payload
            log.info("worker ready", extra={"worker": index, "device": payload})
            return
        if kind == "fatal":
            log.error("worker cannot start", extra={"worker": index, "reason": payload})
            if w is not None:
                w.ready = False
            self.device = f"unavailable: {payload}"
            return
        if w is not None and w.job == job_id:
            w.job, w.cancel_sent = None, None
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
            if w.process.is_alive() and not stuck:
                continue
            if stuck:
                log.warning("worker ignored cancel; terminating", extra={"worker": i, "job": w.job})
                w.process.terminate()
                w.process.join(2.0)
            elif self._stop.is_set():
                continue
            if w.job is not None:
                reason = f"worker process died (exit code {w.process.exitcode}) while training"
                self._transition(w.job, JobState.FAILED, error=reason)
                log.error("worker died", extra={"worker": i, "job": w.job, "exitcode": w.process.exitcode})
            if not w.ready and w.job is None:
                self._start_failures += 1
                if self._start_failures > 3:
                    continue  # it cannot start (e.g. no CUDA): the error is logged, no respawn loop
            self.workers[i] = self._spawn(i)

    def _dispatch(self) -> None:
        idle = [w for w in self.workers if w.ready and w.job is None and w.process.is_alive()]
        if not idle:
            return
        for job_id in self.store.ids_in_state(JobState.QUEUED):
            if not idle:
                return
            with self._lock:
                try:
                    job = self.store.transition(job_id, JobState.RUNNING, progress=0.0)
                except IllegalTransition:
                    continue  # cancelled in between
                w = idle.pop(0)
                w.cancel.clear()
                w.job = job_id
            image = str(self.store.file_path(job_id, "original"))
            w.tasks.put((job_id, image, job["options"]))
            log.info("job started", extra={"job": job_id, "worker": w.index})

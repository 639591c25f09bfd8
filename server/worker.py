"""A training worker process: imports torch once, then runs the tasks the dispatcher (server.jobs)
hands it, reporting on the shared event queue.

A task is a list of jobs: one job, or several queued jobs of one shape (same image size, options
that differ only in the seed) that train together as one batch (``codec.encode.encode_images``,
``spinr serve --batch``). Each job of a task has its own cancel slot: a cancelled job stops at its
next step and is reported at once, the others train on.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
import traceback
from typing import Any

from codec.config import EncodeConfig, apply_overrides, preset

PROGRESS_INTERVAL = 0.1
"""Seconds between progress reports of a job (stage boundaries are always reported)."""

Task = list[tuple[str, str, dict[str, Any]]]
"""(job id, path of the uploaded image, options) of every job a worker trains at once."""


def encode_config(options: dict[str, Any], device: str) -> EncodeConfig:
    """A job's options (already range-checked by the API) -> a validated EncodeConfig."""
    return apply_overrides(preset(options.get("preset", "quick")), {**options, "device": device})


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(3)  # the server is gone; nobody would read our results
        time.sleep(0.5)


def prepare(device: str, workers: int, threads: int = 0) -> dict[str, Any]:
    """Import torch, size its threads (``threads`` when given, never more than the share of the cores
    of one of ``workers``: workers x threads never exceed the cores, docs/SPINR.md "Speed") and
    resolve the device: the payload of a worker's ``ready`` report."""
    from codec.device import resolve_device
    from codec.threads import size_torch_threads

    n = size_torch_threads(workers, threads)
    return {"device": str(resolve_device(device)), "threads": n, "pid": os.getpid()}


def worker_main(
    index: int, tasks: Any, events: Any, cancels: list[Any], device: str, parent: int, workers: int = 1
) -> None:
    """Entry point of a worker process: import torch once, then run tasks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops us
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    try:
        ready = prepare(device, workers)
    except Exception as exc:
        events.put(("fatal", index, None, str(exc)))
        return
    events.put(("ready", index, None, ready))
    while True:
        task = tasks.get()
        if task is None:
            return
        run_task(index, task, device, events, cancels)


def run_task(index: int, task: Task, device: str, events: Any, cancels: list[Any]) -> None:
    """Train one task (one job, or a batch), reporting each job's progress and end on ``events``
    (anything with ``put``); ``cancels[slot].is_set()`` asks the job in that slot to stop. Every
    error is reported as its job's failure: the worker lives on."""
    if len(task) == 1:
        job_id, image_path, options = task[0]
        try:
            result = _run_job(job_id, image_path, options, device, events, cancels[0])
            events.put(("done", index, job_id, result))
        except BaseException as exc:  # noqa: BLE001 - everything is reported, the worker lives on
            events.put(_failure(index, job_id, exc))
    else:
        try:
            _run_batch(index, task, device, events, cancels)
        except BaseException as exc:  # noqa: BLE001 - the whole batch failed together
            for job_id, _, _ in task:
                events.put(_failure(index, job_id, exc))


def _failure(index: int, job_id: str, exc: BaseException) -> tuple[str, int, str, str | None]:
    """The event reporting why a job stopped."""
    from codec.errors import Cancelled, SpinrError

    if isinstance(exc, Cancelled):
        return ("cancelled", index, job_id, None)
    if isinstance(exc, SpinrError):
        return ("failed", index, job_id, str(exc))
    if isinstance(exc, MemoryError):
        return ("failed", index, job_id, "out of memory while training")
    tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return ("failed", index, job_id, f"internal error: {tb}")


def _progress_fn(job_id: str, events: Any) -> Any:
    """A progress callback sending the job's progress at most every PROGRESS_INTERVAL (stage ends and
    the start of each quantization always), with its phase: ``training`` or ``quantizing``."""
    last = [0.0]

    def progress(p: Any) -> None:
        now = time.monotonic()
        if p.event == "step" and now - last[0] < PROGRESS_INTERVAL and p.step < p.steps:
            return
        last[0] = now
        psnr = p.psnr if math.isfinite(p.psnr) else None
        payload = {
            "progress": p.fraction,
            "stage": p.stage,
            "stages": p.stages,
            "step": p.step,
            "steps": p.steps,
            "psnr": psnr,
            "phase": "quantizing" if p.event == "quantize" else "training",
        }
        events.put(("progress", -1, job_id, payload))

    return progress


def _report_estimate(job_ids: list[str], cfg: EncodeConfig, image: Any, events: Any) -> None:
    """Measure the training time of the job(s) on this worker's device before training (the same
    estimate ``spinr encode`` prints; a batch of n trains at most n times as long as one)."""
    from codec.timing import estimate_encode_seconds

    seconds = len(job_ids) * estimate_encode_seconds(cfg, image)
    for job_id in job_ids:
        events.put(("progress", -1, job_id, {"estimated_seconds": seconds}))


def _outcome(result: Any) -> tuple[dict[str, Any], bytes]:
    """What the server stores of an encode: its summary and the ``.spnr`` bytes."""
    summary = result.summary()
    keys = ("bpp", "psnr", "psnr_float", "stage_psnr", "packets", "params", "seconds", "warnings")
    return {k: summary[k] for k in keys}, result.bitstream.to_bytes()


def _run_job(
    job_id: str, image_path: str, options: dict[str, Any], device: str, events: Any, cancel: Any
) -> tuple[dict[str, Any], bytes]:
    """Train, quantize, serialise; the ``.spnr`` bytes go back to the server, which stores them."""
    from codec.encode import encode_image
    from codec.image import load_image

    cfg = encode_config(options, device)
    image = load_image(image_path)
    _report_estimate([job_id], cfg, image, events)
    result = encode_image(image, cfg, progress=_progress_fn(job_id, events), cancel=cancel)
    return _outcome(result)


class _SlotCancel:
    """One batched job's cancel token: reports the job cancelled the moment training sees it."""

    def __init__(self, event: Any, index: int, job_id: str, events: Any) -> None:
        self.event, self.index, self.job_id, self.events = event, index, job_id, events
        self.reported = False

    def is_set(self) -> bool:
        if self.event.is_set() and not self.reported:
            self.reported = True
            self.events.put(("cancelled", self.index, self.job_id, None))
        return self.reported


def _run_batch(index: int, task: Task, device: str, events: Any, cancels: list[Any]) -> None:
    """Train the task's jobs as one batch; each job is reported as it ends."""
    from codec.encode import encode_images
    from codec.errors import SpinrError
    from codec.image import load_image

    cfgs = [encode_config(options, device) for _, _, options in task]
    images = [load_image(path) for _, path, _ in task]
    tokens = [_SlotCancel(cancels[i], index, job_id, events) for i, (job_id, _, _) in enumerate(task)]
    progress = [_progress_fn(job_id, events) for job_id, _, _ in task]
    _report_estimate([job_id for job_id, _, _ in task], cfgs[0], images[0], events)
    results = encode_images(images, cfgs, progress, tokens)
    for (job_id, _, _), token, result in zip(task, tokens, results, strict=True):
        if token.reported:
            continue
        if isinstance(result, SpinrError):
            events.put(_failure(index, job_id, result))
        else:
            events.put(("done", index, job_id, _outcome(result)))

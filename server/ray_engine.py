"""The Ray engine (``spinr serve --engine ray``): each training worker is a Ray actor.

An actor imports torch once and trains one task at a time, like a worker process of the embedded
pool, with the same code (``server.worker.run_task``). Ray accounts its resources: ``num_cpus``
(``Settings.ray_cpus``, also its torch threads) and ``num_gpus`` (``Settings.ray_gpus``; a fraction
lets several small fits share one GPU). The actor is *threaded* (``max_concurrency``): one thread
trains while others answer ``cancel`` (per batch slot) and ``drain``, a long poll that hands the
server the actor's buffered reports as soon as there are any.

A worker that dies (killed, out of memory, its node lost) surfaces as ``RayActorError`` on its
pending ``drain``: the job manager fails its jobs with that reason and starts a new actor. The actors
belong to the server's Ray driver, so a killed server takes them with it (Ray's owner semantics),
as the embedded workers exit when their parent disappears.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from typing import Any

from codec.distributed import connect, gpu_share
from server.engine import Event, WorkerHandle
from server.settings import Settings
from server.worker import Task, prepare, run_task

POLL_S = 0.5
"""Longest a ``drain`` call waits inside the actor for a report before answering empty."""
STOP_DRAIN_S = 5.0
"""Longest the server waits for an actor's last reports when it stops."""


class RayWorker:
    """The actor's body (made remote by :class:`RayEngine`, so this module imports without Ray)."""

    def __init__(self, index: int, device: str, threads: int) -> None:
        self.index, self.device = index, device
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._task = 0
        self._cancels: list[threading.Event] = []
        self._early: set[tuple[int, int]] = set()
        try:
            self.put(("ready", index, None, prepare(device, 1, threads)))
        except Exception as exc:
            self.put(("fatal", index, None, str(exc)))

    def put(self, event: Event) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def run(self, number: int, task: Task) -> None:
        """Train task ``number`` (numbered by the server, so a cancel that overtakes it still counts)."""
        with self._cond:
            self._task = number
            self._cancels = [threading.Event() for _ in task]
            for n, slot in self._early:
                if n == number and slot < len(task):
                    self._cancels[slot].set()
            self._early = {(n, s) for n, s in self._early if n > number}
            cancels = list(self._cancels)
        run_task(self.index, task, self.device, self, cancels)

    def cancel(self, number: int, slot: int) -> None:
        with self._cond:
            if number == self._task and slot < len(self._cancels):
                self._cancels[slot].set()
            elif number > self._task:
                self._early.add((number, slot))

    def drain(self, wait: float) -> list[Event]:
        with self._cond:
            if not self._events:
                self._cond.wait(wait)
            out, self._events = self._events, []
        return out


def _reason(exc: BaseException) -> str:
    """A dead actor's error in one line: Ray's exit detail, without its list of common causes."""
    text = " ".join(str(exc).split())
    m = re.search(r"exit detail: (.*?)(?: Some common causes.*)?$", text, re.IGNORECASE)
    detail = m.group(1) if m else text
    return f"Ray worker died ({type(exc).__name__}: {detail[:160]})"


class _Actor:
    """The server's handle on one worker actor."""

    def __init__(self, engine: RayEngine, index: int) -> None:
        self.engine, self.index = engine, index
        self.actor = engine.remote_class.remote(index, engine.settings.device, engine.cpus)
        self.number = 0
        self.run_ref: Any = None
        self.dead: str | None = None
        self.ready_seen = False
        self.drain_ref: Any = self.actor.drain.remote(POLL_S)

    def submit(self, task: Task) -> None:
        self.number += 1
        self.run_ref = self.actor.run.remote(self.number, task)

    def cancel(self, slot: int) -> None:
        if self.dead is None:
            self.actor.cancel.remote(self.number, slot)

    def alive(self) -> bool:
        return self.dead is None

    def death(self) -> str:
        return self.dead or "Ray worker died"

    def terminate(self) -> None:
        if self.dead is None:
            self.dead = "Ray worker terminated by the server"
        self.drain_ref = None
        with contextlib.suppress(Exception):  # already gone
            self.engine.ray.kill(self.actor, no_restart=True)

    def shutdown(self) -> None:
        pass  # join() waits for the task, collects the last reports and ends the actor

    def join(self, timeout: float) -> bool:
        ray = self.engine.ray
        if self.dead is not None:
            return True
        deadline = time.monotonic() + timeout
        if self.run_ref is not None:
            ray.wait([self.run_ref], timeout=max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(Exception):  # a dead or stuck actor has nothing more to say
            self.engine.pending += ray.get(self.actor.drain.remote(0.0), timeout=STOP_DRAIN_S)
        self.terminate()
        return True


class RayEngine:
    """Training workers as actors of a Ray cluster (``Settings.ray_address``, else a private local
    one)."""

    name = "ray"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ray = connect(settings.ray_address)
        self.cpus = settings.ray_cpus
        self.gpus = gpu_share(settings.ray_gpus, settings.device, settings.workers)
        self.remote_class = self.ray.remote(RayWorker).options(
            num_cpus=self.cpus,
            num_gpus=self.gpus,
            max_concurrency=4,  # training, cancel, the long-poll drain and the last one at a stop
            max_restarts=0,  # the job manager replaces a dead worker itself, failing its jobs first
        )
        self.handles: list[_Actor] = []
        self.pending: list[Event] = []

    def spawn(self, index: int) -> WorkerHandle:
        handle = _Actor(self, index)
        self.handles = [h for h in self.handles if h.index != index] + [handle]
        return handle

    def events(self, timeout: float) -> list[Event]:
        ray = self.ray
        out, self.pending = self.pending, []
        waiting = {h.drain_ref: h for h in self.handles if h.drain_ref is not None}
        if not waiting:
            if not out:
                time.sleep(timeout)
            return out
        refs = list(waiting)
        ray.wait(refs, num_returns=1, timeout=0.0 if out else timeout)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0.0)
        for ref in ready:
            h = waiting[ref]
            h.drain_ref = None
            try:
                got = ray.get(ref)
            except Exception as exc:  # RayActorError: the actor is gone
                h.dead = _reason(exc)
                if not h.ready_seen:
                    out.append(("fatal", h.index, None, h.dead))
                continue
            h.ready_seen = h.ready_seen or any(e[0] == "ready" for e in got)
            out += got
            h.drain_ref = h.actor.drain.remote(POLL_S)
        return out

    def close(self) -> None:
        for h in self.handles:
            if h.dead is None:
                h.terminate()
        self.handles = []
        # Leave the cluster now (a private one stops with us) rather than from an exit handler.
        # Ray's driver answers SIGTERM with exit status 15 (its own handler), not death by signal.
        self.ray.shutdown()

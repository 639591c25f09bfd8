"""The fuzz run's worker process (``spawn``, limited by ``RLIMIT_AS``): it runs the entry points on each
input and answers with the outcomes, the CPU seconds each took and its RSS; the parent's ``Worker``
hands it inputs and ``Watch`` judges hangs by CPU time (docs in :mod:`fuzz.driver`)."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.procstat import proc_stat

__all__ = ["Watch", "Worker", "worker_main"]


def _status_kb(field_name: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return float(line.split()[1])
    return 0.0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (Linux >= 4.0)
    except OSError:
        pass


def worker_main(conn: Any, memory_mb: int, extra_targets: str | None) -> None:
    import resource
    import warnings

    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    warnings.simplefilter("ignore", RuntimeWarning)  # numpy overflow in a hostile forward pass is not news
    from fuzz import targets

    table = dict(targets.TARGETS)
    if extra_targets:
        import importlib

        module, _, name = extra_targets.partition(":")
        table.update(getattr(importlib.import_module(module), name))
    with targets.scratch() as workdir:
        conn.send("ready")  # imports done: the parent's CPU clock for the first input starts after them
        while True:
            message = conn.recv()
            if message is None:
                return
            data, names = message
            _reset_peak()
            result = {}
            for n in names:  # CPU seconds: the machine may be shared, wall time is not ours
                start = time.process_time()
                o = table[n](data, workdir)
                result[n] = (o.kind, o.detail, o.place, time.process_time() - start)
            conn.send((result, _status_kb("VmRSS") / 1024, _status_kb("VmHWM") / 1024))


@dataclass
class Watch:
    """The watchdog's view of one input: CPU used, wall time, and time blocked without progress."""

    kill_s: float
    wall_kill_s: float
    cpu0: float = 0.0
    cpu: float = 0.0
    wall: float = 0.0
    stalled: float = 0.0

    def sample(self, cpu: float, state: str, wall: float) -> str | None:
        """Take a sample (``wall`` seconds since the input was sent); once it is a hang, the verdict:
        ``"cpu: ..."``, ``"blocked: ..."`` or ``"wall: ..."``."""
        # Runnable but starved (R) waits for a core, and D for the disk or a page-in: neither is hung.
        progress = cpu > self.cpu or state in ("R", "D")
        self.stalled = 0.0 if progress else self.stalled + (wall - self.wall)
        self.cpu, self.wall = cpu, wall
        used = cpu - self.cpu0
        if used >= self.kill_s:
            return f"cpu: {used:.1f} CPU s (limit {self.kill_s:g})"
        if self.stalled >= self.kill_s:
            return f"blocked: {self.stalled:.1f} s with no CPU progress ({used:.2f} CPU s)"
        if wall >= self.wall_kill_s:
            return f"wall: {wall:.0f} s (limit {self.wall_kill_s:g}) at {used:.1f} CPU s"
        return None


class Worker:
    """One worker process: the inputs it has run, its RSS, and how its last hang was judged."""

    def __init__(self, memory_mb: int, extra_targets: str | None) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        self.process = ctx.Process(target=worker_main, args=(child, memory_mb, extra_targets), daemon=True)
        self.process.start()
        child.close()
        self.done = 0
        self.baseline: float | None = None
        self.rss: float = 0.0
        self.hang = ""
        """How the last hang was judged (``Watch.sample``'s verdict)."""
        self.ready = False

    def run(
        self, data: bytes, names: tuple[str, ...], kill_s: float, wall_kill_s: float, tick: float = 0.25
    ) -> tuple[Any, float, float, float] | str:
        """The worker's answer, or ``"hang"`` / ``"died"`` (the worker is then gone)."""
        try:
            if not self.ready:  # a worker that cannot import within the wall limit is as good as dead
                if not self.conn.poll(wall_kill_s) or self.conn.recv() != "ready":
                    raise EOFError
                self.ready = True
            pid = self.process.pid
            assert pid is not None
            first = proc_stat(pid)
            watch = Watch(kill_s, wall_kill_s, cpu0=first[0] if first else 0.0)
            watch.cpu = watch.cpu0
            start = time.monotonic()
            self.conn.send((data, names))
            while not self.conn.poll(tick):
                now = proc_stat(pid)
                if now is None:  # gone: the next poll sees EOF
                    continue
                verdict = watch.sample(now[0], now[1], time.monotonic() - start)
                if verdict:
                    self.hang = verdict
                    self.kill()
                    return "hang"
            answer = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.kill()
            return "died"
        self.done += 1
        return answer

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(5)
        self.kill()

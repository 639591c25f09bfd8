"""The data folder's lock: one server at a time on one ``--data-dir``.

:class:`DataDirLock` holds an exclusive ``flock`` on ``<data_dir>/spinr.lock`` for as long as a store is
open (the kernel drops it when the process dies, even by ``kill -9``); a second server on the same
folder is refused naming the PID that holds it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import ClassVar

from codec.errors import SpinrError

LOCK_NAME = "spinr.lock"


class StoreError(SpinrError):
    """The data folder is inconsistent: a file is missing or its checksum does not match."""


class DataDirBusy(StoreError):
    """Another process (a second ``spinr serve``) holds the data folder's lock."""


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/spinr.lock``, which records the holder's PID.

    Re-entrant within one process (``spinr serve`` holds it for the server's lifetime and the store
    the app opens takes it again); any other process is refused with :class:`DataDirBusy`. The lock
    file stays in place: deleting it would let two processes lock two different files.
    """

    _held: ClassVar[dict[str, tuple[int, int]]] = {}  # lock path -> (fd, holders in this process)
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir.resolve() / LOCK_NAME
        self._holding = False

    def acquire(self) -> DataDirLock:
        if self._holding:
            return self
        key = str(self.path)
        with self._guard:
            if key in self._held:
                fd, count = self._held[key]
                self._held[key] = (fd, count + 1)
            else:
                self.data_dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise DataDirBusy(
                        f"data directory {str(self.data_dir)!r} is in use by another spinr server (PID "
                        f"{holder}); stop that server or choose another --data-dir"
                    ) from None
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self._held[key] = (fd, 1)
        self._holding = True
        return self

    def release(self) -> None:
        if not self._holding:
            return
        self._holding = False
        key = str(self.path)
        with self._guard:
            fd, count = self._held[key]
            if count > 1:
                self._held[key] = (fd, count - 1)
                return
            del self._held[key]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

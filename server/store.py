"""Durable state: jobs in SQLite (WAL), files under the data folder written atomically with checksums.

One server at a time: :class:`DataDirLock` holds an exclusive ``flock`` on ``<data_dir>/spinr.lock`` for
as long as a store is open (the kernel drops it when the process dies, even by ``kill -9``), and a
second server on the same folder is refused naming the PID that holds it. A damaged ``spinr.db`` is
a :class:`StoreError` saying what to do, found when the store opens.

A job and its image share one id. Files live in ``<data_dir>/images/<id>/``; each is written to a
temporary name, flushed to disk and renamed into place, and its SHA-256 is stored in the database and
checked on every read, so a reader never sees half a file and a damaged file is an error, not a picture.
Every method takes the store's lock: one connection is shared by the event loop's threads.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from codec.errors import SpinrError
from server.states import JobState, check_transition

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    options TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    stage INTEGER,
    stages INTEGER,
    step INTEGER NOT NULL DEFAULT 0,
    steps INTEGER,
    psnr REAL,
    error TEXT,
    result TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
CREATE TABLE IF NOT EXISTS files (
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (job_id, kind)
);
"""

EXPECTED_COLUMNS = {
    "jobs": {"seq", "id", "name", "state", "options", "width", "height", "progress", "stage", "stages"}
    | {"step", "steps", "psnr", "error", "result", "created", "updated", "started", "finished"},
    "files": {"job_id", "kind", "sha256", "bytes"},
}
FILE_NAMES = {"original": "original.png", "bitstream": "bitstream.spnr"}
RESTART_REASON = "server restarted during training"
STOP_REASON = "server stopped during training"
LOCK_NAME = "spinr.lock"
DB_NAME = "spinr.db"
PROGRESS_FIELDS = ("progress", "stage", "stages", "step", "steps", "psnr")


class StoreError(SpinrError):
    """The data folder is inconsistent: a file is missing or its checksum does not match."""


class QueueFull(SpinrError):
    """Too many jobs are waiting; ``retry_after`` is a suggested wait in seconds."""

    def __init__(self, queued: int, limit: int, retry_after: int) -> None:
        super().__init__(f"{queued} jobs are queued, the limit is {limit}; retry in about {retry_after} s")
        self.retry_after = retry_after


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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iso(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.dir_lock = DataDirLock(self.data_dir).acquire()
        self.images_dir = self.data_dir / "images"
        self.db_path = self.data_dir / DB_NAME
        self._lock = threading.RLock()
        try:
            self.images_dir.mkdir(parents=True, exist_ok=True)
            self._db = self._open()
        except BaseException:
            self.dir_lock.release()
            raise

    def _open(self) -> sqlite3.Connection:
        """Connect, check the file is an intact spinr database, create what is missing."""
        db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            problems = [r[0] for r in db.execute("PRAGMA quick_check(5)").fetchall()]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(problems))
            db.executescript(SCHEMA)
            for table, columns in EXPECTED_COLUMNS.items():
                have = {r["name"] for r in db.execute(f"PRAGMA table_info({table})")}
                if not columns <= have:
                    raise sqlite3.DatabaseError(
                        f"its {table} table lacks column(s) {', '.join(sorted(columns - have))}"
                    )
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StoreError(
                f"the job database {str(self.db_path)!r} is damaged or not spinr's ({exc}); stop the server, "
                f"move {DB_NAME} (with any {DB_NAME}-wal and {DB_NAME}-shm) out of the folder and start again "
                "with an empty job list (files under images/ stay), or restore it from a backup"
            ) from None
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self.dir_lock.release()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- files ----------------------------------------------------------------------------------
    def file_path(self, job_id: str, kind: str) -> Path:
        return self.images_dir / job_id / FILE_NAMES[kind]

    def _write_file(self, db: sqlite3.Connection, job_id: str, kind: str, data: bytes) -> dict[str, Any]:
        atomic_write(self.file_path(job_id, kind), data)
        digest = sha256(data)
        db.execute(
            "INSERT OR REPLACE INTO files (job_id, kind, sha256, bytes) VALUES (?, ?, ?, ?)",
            (job_id, kind, digest, len(data)),
        )
        return {"sha256": digest, "bytes": len(data)}

    def file_info(self, job_id: str, kind: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT sha256, bytes FROM files WHERE job_id = ? AND kind = ?", (job_id, kind)
            ).fetchone()
        return dict(row) if row else None

    def read_file(self, job_id: str, kind: str) -> bytes:
        """The file's bytes after checking them against the stored SHA-256 (StoreError if they differ)."""
        info = self.file_info(job_id, kind)
        if info is None:
            raise StoreError(f"no {kind} file is recorded for image {job_id}")
        path = self.file_path(job_id, kind)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreError(f"{kind} file of image {job_id} cannot be read: {exc.strerror or exc}") from None
        if sha256(data) != info["sha256"]:
            raise StoreError(
                f"{kind} file of image {job_id} is damaged: its SHA-256 does not match the record"
            )
        return data

    # -- jobs -----------------------------------------------------------------------------------
    def create_job(
        self,
        job_id: str,
        name: str,
        options: dict[str, Any],
        width: int,
        height: int,
        original_png: bytes,
        max_queued: int | None = None,
        retry_after: int = 10,
    ) -> dict[str, Any]:
        """Record a queued job and its original image; QueueFull when ``max_queued`` are waiting."""
        now = time.time()
        with self._tx() as db:
            if max_queued is not None:
                queued = db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()[0]
                if queued >= max_queued:
                    raise QueueFull(queued, max_queued, retry_after)
            self._write_file(db, job_id, "original", original_png)
            db.execute(
                "INSERT INTO jobs (id, name, state, options, width, height, steps, created, updated)"
                " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                (job_id, name, json.dumps(options), width, height, options.get("steps"), now, now),
            )
        job = self.get_job(job_id)
        assert job is not None
        return job

    def _row(self, job_id: str) -> sqlite3.Row | None:
        return self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._row(job_id)
        return job_dict(row) if row else None

    def list_jobs(self, limit: int = 1000) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        return [job_dict(r) for r in rows]

    def ids_in_state(self, state: JobState) -> list[str]:
        """Oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE state = ? ORDER BY seq", (state.value,)
            ).fetchall()
        return [r["id"] for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        out = {s.value: 0 for s in JobState}
        out.update({r["state"]: r["n"] for r in rows})
        return out

    def mean_seconds(self, last: int = 20) -> float | None:
        """Mean training time of the latest finished jobs (for ``Retry-After``)."""
        with self._lock:
            row = self._db.execute(
                "SELECT AVG(finished - started) FROM (SELECT finished, started FROM jobs"
                " WHERE state = 'done' AND started IS NOT NULL ORDER BY seq DESC LIMIT ?)",
                (last,),
            ).fetchone()
        return row[0]

    def transition(self, job_id: str, wanted: JobState, **fields: Any) -> dict[str, Any]:
        """Move a job to ``wanted`` (IllegalTransition if its state does not lead there), setting ``fields``."""
        now = time.time()
        with self._tx() as db:
            row = self._row(job_id)
            if row is None:
                raise KeyError(job_id)
            check_transition(job_id, row["state"], wanted)
            values: dict[str, Any] = {"state": wanted.value, "updated": now, **fields}
            if wanted is JobState.RUNNING:
                values["started"] = now
            if wanted.finished:
                values["finished"] = now
            if "result" in values and values["result"] is not None:
                values["result"] = json.dumps(values["result"])
            cols = ", ".join(f"{k} = ?" for k in values)
            db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*values.values(), job_id))
        job = self.get_job(job_id)
        assert job is not None
        return job

    def finish(self, job_id: str, bitstream: bytes, result: dict[str, Any]) -> dict[str, Any]:
        """Running -> done with its bitstream file, in one transaction (the file lands before the commit)."""
        now = time.time()
        with self._tx() as db:
            row = self._row(job_id)
            if row is None:
                raise KeyError(job_id)
            check_transition(job_id, row["state"], JobState.DONE)
            info = self._write_file(db, job_id, "bitstream", bitstream)
            result = {**result, "bytes": info["bytes"], "sha256": info["sha256"]}
            db.execute(
                "UPDATE jobs SET state = 'done', progress = 1, result = ?, updated = ?, finished = ? WHERE id = ?",
                (json.dumps(result), now, now, job_id),
            )
        job = self.get_job(job_id)
        assert job is not None
        return job

    def update_progress(self, job_id: str, **fields: Any) -> None:
        """Progress of a running job; ignored once the job has left the running state."""
        values = {k: v for k, v in fields.items() if k in PROGRESS_FIELDS}
        if not values:
            return
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._lock:
            self._db.execute(
                f"UPDATE jobs SET {cols}, updated = ? WHERE id = ? AND state = 'running'",
                (*values.values(), time.time(), job_id),
            )

    def recover(self) -> dict[str, list[str]]:
        """After a restart: jobs caught running are failed (they are not re-run: a job that brought the
        server down would otherwise do it again); queued jobs stay queued and run again in order;
        stray temporary files of interrupted writes are removed."""
        failed = self.ids_in_state(JobState.RUNNING)
        for job_id in failed:
            self.transition(job_id, JobState.FAILED, error=RESTART_REASON)
        for tmp in self.images_dir.glob("*/.*.tmp*"):
            tmp.unlink(missing_ok=True)
        return {"failed": failed, "requeued": self.ids_in_state(JobState.QUEUED)}


def job_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A job as the API shows it."""
    return {
        "id": row["id"],
        "name": row["name"],
        "state": row["state"],
        "progress": round(row["progress"], 4),
        "stage": row["stage"],
        "stages": row["stages"],
        "step": row["step"],
        "steps": row["steps"],
        "psnr": None if row["psnr"] is None else round(row["psnr"], 3),
        "error": row["error"],
        "options": json.loads(row["options"]),
        "image": {"width": row["width"], "height": row["height"]},
        "created": iso(row["created"]),
        "updated": iso(row["updated"]),
        "result": json.loads(row["result"]) if row["result"] else None,
    }

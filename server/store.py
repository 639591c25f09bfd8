"""Durable state: jobs in SQLite (WAL), files under the data folder written atomically with checksums.

One server at a time: :class:`server.datadir.DataDirLock` holds an exclusive ``flock`` on ``<data_dir>/spinr.lock`` for
as long as a store is open (the kernel drops it when the process dies, even by ``kill -9``), and a
second server on the same folder is refused naming the PID that holds it. A damaged ``spinr.db`` is
a :class:`StoreError` saying what to do, found when the store opens.

A job and its image share one id. Files live in ``<data_dir>/images/<id>/``; each is written to a
temporary name, flushed to disk and renamed into place, and its SHA-256 is stored in the database and
checked on every read, so a reader never sees half a file and a damaged file is an error, not a picture.
Every method takes the store's lock: one connection is shared by the event loop's threads.
"""

from __future__ import annotations

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
from typing import Any

from codec.errors import SpinrError
from server.datadir import LOCK_NAME, DataDirBusy, DataDirLock, StoreError
from server.states import JobState, check_transition

__all__ = ["LOCK_NAME", "DataDirBusy", "DataDirLock", "QueueFull", "Store", "StoreError"]

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
    finished REAL,
    plan TEXT,
    estimated_seconds REAL,
    phase TEXT
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
ADDED_COLUMNS = {"plan": "TEXT", "estimated_seconds": "REAL", "phase": "TEXT"}
"""Columns added since the first schema: a database without them gets them when opened."""
FILE_NAMES = {"original": "original.png", "bitstream": "bitstream.spnr"}
RESTART_REASON = "server restarted during training"
STOP_REASON = "server stopped during training"
DB_NAME = "spinr.db"
PROGRESS_FIELDS = ("progress", "stage", "stages", "step", "steps", "psnr", "estimated_seconds", "phase")


class QueueFull(SpinrError):
    """Too many jobs are waiting; ``retry_after`` is a suggested wait in seconds."""

    def __init__(self, queued: int, limit: int, retry_after: int) -> None:
        super().__init__(f"{queued} jobs are queued, the limit is {limit}; retry in about {retry_after} s")
        self.retry_after = retry_after


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
                if table == "jobs":
                    for name, kind in ADDED_COLUMNS.items():
                        if name not in have:
                            db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
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

    def read_file(self, job_id: str, kind: str, info: dict[str, Any] | None = None) -> bytes:
        """The file's bytes after checking them against the stored SHA-256 (StoreError if they differ).
        ``info``: what :meth:`file_info` just returned, when the caller has it (one query, not two)."""
        info = info or self.file_info(job_id, kind)
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
        plan: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record a queued job and its original image; QueueFull when ``max_queued`` are waiting."""
        now = time.time()
        plan_text = None if plan is None else json.dumps(plan)
        with self._tx() as db:
            if max_queued is not None:
                queued = db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()[0]
                if queued >= max_queued:
                    raise QueueFull(queued, max_queued, retry_after)
            self._write_file(db, job_id, "original", original_png)
            db.execute(
                "INSERT INTO jobs (id, name, state, options, width, height, steps, created, updated, plan)"
                " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                (job_id, name, json.dumps(options), width, height, options.get("steps"), now, now, plan_text),
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
        "phase": (row["phase"] or "training") if row["state"] == "running" else None,
        "error": row["error"],
        "options": json.loads(row["options"]),
        "image": {"width": row["width"], "height": row["height"]},
        "created": iso(row["created"]),
        "updated": iso(row["updated"]),
        "result": json.loads(row["result"]) if row["result"] else None,
        "plan": _plan(row),
    }


def _plan(row: sqlite3.Row) -> dict[str, Any] | None:
    """The job's plan (server/plan.py) with the worker's training-time estimate (None until it starts)."""
    if not row["plan"]:
        return None
    est = row["estimated_seconds"]
    return {**json.loads(row["plan"]), "estimated_seconds": None if est is None else round(est, 1)}

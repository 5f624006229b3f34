"""The output folder of a batch: its names, the SQLite manifest, the lock, the shards.

``OUT/manifest.sqlite`` (:class:`Manifest`, written by the client process only) records
the input files and one row per (file, entry range) task (:class:`TaskRecord`);
``OUT/.poetml-batch.lock`` (:func:`locked`) keeps two runs apart; ``OUT/shards/`` holds one
HDF5 file per task (:func:`shard_name`) and ``OUT/dataset.h5`` the virtual dataset.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import BatchError

__all__ = [
    "DATASET_NAME",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "SHARD_DIR",
    "BatchError",
    "Manifest",
    "TaskRecord",
    "locked",
    "shard_name",
]

#: File name of the manifest inside the output folder.
MANIFEST_NAME = "manifest.sqlite"
#: File name of the virtual dataset presenting all shards.
DATASET_NAME = "dataset.h5"
#: Folder (inside the output folder) holding the shards.
SHARD_DIR = "shards"
#: Lock file preventing two runs on the same output folder at once.
LOCK_NAME = ".poetml-batch.lock"

MANIFEST_VERSION = 1


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    id INTEGER PRIMARY KEY,
    path TEXT UNIQUE NOT NULL,
    n_entries INTEGER,
    nbytes INTEGER,
    mtime REAL,
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    updated TEXT
);
CREATE TABLE IF NOT EXISTS tasks (
    source_id INTEGER NOT NULL REFERENCES sources(id),
    entry_start INTEGER NOT NULL,
    entry_stop INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    n_events INTEGER,
    shard TEXT,
    sha256 TEXT,
    nbytes INTEGER,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    seconds REAL,
    cpu_seconds REAL,
    peak_rss INTEGER,
    worker TEXT,
    updated TEXT,
    PRIMARY KEY (source_id, entry_start)
);
"""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class TaskRecord:
    """One row of the manifest: a (file, entry range) task and its outcome."""

    source_id: int
    path: str
    entry_start: int
    entry_stop: int
    status: str
    n_events: int | None = None
    shard: str | None = None
    sha256: str | None = None
    nbytes: int | None = None
    error: str | None = None
    attempts: int = 0
    seconds: float | None = None
    cpu_seconds: float | None = None
    peak_rss: int | None = None
    worker: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path} entries [{self.entry_start}, {self.entry_stop})"


class Manifest:
    """SQLite manifest of one output folder.  Only the client process writes it."""

    def __init__(self, out_dir: Path, *, create: bool) -> None:
        self.path = out_dir / MANIFEST_NAME
        if not create and not self.path.exists():
            raise BatchError(
                f"{out_dir} has no batch manifest ({MANIFEST_NAME}); "
                "is it the output folder of 'poetml batch'?"
            )
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise BatchError(f"cannot open the manifest {self.path}: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    # meta
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    # sources
    def ensure_sources(self, paths: Sequence[str]) -> dict[str, int]:
        # ids are 0, 1, 2 ... in order of first appearance: dataset.h5's ``source`` indexes
        # its ``inputs`` list with them
        for p in paths:
            self.db.execute(
                "INSERT OR IGNORE INTO sources (id, path) "
                "VALUES ((SELECT COALESCE(MAX(id) + 1, 0) FROM sources), ?)",
                (p,),
            )
        self.db.commit()
        rows = self.db.execute("SELECT path, id FROM sources").fetchall()
        ids = dict(rows)
        return {p: ids[p] for p in paths}

    def source_rows(self) -> list[sqlite3.Row]:
        self.db.row_factory = sqlite3.Row
        try:
            return self.db.execute("SELECT * FROM sources ORDER BY id").fetchall()
        finally:
            self.db.row_factory = None

    def source_info(self, source_id: int) -> tuple[int | None, int | None, float | None]:
        row = self.db.execute(
            "SELECT n_entries, nbytes, mtime FROM sources WHERE id = ?", (source_id,)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else (None, None, None)

    def set_source(
        self,
        source_id: int,
        *,
        status: str,
        n_entries: int | None = None,
        nbytes: int | None = None,
        mtime: float | None = None,
        error: str | None = None,
    ) -> None:
        self.db.execute(
            "UPDATE sources SET status = ?, n_entries = COALESCE(?, n_entries), "
            "nbytes = COALESCE(?, nbytes), mtime = COALESCE(?, mtime), error = ?, updated = ? "
            "WHERE id = ?",
            (status, n_entries, nbytes, mtime, error, _now(), source_id),
        )
        self.db.commit()

    # tasks
    def tasks(self, source_id: int | None = None) -> list[TaskRecord]:
        sql = (
            "SELECT t.source_id, s.path, t.entry_start, t.entry_stop, t.status, t.n_events, "
            "t.shard, t.sha256, t.nbytes, t.error, t.attempts, t.seconds, t.cpu_seconds, "
            "t.peak_rss, t.worker "
            "FROM tasks t JOIN sources s ON s.id = t.source_id"
        )
        args: tuple[Any, ...] = ()
        if source_id is not None:
            sql += " WHERE t.source_id = ?"
            args = (source_id,)
        sql += " ORDER BY t.source_id, t.entry_start"
        return [TaskRecord(*row) for row in self.db.execute(sql, args).fetchall()]

    def add_tasks(self, source_id: int, ranges: Sequence[tuple[int, int]]) -> None:
        self.db.executemany(
            "INSERT OR IGNORE INTO tasks (source_id, entry_start, entry_stop, updated) "
            "VALUES (?, ?, ?, ?)",
            [(source_id, lo, hi, _now()) for lo, hi in ranges],
        )
        self.db.commit()

    def drop_tasks(self, source_id: int) -> list[TaskRecord]:
        old = self.tasks(source_id)
        self.db.execute("DELETE FROM tasks WHERE source_id = ?", (source_id,))
        self.db.commit()
        return old

    def set_task(self, source_id: int, entry_start: int, **values: Any) -> None:
        values["updated"] = _now()
        cols = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(
            f"UPDATE tasks SET {cols} WHERE source_id = ? AND entry_start = ?",
            (*values.values(), source_id, entry_start),
        )
        self.db.commit()

    def bump_attempts(self, source_id: int, entry_start: int) -> None:
        self.db.execute(
            "UPDATE tasks SET attempts = attempts + 1 WHERE source_id = ? AND entry_start = ?",
            (source_id, entry_start),
        )


@contextlib.contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` so two runs never write it at once."""
    import fcntl

    fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchError(
                f"{out_dir} is being written by another 'poetml batch' run "
                f"(lock {out_dir / LOCK_NAME} is held)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


#: Name of a finished shard; anything else in the shard folder is a leftover temporary.
SHARD_RE = re.compile(r"src\d{6,}_\d{12,}-\d{12,}\.h5")


def shard_name(source_id: int, entry_start: int, entry_stop: int) -> str:
    """Relative path of the shard of one task inside the output folder."""
    return f"{SHARD_DIR}/src{source_id:06d}_{entry_start:012d}-{entry_stop:012d}.h5"


def clean_temporaries(out_dir: Path) -> list[Path]:
    """Remove files left in the shard folder by interrupted tasks (never final shards)."""
    removed: list[Path] = []
    shard_dir = out_dir / SHARD_DIR
    if not shard_dir.is_dir():
        return removed
    for p in shard_dir.iterdir():
        if p.is_file() and not SHARD_RE.fullmatch(p.name):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def wipe(out_dir: Path) -> None:
    """Delete what an earlier batch run wrote into ``out_dir`` (for ``overwrite``)."""
    shard_dir = out_dir / SHARD_DIR
    if shard_dir.is_dir():
        for p in shard_dir.iterdir():
            if p.is_file():
                p.unlink()
    for name in (MANIFEST_NAME, DATASET_NAME):
        with contextlib.suppress(FileNotFoundError):
            (out_dir / name).unlink()

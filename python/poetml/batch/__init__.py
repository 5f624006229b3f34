"""Batch processing on Dask: many ntuples -> sharded HDF5 datasets, resumable.

The work is split into *tasks*, one per (file, entry range) of ``step_size`` entries.
Each task runs on a ``dask.distributed`` worker: it reads its entries
(:func:`poetml.reading.read`), runs the C++ kernel (:func:`poetml.rasterize` or
:func:`poetml.build_features`) with ``n_threads`` threads (1 by default, so that workers do
not oversubscribe the cores) and writes one HDF5 shard through
:class:`poetml.datasets.hdf5.ShardWriter`, which writes under a temporary name and renames
on success: a shard under its final name is always complete.

The *client* (the process that calls :func:`run`) is the only writer of the manifest,
``OUT/manifest.sqlite``; it records each task as its future completes: file, entry range,
event count, shard path, SHA-256 of the shard, status and error.  Re-running the same
command skips tasks whose shard is still there with the recorded checksum and redoes
failed, pending or missing ones; a different spec, kind, input list, step size, layout or
label is refused unless ``overwrite=True``.  A file that cannot be opened or read fails
only its own tasks; a worker that dies mid-task has the task rescheduled by Dask (up to
``retries`` times), and a task that raises is retried ``retries`` times.

At the end :func:`write_virtual_dataset` writes ``OUT/dataset.h5``: HDF5 virtual datasets
that present all finished shards as one array each (``images`` or ``features``,
``event_index``, ``labels``) without copying any data, a small ``source`` column (the
batch-wide file id of each event) and a ``sources`` table (file id -> path).  It reads like
any other poetml dataset (:func:`poetml.datasets.hdf5.load`).

Input paths may be local files, glob patterns or ``root://`` URLs; the latter need the
``xrootd`` extra (``fsspec-xrootd``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import glob
import hashlib
import json
import logging
import os
import re
import resource
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..exceptions import ConfigError, PoetmlError, ReadError

__all__ = [
    "KINDS",
    "MANIFEST_NAME",
    "BatchError",
    "BatchResult",
    "Status",
    "TaskRecord",
    "expand_inputs",
    "plan_ranges",
    "run",
    "spec_fingerprint",
    "status",
    "write_virtual_dataset",
]

#: What a batch can produce, and the dataset name of its main array.
KINDS = ("images", "features")
#: File name of the manifest inside the output folder.
MANIFEST_NAME = "manifest.sqlite"
#: File name of the virtual dataset presenting all shards.
DATASET_NAME = "dataset.h5"
#: Folder (inside the output folder) holding the shards.
SHARD_DIR = "shards"
#: Lock file preventing two runs on the same output folder at once.
LOCK_NAME = ".poetml-batch.lock"
#: Events per kernel call and per shard append inside one task: bounds the output buffer
#: of a task whatever the step size.
KERNEL_CHUNK = 8192

_MANIFEST_VERSION = 1


class BatchError(PoetmlError):
    """A batch run cannot start or continue (output folder in use, spec changed ...)."""


# --------------------------------------------------------------------------------------
# inputs, plan, fingerprint
# --------------------------------------------------------------------------------------


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _require_xrootd(path: str) -> None:
    from .._optional import require

    require("fsspec_xrootd", f"reading remote input {path}")


def expand_inputs(patterns: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Input patterns -> sorted, de-duplicated list of files.

    Local paths become absolute; glob patterns (``*``, ``?``, ``[``) are expanded and a
    pattern that matches nothing is an error; a directory is an error (give a pattern such
    as ``dir/*.root``).  ``root://`` URLs are kept as they are, after checking that the
    ``xrootd`` extra is installed (:class:`~poetml.exceptions.MissingDependencyError`
    otherwise).
    """
    out: dict[str, None] = {}
    for pattern in patterns:
        text = os.fspath(pattern)
        text = text.removeprefix("file://")
        if _is_url(text):
            if text.startswith(("root://", "xroot://")):
                _require_xrootd(text)
            out[text] = None
            continue
        if glob.has_magic(text):
            matches = sorted(glob.glob(text))
            if not matches:
                raise ReadError(f"input pattern {text!r} matches no file")
            files = [m for m in matches if os.path.isfile(m)]
            if not files:
                raise ReadError(f"input pattern {text!r} matches only directories: {matches[:5]}")
        else:
            if os.path.isdir(text):
                raise ReadError(
                    f"input {text!r} is a directory; give files or a pattern such "
                    f"as '{os.path.join(text, '*.root')}'"
                )
            if not os.path.exists(text):
                raise ReadError(f"input file {text!r} does not exist")
            files = [text]
        for f in files:
            out[os.path.abspath(f)] = None
    if not out:
        raise ReadError("no input files given")
    return sorted(out)


def plan_ranges(n_entries: int, step_size: int) -> list[tuple[int, int]]:
    """Entry ranges ``[start, stop)`` of at most ``step_size`` entries covering a file."""
    if step_size < 1:
        raise ConfigError(f"step_size must be a positive number of entries, got {step_size}")
    if n_entries < 0:
        raise ValueError(f"n_entries must be >= 0, got {n_entries}")
    return [(lo, min(lo + step_size, n_entries)) for lo in range(0, n_entries, step_size)]


def _spec_mapping(spec: Any) -> Any:
    from ..config import to_mapping

    return to_mapping(spec)


def spec_fingerprint(
    kind: str,
    spec: Any,
    inputs: Sequence[str],
    *,
    step_size: int,
    layout: str = "auto",
    label: int | None = None,
) -> dict[str, Any]:
    """Everything that decides the content of a batch output, as JSON-ready data.

    Two runs with equal fingerprints produce the same shards, so a re-run may reuse the
    shards of an earlier one.  ``hash`` is the SHA-256 of the canonical JSON of the rest.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    body = {
        "kind": kind,
        "spec": _spec_mapping(spec),
        "inputs": list(inputs),
        "step_size": int(step_size),
        "layout": layout,
        "label": label,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {**body, "hash": hashlib.sha256(text.encode()).hexdigest()}


def _fingerprint_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    out = []
    for key in ("kind", "step_size", "layout", "label"):
        if old.get(key) != new.get(key):
            out.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    if old.get("spec") != new.get("spec"):
        out.extend(f"spec {d}" for d in _dict_diff(old.get("spec"), new.get("spec")))
    if old.get("inputs") != new.get("inputs"):
        o, n = set(old.get("inputs") or ()), set(new.get("inputs") or ())
        added, removed = sorted(n - o), sorted(o - n)
        what = []
        if added:
            what.append(f"{len(added)} added (first: {added[0]})")
        if removed:
            what.append(f"{len(removed)} removed (first: {removed[0]})")
        out.append("inputs " + (", ".join(what) or "reordered"))
    return out


def _dict_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out.extend(_dict_diff(a.get(k), b.get(k), f"{prefix}{k}."))
        return out
    if a != b:
        return [f"{prefix.rstrip('.')}: {a!r} -> {b!r}"]
    return []


# --------------------------------------------------------------------------------------
# manifest (written by the client only)
# --------------------------------------------------------------------------------------

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


class _Manifest:
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
def _locked(out_dir: Path) -> Iterator[None]:
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


# --------------------------------------------------------------------------------------
# what runs on the workers
# --------------------------------------------------------------------------------------


def _sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes.

    On Linux the high-water mark of the process's own memory (``VmHWM``): ``ru_maxrss``
    would also count the parent a Dask worker was forked from before its exec.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _stat(path: str) -> tuple[int | None, float | None]:
    if _is_url(path):
        return None, None
    st = os.stat(path)
    return st.st_size, st.st_mtime


def count_entries(path: str, layout: str = "auto") -> dict[str, Any]:
    """Task: number of entries of one input file (plus its size and mtime when local)."""
    from .. import reading

    if _is_url(path) and path.startswith(("root://", "xroot://")):
        _require_xrootd(path)
    nbytes, mtime = _stat(path)
    n = reading.num_entries(path, layout=layout)
    return {"n_entries": int(n), "nbytes": nbytes, "mtime": mtime}


def _kernel(
    kind: str, batch: Any, spec: Any, n_threads: int | None, out: Any = None
) -> tuple[Any, list[str] | None]:
    if kind == "images":
        from ..images import rasterize

        return rasterize(batch, spec, n_threads=n_threads, out=out), None
    from ..features import build_features

    data, names = build_features(batch, spec, n_threads=n_threads, out=out)
    return data, list(names)


def process_task(
    path: str,
    entry_start: int,
    entry_stop: int,
    *,
    source_id: int,
    kind: str,
    spec: Any,
    shard_path: str,
    layout: str = "auto",
    n_threads: int | None = 1,
    label: int | None = None,
    compression: str = "gzip",
    kernel_chunk: int = KERNEL_CHUNK,
) -> dict[str, Any]:
    """Task: read entries ``[entry_start, entry_stop)`` of ``path``, run the kernel, write
    one shard at ``shard_path`` (through a temporary name) and return what the manifest
    records: event count, SHA-256 and size of the shard, time, peak RSS of the worker.

    Memory: the events of the range are read at once (proportional to the step size); the
    kernel runs and the shard grows ``kernel_chunk`` events at a time.

    The shard is a self-contained poetml dataset: its ``inputs`` attribute is ``[path]`` and
    its ``source`` column 0; the batch-wide file id is the attribute ``batch_source_id``.
    """
    try:
        return _process_task(
            path,
            entry_start,
            entry_stop,
            source_id=source_id,
            kind=kind,
            spec=spec,
            shard_path=shard_path,
            layout=layout,
            n_threads=n_threads,
            label=label,
            compression=compression,
            kernel_chunk=kernel_chunk,
        )
    finally:
        # uproot's file and awkward objects form reference cycles that only the cyclic
        # collector frees, and it runs by allocation counts, not bytes: without this a
        # worker's memory grows task after task (measured: +20 MB per 100k-event task)
        gc.collect()


def _process_task(
    path: str,
    entry_start: int,
    entry_stop: int,
    *,
    source_id: int,
    kind: str,
    spec: Any,
    shard_path: str,
    layout: str,
    n_threads: int | None,
    label: int | None,
    compression: str,
    kernel_chunk: int,
) -> dict[str, Any]:
    import numpy as np

    from .. import reading
    from ..datasets import hdf5

    t0, c0 = time.perf_counter(), time.process_time()
    batch = reading.read(path, entry_start=entry_start, entry_stop=entry_stop, layout=layout)
    want = entry_stop - entry_start
    if batch.n_events != want:
        raise ReadError(
            f"{path}: asked for entries [{entry_start}, {entry_stop}) ({want} events), "
            f"read {batch.n_events}; was the file truncated or rewritten?"
        )
    final = Path(shard_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # a private name first: should two attempts of this task ever run at once (a worker
    # presumed dead but still running), each writes its own file and the last complete
    # one is renamed onto the final name
    part = final.with_name(f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")
    writer = None
    n_written = 0
    buffer = None  # output of the last full kernel chunk, reused (the writer copies it)
    with contextlib.ExitStack() as stack:
        for lo in range(0, want, kernel_chunk):
            sub = batch.slice(lo, min(lo + kernel_chunk, want))
            reuse = buffer is not None and len(buffer) == sub.n_events
            data, names = _kernel(kind, sub, spec, n_threads, buffer if reuse else None)
            if sub.n_events == kernel_chunk:
                buffer = data
            if writer is None:
                writer = stack.enter_context(
                    hdf5.ShardWriter(
                        part,
                        kind,
                        item_shape=tuple(data.shape[1:]),
                        attrs={
                            "spec": spec,
                            "entry_start": int(entry_start),
                            "entry_stop": int(entry_stop),
                            "batch_source_id": int(source_id),
                        },
                        feature_names=names,
                        channels=tuple(spec.channels) if kind == "images" else None,
                        inputs=(path,),
                        compression=compression,
                        # deflate on as many threads as the kernel uses: a worker is one core
                        threads=n_threads or 1,
                    )
                )
            labels = None if label is None else np.full(len(data), label, dtype=np.int32)
            writer.append(data, sub.event_index, 0, labels=labels)
            n_written += len(data)
    if writer is None:
        raise ReadError(f"{path}: entries [{entry_start}, {entry_stop}) hold no events")
    try:
        digest, nbytes = _sha256(part), os.path.getsize(part)
        os.replace(part, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise
    return {
        "n_events": n_written,
        "sha256": digest,
        "nbytes": nbytes,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "peak_rss": _peak_rss(),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


# --------------------------------------------------------------------------------------
# the client side
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    """Outcome of :func:`run`."""

    out_dir: Path
    kind: str
    n_tasks: int
    n_done: int
    n_failed: int
    n_pending: int
    n_skipped: int
    n_events: int
    failures: tuple[TaskRecord, ...]
    failed_sources: tuple[tuple[str, str], ...]
    dataset: Path | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.n_failed == 0 and self.n_pending == 0 and not self.failed_sources

    def summary(self) -> str:
        lines = [
            (
                f"{self.out_dir}: {self.kind}, {self.n_tasks} tasks: {self.n_done} done "
                f"({self.n_skipped} already done before this run), {self.n_failed} failed, "
                f"{self.n_pending} pending; {self.n_events} events in {self.seconds:.1f} s"
            )
        ]
        for path, err in self.failed_sources:
            lines.append(f"  FAILED {path} (entries not counted): {err}")
        for t in self.failures:
            lines.append(f"  FAILED {t.where}: {t.error}")
        if self.dataset is not None:
            state = "complete" if self.ok else "INCOMPLETE: covers only the finished tasks"
            lines.append(f"dataset: {self.dataset} ({self.n_events} events, {state})")
        return "\n".join(lines)


#: Name of a finished shard; anything else in the shard folder is a leftover temporary.
_SHARD_RE = re.compile(r"src\d{6,}_\d{12,}-\d{12,}\.h5")


def shard_name(source_id: int, entry_start: int, entry_stop: int) -> str:
    """Relative path of the shard of one task inside the output folder."""
    return f"{SHARD_DIR}/src{source_id:06d}_{entry_start:012d}-{entry_stop:012d}.h5"


def _error_text(exc: BaseException) -> str:
    msg = str(exc).strip().replace("\n", " ")
    if len(msg) > 2000:
        msg = msg[:2000] + " ..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _clean_temporaries(out_dir: Path) -> list[Path]:
    """Remove files left in the shard folder by interrupted tasks (never final shards)."""
    removed = []
    shard_dir = out_dir / SHARD_DIR
    if not shard_dir.is_dir():
        return removed
    for p in shard_dir.iterdir():
        if p.is_file() and not _SHARD_RE.fullmatch(p.name):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def _wipe(out_dir: Path) -> None:
    """Delete what an earlier batch run wrote into ``out_dir`` (for ``overwrite``)."""
    shard_dir = out_dir / SHARD_DIR
    if shard_dir.is_dir():
        for p in shard_dir.iterdir():
            if p.is_file():
                p.unlink()
    for name in (MANIFEST_NAME, DATASET_NAME):
        with contextlib.suppress(FileNotFoundError):
            (out_dir / name).unlink()


@contextlib.contextmanager
def _dask_client(
    client: Any,
    scheduler: str | None,
    workers: int | None,
    threads_per_worker: int,
    retries: int,
    memory_limit: str | None,
) -> Iterator[Any]:
    from .._optional import require

    distributed = require("distributed", "batch processing")
    if client is not None:
        yield client
        return
    if scheduler:
        with distributed.Client(scheduler, set_as_default=False) as c:
            yield c
        return
    import dask

    n = workers or max(1, (os.cpu_count() or 1) // max(1, threads_per_worker))
    # a worker that dies while running a task makes the scheduler resubmit it elsewhere,
    # up to allowed-failures times before giving up with KilledWorker
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": retries}),
        distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",  # any free port (a busy 8787 only warns)
            memory_limit=memory_limit or "auto",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        yield c


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="task", dynamic_ncols=True)


def run(
    inputs: Sequence[str | os.PathLike[str]] | str,
    out_dir: str | os.PathLike[str],
    kind: str,
    spec: Any = None,
    *,
    step_size: int = 100_000,
    layout: str = "auto",
    label: int | None = None,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    n_threads: int | None = 1,
    retries: int = 2,
    memory_limit: str | None = None,
    compression: str = "gzip",
    overwrite: bool = False,
    verify: bool = True,
    progress: bool = True,
) -> BatchResult:
    """Process ``inputs`` into shards in ``out_dir`` on Dask and write ``out_dir/dataset.h5``.

    inputs
        files, glob patterns or ``root://`` URLs (see :func:`expand_inputs`).
    kind, spec
        ``"images"`` with an :class:`~poetml.images.ImageSpec` or ``"features"`` with a
        :class:`~poetml.features.FeatureSpec` (``None``: the default spec).
    step_size
        entries per task, hence per shard; it bounds the memory of a task.
    label
        when given, every event gets this int32 label.
    client, scheduler, workers
        an existing ``distributed.Client``; else the address of a running scheduler; else a
        new LocalCluster of ``workers`` processes (default: one per core) with
        ``threads_per_worker`` threads each.
    n_threads
        threads of each kernel call (1: one per worker thread, no oversubscription).
    retries
        how many times a task that raises, or whose worker dies, is tried again.
    compression
        of the shards: ``gzip`` (default, smallest), ``lzf`` (about twice as fast to write,
        about 4 times bigger for sparse images) or ``none``.  It does not change the
        content, so it may differ between runs into the same folder.
    overwrite
        start afresh when ``out_dir`` holds the output of a different spec/inputs.
    verify
        on a re-run, recompute the SHA-256 of finished shards before trusting them
        (otherwise only their existence and size are checked).

    Returns a :class:`BatchResult`; failed tasks do not raise, they are recorded in the
    manifest and listed in the result.  KeyboardInterrupt cancels the remaining tasks and
    propagates; finished tasks stay recorded and no shard is left half-written.
    """
    t0 = time.perf_counter()
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    if spec is None:
        from ..features import FeatureSpec
        from ..images import ImageSpec

        spec = {"images": ImageSpec, "features": FeatureSpec}.get(kind, ImageSpec)()
    paths = expand_inputs(inputs)
    fp = spec_fingerprint(kind, spec, paths, step_size=step_size, layout=layout, label=label)
    if retries < 0:
        raise ConfigError(f"retries must be >= 0, got {retries}")
    if compression not in ("gzip", "lzf", "none"):
        raise ConfigError(f"compression {compression!r} is not one of gzip, lzf, none")
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        return _run_locked(
            paths,
            out,
            kind,
            spec,
            fp,
            t0,
            step_size=step_size,
            layout=layout,
            label=label,
            client=client,
            scheduler=scheduler,
            workers=workers,
            threads_per_worker=threads_per_worker,
            n_threads=n_threads,
            retries=retries,
            memory_limit=memory_limit,
            compression=compression,
            overwrite=overwrite,
            verify=verify,
            progress=progress,
        )


def _run_locked(
    paths: list[str],
    out: Path,
    kind: str,
    spec: Any,
    fp: dict[str, Any],
    t0: float,
    *,
    step_size: int,
    layout: str,
    label: int | None,
    client: Any,
    scheduler: str | None,
    workers: int | None,
    threads_per_worker: int,
    n_threads: int | None,
    retries: int,
    memory_limit: str | None,
    compression: str,
    overwrite: bool,
    verify: bool,
    progress: bool,
) -> BatchResult:
    man = _Manifest(out, create=True)
    try:
        old = man.get_meta("fingerprint")
        if old is not None and old.get("hash") != fp["hash"]:
            if not overwrite:
                diff = "; ".join(_fingerprint_diff(old, fp)) or "hash differs"
                raise BatchError(
                    f"{out} holds a batch made with different settings ({diff}); refusing to "
                    "mix them. Use --overwrite (overwrite=True) to start afresh, or another "
                    "output folder."
                )
            man.close()
            _wipe(out)
            man = _Manifest(out, create=True)
        man.set_meta("fingerprint", fp)
        man.set_meta("manifest_version", _MANIFEST_VERSION)
        man.set_meta("poetml_version", __version__)
        man.db.commit()
        _clean_temporaries(out)
        ids = man.ensure_sources(paths)

        with _dask_client(
            client, scheduler, workers, threads_per_worker, retries, memory_limit
        ) as dask_client:
            n_skipped = _execute(
                dask_client,
                man,
                out,
                paths,
                ids,
                kind,
                spec,
                fp,
                step_size=step_size,
                layout=layout,
                label=label,
                n_threads=n_threads,
                retries=retries,
                compression=compression,
                verify=verify,
                progress=progress,
            )
        _clean_temporaries(out)
        tasks = man.tasks()
        done = [t for t in tasks if t.status == "done"]
        failed = [t for t in tasks if t.status == "failed"]
        pending = [t for t in tasks if t.status not in ("done", "failed")]
        bad_sources = tuple(
            (r["path"], r["error"] or "") for r in man.source_rows() if r["status"] == "failed"
        )
        dataset = write_virtual_dataset(out) if done else None
        return BatchResult(
            out_dir=out,
            kind=kind,
            n_tasks=len(tasks),
            n_done=len(done),
            n_failed=len(failed),
            n_pending=len(pending),
            n_skipped=n_skipped,
            n_events=sum(t.n_events or 0 for t in done),
            failures=tuple(failed),
            failed_sources=bad_sources,
            dataset=dataset,
            seconds=time.perf_counter() - t0,
        )
    finally:
        man.close()


def _shard_ok(out: Path, t: TaskRecord, verify: bool) -> bool:
    if t.status != "done" or not t.shard:
        return False
    p = out / t.shard
    try:
        if p.stat().st_size != t.nbytes:
            return False
    except OSError:
        return False
    return not verify or _sha256(p) == t.sha256


def _execute(
    dask_client: Any,
    man: _Manifest,
    out: Path,
    paths: list[str],
    ids: dict[str, int],
    kind: str,
    spec: Any,
    fp: dict[str, Any],
    *,
    step_size: int,
    layout: str,
    label: int | None,
    n_threads: int | None,
    retries: int,
    compression: str,
    verify: bool,
    progress: bool,
) -> int:
    """Count entries, plan, submit and record; returns how many tasks were already done."""
    from distributed import as_completed

    # keys unique to this run: a scheduler never hands back a result kept from another run
    token = f"{fp['hash'][:10]}-{uuid.uuid4().hex[:8]}"
    # future -> ("count", source_id) | ("task", (source_id, entry_start, shard))
    pending: dict[Any, tuple[str, Any]] = {}
    futures = []
    for path in paths:
        sid = ids[path]
        f = dask_client.submit(
            count_entries,
            path,
            layout,
            key=f"poetml-count-{token}-{sid}",
            retries=retries,
            pure=False,
        )
        pending[f] = ("count", sid)
        futures.append(f)
    path_of = {i: p for p, i in ids.items()}
    bar = _progress(0, progress, f"poetml batch {kind}")
    n_skipped = 0
    queue = as_completed(futures, loop=dask_client.loop)
    try:
        for future in queue:
            what, ident = pending.pop(future)
            if what == "count":
                sid = ident
                path = path_of[sid]
                if future.status != "finished":
                    man.set_source(sid, status="failed", error=_error_text(_exception(future)))
                    continue
                info = future.result()
                n_old, size_old, mtime_old = man.source_info(sid)
                if n_old is not None and (
                    n_old != info["n_entries"]
                    or (
                        info["nbytes"] is not None
                        and (size_old, mtime_old) != (info["nbytes"], info["mtime"])
                    )
                ):
                    # the file changed since its shards were made: they are stale
                    for t in man.drop_tasks(sid):
                        if t.shard:
                            with contextlib.suppress(FileNotFoundError):
                                (out / t.shard).unlink()
                man.set_source(sid, status="counted", error=None, **info)
                ranges = plan_ranges(info["n_entries"], step_size)
                man.add_tasks(sid, ranges)
                todo = []
                for t in man.tasks(sid):
                    if _shard_ok(out, t, verify):
                        n_skipped += 1
                        continue
                    if t.status == "done":
                        man.set_task(
                            sid,
                            t.entry_start,
                            status="pending",
                            error="shard missing or checksum changed; redone",
                        )
                    todo.append(t)
                bar.total += len(ranges)
                bar.update(len(ranges) - len(todo))
                for t in todo:
                    shard = shard_name(sid, t.entry_start, t.entry_stop)
                    # a stale or damaged shard must not outlive a redo that fails
                    with contextlib.suppress(FileNotFoundError):
                        (out / shard).unlink()
                    man.bump_attempts(sid, t.entry_start)
                    f = dask_client.submit(
                        process_task,
                        path,
                        t.entry_start,
                        t.entry_stop,
                        source_id=sid,
                        kind=kind,
                        spec=spec,
                        shard_path=str(out / shard),
                        layout=layout,
                        n_threads=n_threads,
                        label=label,
                        compression=compression,
                        key=f"poetml-task-{token}-{sid}-{t.entry_start}",
                        retries=retries,
                        pure=False,
                    )
                    pending[f] = ("task", (sid, t.entry_start, shard))
                    queue.add(f)
                man.db.commit()
            else:
                sid, lo, shard = ident
                if future.status == "finished":
                    r = future.result()
                    man.set_task(sid, lo, status="done", shard=shard, error=None, **r)
                else:
                    man.set_task(
                        sid,
                        lo,
                        status="failed",
                        shard=None,
                        sha256=None,
                        nbytes=None,
                        error=_error_text(_exception(future)),
                    )
                bar.update(1)
            future.release()
    except BaseException:
        for f in list(pending):
            f.cancel()
        raise
    finally:
        bar.close()
    return n_skipped


def _exception(future: Any) -> BaseException:
    import asyncio

    try:
        exc = future.exception()
    except (asyncio.CancelledError, Exception) as e:  # noqa: BLE001  (cancelled futures raise)
        return e
    return exc if exc is not None else RuntimeError(f"task ended with status {future.status}")


# --------------------------------------------------------------------------------------
# the virtual dataset
# --------------------------------------------------------------------------------------


def write_virtual_dataset(out_dir: str | os.PathLike[str]) -> Path:
    """Write ``out_dir/dataset.h5`` over every finished shard, in (file, entry) order.

    ``images`` or ``features``, ``event_index`` and ``labels`` are HDF5 virtual datasets
    mapped onto the shards: nothing is copied, and the mapping uses paths *relative* to
    the folder, so the output folder can be moved as a whole.  ``source`` (the file id of
    each event, an index into the ``inputs`` attribute and the ``sources`` table) is a real,
    compressed int32 column: the shards each number their one file 0, so the batch-wide
    ids cannot be a view of theirs (constant runs compress to almost nothing).
    ``feature_names`` and the attributes (spec, channels, poetml version) come from the
    first shard; ``complete`` says whether every task of the batch is in.

    Returns the path written (through a temporary name, renamed at the end).
    """
    import h5py
    import numpy as np

    out = Path(out_dir).absolute()
    man = _Manifest(out, create=False)
    try:
        fp = man.get_meta("fingerprint") or {}
        all_tasks = man.tasks()
        sources = man.source_rows()
    finally:
        man.close()
    done = [t for t in all_tasks if t.status == "done"]
    if not done:
        raise BatchError(f"{out}: no finished shard to build {DATASET_NAME} from")
    kind = fp.get("kind") or KINDS[0]
    n_total = sum(int(t.n_events or 0) for t in done)
    with h5py.File(out / str(done[0].shard), "r") as first:
        if kind not in first:
            raise BatchError(f"{out / str(done[0].shard)} holds no {kind!r} dataset")
        virtual = [k for k in (kind, "event_index", "labels") if k in first]
        layouts = {k: (first[k].shape[1:], first[k].dtype) for k in virtual}
        feature_names = first["feature_names"][()] if "feature_names" in first else None
        attrs = dict(first.attrs)
    vls = {k: h5py.VirtualLayout(shape=(n_total, *s), dtype=d) for k, (s, d) in layouts.items()}
    source = np.empty(n_total, dtype=np.int32)
    pos = 0
    for t in done:
        n = int(t.n_events or 0)
        for k, (s, d) in layouts.items():
            vls[k][pos : pos + n] = h5py.VirtualSource(str(t.shard), k, shape=(n, *s), dtype=d)
        source[pos : pos + n] = t.source_id
        pos += n
    n_ids = max((int(r["id"]) for r in sources), default=-1) + 1
    source_paths = [""] * n_ids
    for r in sources:
        source_paths[int(r["id"])] = r["path"]
    complete = len(done) == len(all_tasks) and all(r["status"] == "counted" for r in sources)

    final = out / DATASET_NAME
    tmp = out / f".{DATASET_NAME}.tmp-{os.getpid()}"
    try:
        # libver latest: dense attribute storage, so thousands of inputs fit in "inputs"
        with h5py.File(tmp, "w", libver="latest") as f:
            for k, vl in vls.items():
                f.create_virtual_dataset(k, vl)
            f.create_dataset(
                "source",
                data=source,
                chunks=(min(max(n_total, 1), 1 << 16),),
                compression="gzip",
                shuffle=True,
            )
            if feature_names is not None:
                f.create_dataset("feature_names", data=feature_names, dtype=h5py.string_dtype())
            f.create_dataset(
                "sources", data=np.array(source_paths, dtype=object), dtype=h5py.string_dtype()
            )
            for k, v in attrs.items():
                if k not in ("entry_start", "entry_stop", "batch_source_id", "inputs", "n_events"):
                    f.attrs[k] = v
            f.attrs["inputs"] = json.dumps(source_paths)
            f.attrs["n_events"] = n_total
            f.attrs["n_shards"] = len(done)
            f.attrs["complete"] = complete
            f.attrs["batch_fingerprint"] = fp.get("hash", "")
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return final


# --------------------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """What ``poetml batch status`` reports about an output folder."""

    out_dir: Path
    fingerprint: Mapping[str, Any]
    tasks: tuple[TaskRecord, ...]
    sources: tuple[Mapping[str, Any], ...]
    dataset: Path | None
    dataset_events: int | None

    @property
    def done(self) -> list[TaskRecord]:
        return [t for t in self.tasks if t.status == "done"]

    @property
    def failed(self) -> list[TaskRecord]:
        return [t for t in self.tasks if t.status == "failed"]

    @property
    def pending(self) -> list[TaskRecord]:
        return [t for t in self.tasks if t.status not in ("done", "failed")]

    @property
    def failed_sources(self) -> list[Mapping[str, Any]]:
        return [s for s in self.sources if s["status"] == "failed"]

    @property
    def uncounted_sources(self) -> list[Mapping[str, Any]]:
        return [s for s in self.sources if s["status"] == "pending"]

    @property
    def complete(self) -> bool:
        return not (self.failed or self.pending or self.failed_sources or self.uncounted_sources)

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "kind": self.fingerprint.get("kind"),
            "spec_hash": self.fingerprint.get("hash"),
            "complete": self.complete,
            "counts": {
                "done": len(self.done),
                "failed": len(self.failed),
                "pending": len(self.pending),
                "files": len(self.sources),
                "files_failed": len(self.failed_sources),
                "files_not_counted": len(self.uncounted_sources),
                "events_done": sum(t.n_events or 0 for t in self.done),
            },
            "tasks": [dataclasses.asdict(t) for t in self.tasks],
            "sources": [dict(s) for s in self.sources],
            "dataset": str(self.dataset) if self.dataset else None,
            "dataset_events": self.dataset_events,
        }

    def format(self, limit: int | None = 20) -> str:
        fp = self.fingerprint
        lines = [
            (
                f"{self.out_dir}: {fp.get('kind', '?')} (spec {str(fp.get('hash', '?'))[:12]}), "
                f"{len(self.sources)} files, {len(self.tasks)} tasks, step size "
                f"{fp.get('step_size', '?')}"
            ),
            f"  done     {len(self.done):6d}  ({sum(t.n_events or 0 for t in self.done)} events)",
            f"  failed   {len(self.failed):6d}",
            f"  pending  {len(self.pending):6d}",
        ]
        if self.failed_sources or self.uncounted_sources:
            lines.append(
                f"  files failed before planning: {len(self.failed_sources)}, "
                f"not yet counted: {len(self.uncounted_sources)}"
            )

        def block(title: str, rows: list[str]) -> None:
            if not rows:
                return
            lines.append(f"{title}:")
            shown = rows if limit is None else rows[:limit]
            lines.extend(f"  {r}" for r in shown)
            if len(rows) > len(shown):
                lines.append(f"  ... and {len(rows) - len(shown)} more (--all lists them)")

        block(
            "failed",
            [f"{s['path']} (could not count entries): {s['error']}" for s in self.failed_sources]
            + [f"{t.where}: {t.error} (attempts: {t.attempts})" for t in self.failed],
        )
        block(
            "pending",
            [f"{s['path']} (entries not yet counted)" for s in self.uncounted_sources]
            + [f"{t.where}" + (f" ({t.error})" if t.error else "") for t in self.pending],
        )
        if self.dataset is not None:
            lines.append(f"dataset: {self.dataset} ({self.dataset_events} events)")
        else:
            lines.append(f"dataset: not written yet ({DATASET_NAME})")
        state = "complete" if self.complete else "INCOMPLETE"
        lines.append(f"status: {state}")
        return "\n".join(lines)


def status(out_dir: str | os.PathLike[str]) -> Status:
    """Read the manifest of a batch output folder (read-only)."""
    out = Path(out_dir).absolute()
    man = _Manifest(out, create=False)
    try:
        fp = man.get_meta("fingerprint") or {}
        tasks = tuple(man.tasks())
        sources = tuple(dict(r) for r in man.source_rows())
    finally:
        man.close()
    ds = out / DATASET_NAME
    n = None
    if ds.exists():
        import h5py

        with h5py.File(ds, "r") as f:
            n = int(f.attrs.get("n_events", -1))
    return Status(out, fp, tasks, sources, ds if ds.exists() else None, n)

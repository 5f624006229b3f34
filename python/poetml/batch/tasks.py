"""What runs on the Dask workers: count a file's entries, process one (file, entry range).

:func:`process_task` reads its entries, runs the kernel and writes one shard through
:func:`poetml.datasets.convert.write_batch` (the loop ``poetml images`` uses too), or for
kind ``scores`` the columns of the scorer it was given (the firmware's emulator:
:meth:`poetml.firmware.scoring.FirmwareScorer.score`) through
:func:`poetml.datasets.table.write_table`.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import resource
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from .._atomic import commit
from ..exceptions import ReadError
from .inputs import is_url, require_xrootd, scorer_identity

__all__ = ["KERNEL_CHUNK", "count_entries", "peak_rss", "process_task", "sha256"]

#: Events per kernel call and per shard append inside one task: bounds the output buffer
#: of a task whatever the step size.
KERNEL_CHUNK = 8192


def sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def peak_rss() -> int:
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


def file_stat(path: str) -> tuple[int | None, float | None]:
    if is_url(path):
        return None, None
    st = os.stat(path)
    return st.st_size, st.st_mtime


def count_entries(path: str, layout: str = "auto") -> dict[str, Any]:
    """Task: number of entries of one input file (plus its size and mtime when local)."""
    from .. import reading

    if is_url(path) and path.startswith(("root://", "xroot://")):
        require_xrootd(path)
    nbytes, mtime = file_stat(path)
    n = reading.num_entries(path, layout=layout)
    return {"n_entries": int(n), "nbytes": nbytes, "mtime": mtime}


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
    image_layout: str = "sparse",
) -> dict[str, Any]:
    """Task: read entries ``[entry_start, entry_stop)`` of ``path``, run the kernel, write
    one shard at ``shard_path`` (through a temporary name; images in ``image_layout``,
    sparse or dense; for kind ``scores`` ``spec`` is the scorer, whose columns go to a
    :func:`poetml.datasets.table.write_table` shard) and return what the manifest
    records: event count, SHA-256 and size of the shard, time, peak RSS of the worker.

    Memory: the events of the range are read at once (proportional to the step size); the
    kernel runs and the shard grows ``kernel_chunk`` events at a time (sparse images: the
    whole range in one call, as its output is a few tens of bytes an event).

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
            image_layout=image_layout,
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
    image_layout: str,
) -> dict[str, Any]:
    from .. import reading
    from ..datasets.convert import open_writer, write_batch

    t0, c0 = time.perf_counter(), time.process_time()
    batch = reading.read(path, entry_start=entry_start, entry_stop=entry_stop, layout=layout)
    want = entry_stop - entry_start
    if batch.n_events != want:
        raise ReadError(
            f"{path}: asked for entries [{entry_start}, {entry_stop}) ({want} events), "
            f"read {batch.n_events}; was the file truncated or rewritten?"
        )
    if want == 0:
        raise ReadError(f"{path}: entries [{entry_start}, {entry_stop}) hold no events")
    final = Path(shard_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # a private name first: should two attempts of this task ever run at once (a worker
    # presumed dead but still running), each writes its own file and the last complete
    # one is renamed onto the final name
    part = final.with_name(f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")
    attrs = {
        "spec": spec,
        "entry_start": int(entry_start),
        "entry_stop": int(entry_stop),
        "batch_source_id": int(source_id),
    }
    if kind == "scores":
        # spec is the scorer (poetml.firmware.scoring.FirmwareScorer): per-event columns
        from ..datasets.table import write_table

        attrs["spec"] = scorer_identity(spec)
        columns = spec.score(batch, n_threads=n_threads, step=kernel_chunk)
        write_table(part, columns, event_index=batch.event_index, source=0, attrs=attrs,
                    inputs=(path,), compression=compression)  # fmt: skip
        return _committed(part, final, batch.n_events, t0, c0)
    # deflate on as many threads as the kernel uses: a worker is one core
    with open_writer(part, kind, spec, attrs=attrs, inputs=(path,), compression=compression,
                     threads=n_threads or 1, image_layout=image_layout) as writer:  # fmt: skip
        # output of the last full kernel chunk reused (the writer copies it)
        n_written = write_batch(batch, writer, kind, spec, source_id=0, label=label,
                                n_threads=n_threads, step=kernel_chunk, buffers={})  # fmt: skip
    return _committed(part, final, n_written, t0, c0)


def _committed(part: Path, final: Path, n_written: int, t0: float, c0: float) -> dict[str, Any]:
    """Rename the complete shard ``part`` onto ``final``; what the manifest records."""
    try:
        digest, nbytes = sha256(part), os.path.getsize(part)
        commit(part, final)
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
        "peak_rss": peak_rss(),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }

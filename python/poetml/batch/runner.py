"""The client side of a batch run: lock, fingerprint check, submit, record, dataset.

:func:`run` is the only writer of the manifest; it records each task as its future
completes and writes the virtual dataset at the end.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..exceptions import ConfigError
from .cluster import open_client
from .inputs import expand_inputs, fingerprint_diff, plan_ranges, spec_fingerprint
from .manifest import (
    MANIFEST_VERSION,
    BatchError,
    Manifest,
    TaskRecord,
    clean_temporaries,
    locked,
    shard_name,
    wipe,
)
from .tasks import count_entries, process_task, sha256
from .virtual import write_virtual_dataset

__all__ = ["BatchResult", "run"]


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


def _error_text(exc: BaseException) -> str:
    msg = str(exc).strip().replace("\n", " ")
    if len(msg) > 2000:
        msg = msg[:2000] + " ..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


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
    image_layout: str = "sparse",
) -> BatchResult:
    """Process ``inputs`` into shards in ``out_dir`` on Dask and write ``out_dir/dataset.h5``.

    inputs
        files, glob patterns or ``root://`` URLs (see :func:`expand_inputs`).
    kind, spec
        ``"images"`` with an :class:`~poetml.images.ImageSpec` or ``"features"`` with a
        :class:`~poetml.features.FeatureSpec` (``None``: the default spec); or ``"scores"``
        with a scorer, :func:`poetml.firmware.load_scorer(FWDIR, MODEL_DIR)
        <poetml.firmware.scoring.load_scorer>`: shards of the columns ``firmware_score``
        (float64) and ``trigger`` (uint8 0/1), bit for bit what the firmware computes; its
        ``identity`` (the model directory's and the emulator export's SHA-256, the input
        spec) is part of the fingerprint, so another firmware or model is refused unless
        ``overwrite``.
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
    image_layout
        images: ``sparse`` (default; per event its non-zero pixels,
        :mod:`poetml.datasets.sparse`) or ``dense`` shards.  Part of the fingerprint.
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
    if kind == "scores" and label is not None:
        raise ConfigError("kind 'scores' takes no label")
    if spec is None and kind != "scores":
        from ..features import FeatureSpec
        from ..images import ImageSpec

        spec = {"images": ImageSpec, "features": FeatureSpec}.get(kind, ImageSpec)()
    paths = expand_inputs(inputs)
    fp = spec_fingerprint(kind, spec, paths, step_size=step_size, layout=layout, label=label,
                          image_layout=image_layout)  # fmt: skip
    if retries < 0:
        raise ConfigError(f"retries must be >= 0, got {retries}")
    if compression not in ("gzip", "lzf", "none"):
        raise ConfigError(f"compression {compression!r} is not one of gzip, lzf, none")
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
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
            image_layout=image_layout,
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
    image_layout: str,
) -> BatchResult:
    man = Manifest(out, create=True)
    try:
        old = man.get_meta("fingerprint")
        if old is not None and old.get("hash") != fp["hash"]:
            if not overwrite:
                diff = "; ".join(fingerprint_diff(old, fp)) or "hash differs"
                raise BatchError(
                    f"{out} holds a batch made with different settings ({diff}); refusing to "
                    "mix them. Use --overwrite (overwrite=True) to start afresh, or another "
                    "output folder."
                )
            man.close()
            wipe(out)
            man = Manifest(out, create=True)
        man.set_meta("fingerprint", fp)
        man.set_meta("manifest_version", MANIFEST_VERSION)
        man.set_meta("poetml_version", __version__)
        man.db.commit()
        clean_temporaries(out)
        ids = man.ensure_sources(paths)

        with open_client(
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
                image_layout=image_layout,
            )
        clean_temporaries(out)
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
    return not verify or sha256(p) == t.sha256


def _execute(
    dask_client: Any,
    man: Manifest,
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
    image_layout: str,
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
                    # kind "scores": the scorer (spec) travels with each task: the emulator
                    # export is plain integer arrays (the network's weights, as small as
                    # the firmware that holds them), loaded and checked against the model
                    # directory once, in the client, so workers need not see the firmware
                    # folder and all score with the one export the client checked; each
                    # task rebuilds the C++ network from it (cheap next to reading events)
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
                        image_layout=image_layout,
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

"""Ntuples -> C++ kernel -> HDF5: the one loop that turns events into a dataset file.

:func:`convert` reads files chunk by chunk (the next chunk is read in a background thread
while the C++ core works on the current one), runs :func:`poetml.rasterize` or
:func:`poetml.build_features` and writes the layout of :mod:`poetml.datasets.hdf5` under
a temporary name, renamed when everything succeeded.  ``poetml images|features`` calls it.

Its per-batch core, :func:`write_batch` (kernel in slices of bounded size, output buffers
reused, append to a writer), is also what a ``poetml batch`` task runs for its entry range
(:mod:`poetml.batch.tasks`) and what :func:`poetml.datasets.labelled.build` runs per chunk;
:func:`run_kernel` is the single place that picks the kernel of a kind.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from ..jagged import EventBatch
    from ..reading import ReadingConfig
    from . import hdf5, sparse

__all__ = [
    "ConvertResult",
    "convert",
    "item_shape",
    "kernel_events",
    "needed_collections",
    "open_writer",
    "run_kernel",
    "write_batch",
]

#: bytes of output per kernel call: a chunk of events is processed in slices this big
#: (1024 events of 32 x 32 x 4 images).  Buffers of this size are reused by malloc from one
#: call to the next; much bigger ones are fresh mmaps whose page faults cost several times
#: the kernel itself (see bench/bench_read.py).
_KERNEL_BYTES = 16 << 20


class Sink(Protocol):
    """Where :func:`write_batch` puts its output: :class:`~poetml.datasets.hdf5.ShardWriter`
    or anything with its ``append`` (which must copy what it keeps: buffers are reused)."""

    def append(
        self, data: np.ndarray, event_index: Any, source_id: Any, labels: Any = None
    ) -> None: ...


@dataclass(frozen=True)
class ConvertResult:
    """What :func:`convert` wrote: the file, its events, its size in bytes, the seconds."""

    path: Path
    n_events: int
    nbytes: int
    seconds: float


def needed_collections(kind: str, spec: Any) -> list[str]:
    """Canonical collections the kernel of ``kind`` reads for ``spec`` (image channels, or
    feature slots plus what the event quantities need)."""
    from .. import schema
    from ..features import QUANTITY_NEEDS

    if kind == "images":
        wanted = [c for c in spec.channels if c in schema.COLLECTIONS]
    else:
        wanted = [c for c, _ in spec.slots if c in schema.COLLECTIONS]
        wanted += [QUANTITY_NEEDS[q] for q in spec.event_quantities if q in QUANTITY_NEEDS]
    return list(dict.fromkeys(wanted))


def item_shape(kind: str, spec: Any) -> tuple[int, ...]:
    """Shape of one event's output: ``(n_eta, n_phi, C)`` or ``(F,)``."""
    if kind == "images":
        return tuple(int(s) for s in spec.shape)
    from ..features import feature_names

    return (len(feature_names(spec)),)


def kernel_events(kind: str, spec: Any) -> int:
    """Events per kernel call so that one call's output is about ``_KERNEL_BYTES``."""
    if kind == "images":
        n_eta, n_phi, c = spec.shape
        item = int(n_eta * n_phi * c * 4)
    else:
        item = 4 * 64
    return max(1, _KERNEL_BYTES // item)


def run_kernel(
    kind: str,
    batch: EventBatch,
    spec: Any,
    n_threads: int | None = None,
    buffers: dict[int, np.ndarray] | None = None,
    *,
    sparse: bool = False,
) -> tuple[Any, list[str] | None]:
    """Images (names ``None``) or features and their names of ``batch``; with ``sparse``,
    images as :class:`~poetml.images.SparseImages` (:func:`poetml.rasterize_sparse`).

    With ``buffers`` (events -> output array), the output of a slice as long as an earlier
    one goes into that slice's array (the writer has copied it by then): no fresh pages to
    fault in; the two most recent lengths are kept."""
    from ..features import build_features
    from ..images import rasterize, rasterize_sparse

    if sparse and kind == "images":  # the core emits the non-zero pixels directly
        return rasterize_sparse(batch, spec, n_threads=n_threads), None
    out = None if buffers is None else buffers.pop(batch.n_events, None)
    names: list[str] | None
    if kind == "images":
        data, names = rasterize(batch, spec, n_threads=n_threads, out=out), None
    else:
        data, fnames = build_features(batch, spec, n_threads=n_threads, out=out)
        names = list(fnames)
    if buffers is not None:
        buffers[batch.n_events] = data
        while len(buffers) > 2:
            buffers.pop(next(iter(buffers)))
    return data, names


def write_batch(
    batch: EventBatch,
    sink: Sink,
    kind: str,
    spec: Any,
    *,
    source_id: int,
    label: int | None = None,
    n_threads: int | None = None,
    step: int | None = None,
    buffers: dict[int, np.ndarray] | None = None,
    progress: Callable[[int], Any] | None = None,
) -> int:
    """Run the kernel on ``batch`` in slices of ``step`` events (default
    :func:`kernel_events`) and append each slice to ``sink`` with its entries, the file id
    ``source_id`` and ``label``; returns the number of events.  A sink whose ``sparse``
    attribute is true (:class:`~poetml.datasets.sparse.SparseShardWriter`) gets images
    from :func:`poetml.rasterize_sparse` instead.  ``buffers``: see
    :func:`run_kernel`; ``progress`` is called with each slice's event count."""
    as_sparse = kind == "images" and getattr(sink, "sparse", False)
    # sparse output is small (tens of bytes an event): one kernel call per batch
    step = batch.n_events if as_sparse else (step or kernel_events(kind, spec))
    for lo in range(0, batch.n_events, step):
        sub = batch if (lo == 0 and step >= batch.n_events) else batch.slice(lo, lo + step)
        data, _ = run_kernel(kind, sub, spec, n_threads, buffers, sparse=as_sparse)
        sink.append(data, sub.event_index, source_id, labels=label)
        if progress is not None:
            progress(sub.n_events)
    return batch.n_events


def open_writer(
    path: str | os.PathLike[str],
    kind: str,
    spec: Any,
    *,
    attrs: Mapping[str, Any] | None = None,
    inputs: Sequence[str] = (),
    compression: str = "gzip",
    threads: int | None = None,
    image_layout: str = "sparse",
) -> hdf5.ShardWriter | sparse.SparseShardWriter:
    """A :class:`~poetml.datasets.hdf5.ShardWriter` for the output of ``kind`` with
    ``spec`` (shape, feature or channel names from the spec); for images with
    ``image_layout="sparse"`` (the default) a
    :class:`~poetml.datasets.sparse.SparseShardWriter`."""
    from ..features import feature_names
    from .hdf5 import ShardWriter
    from .sparse import IMAGE_LAYOUTS, SparseShardWriter

    if image_layout not in IMAGE_LAYOUTS:
        raise ValueError(
            f"unknown image layout {image_layout!r}; valid: {', '.join(IMAGE_LAYOUTS)}"
        )
    if kind == "images" and image_layout == "sparse":
        return SparseShardWriter(
            path,
            kind,
            item_shape=item_shape(kind, spec),
            attrs=attrs,
            channels=tuple(spec.channels),
            inputs=inputs,
            compression=compression,
            threads=threads,
        )
    return ShardWriter(
        path,
        kind,
        item_shape=item_shape(kind, spec),
        attrs=attrs,
        feature_names=list(feature_names(spec)) if kind == "features" else None,
        channels=tuple(spec.channels) if kind == "images" else None,
        inputs=inputs,
        compression=compression,
        threads=threads,
    )


def _warn_lacking(kind: str, source: str, layout: str, collections: Sequence[str]) -> None:
    from tqdm.auto import tqdm

    from ..reading import available_collections

    have = available_collections(source, layout=layout)
    lacking = [c for c in collections if c not in have]
    if lacking:
        tqdm.write(
            f"poetml {kind}: {source} has no {', '.join(lacking)} collection; treated as empty "
            f"(no objects{', MET 0' if 'met' in lacking else ''})",
            file=sys.stderr,
        )


def convert(
    files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    kind: str,
    spec: Any = None,
    *,
    reading: ReadingConfig | None = None,
    threads: int | None = None,
    label: int | None = None,
    compression: str = "gzip",
    progress: bool = True,
    attrs: Mapping[str, Any] | None = None,
    image_layout: str = "sparse",
) -> ConvertResult:
    """Ntuples ``files`` (paths or glob patterns, read in order) -> one HDF5 file ``output``
    of ``kind`` (``images`` with an ImageSpec or ``features`` with a FeatureSpec; ``None``:
    the default spec).

    ``reading`` gives the step size and layout; ``threads`` the threads of the C++ core,
    of the ROOT baskets' decompression and of the output's compression (None: all cores);
    ``label`` an int32 label stored for every event; ``compression`` ``gzip``,
    ``lzf`` or ``none``; ``image_layout`` ``sparse`` (default: the non-zero pixels of each
    event, :mod:`poetml.datasets.sparse`) or ``dense`` (the whole images array) for
    images; ``attrs`` extra file attributes (``spec`` and ``reading`` are
    always stored).  A file lacking a collection the spec needs is read as empty, with a
    note on stderr.  No events at all still gives a valid, empty file.  The output is
    checked before anything is read (:func:`poetml._atomic.check_output`) and appears
    under its name only when complete: any exception (KeyboardInterrupt too) removes it.
    """
    from .. import reading as rd
    from .._atomic import check_output
    from .._mapping import to_mapping
    from ..features import FeatureSpec
    from ..images import ImageSpec

    if kind not in ("images", "features"):
        raise ValueError(f"unknown kind {kind!r}; valid: images, features")
    if spec is None:
        spec = ImageSpec() if kind == "images" else FeatureSpec()
    reading = rd.ReadingConfig() if reading is None else reading
    paths = rd.expand_files(files)
    out = check_output(output, paths)  # before anything is read
    source_id = {f: i for i, f in enumerate(paths)}
    collections = needed_collections(kind, spec)
    os.makedirs(out.parent, exist_ok=True)

    from tqdm.auto import tqdm

    total = sum(rd.num_entries(f, layout=reading.layout) for f in paths)
    t0 = time.perf_counter()
    bar = tqdm(total=total, unit="event", unit_scale=True, file=sys.stderr,
               disable=not progress, desc=kind)  # fmt: skip
    warned: set[str] = set()
    buffers: dict[int, np.ndarray] = {}  # kernel outputs reused slice after slice
    step = kernel_events(kind, spec)
    batches = None
    writer = None
    try:
        writer = open_writer(
            out,
            kind,
            spec,
            attrs={"spec": to_mapping(spec), "reading": to_mapping(reading), **(attrs or {})},
            inputs=[os.path.abspath(f) if "://" not in f else f for f in paths],
            compression=compression,
            threads=threads,
            image_layout=image_layout,
        )
        batches = rd.prefetch(
            rd.iterate(
                paths,
                reading.step_size,
                layout=reading.layout,
                collections=collections,
                missing_collections="empty",
                threads=threads,
            )
        )
        for batch in batches:
            if batch.source not in warned:
                warned.add(batch.source)
                _warn_lacking(kind, batch.source, reading.layout, collections)
            write_batch(batch, writer, kind, spec, source_id=source_id[batch.source],
                        label=label, n_threads=threads, step=step, buffers=buffers,
                        progress=bar.update)  # fmt: skip
        if writer.n_events == 0:  # no events at all: still a valid, empty file (labels too)
            writer.append(np.zeros((0, *writer.item_shape), np.float32), np.zeros(0, np.int64),
                          0, labels=label)  # fmt: skip
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if batches is not None:
            batches.close()
        bar.close()
    return ConvertResult(out, writer.n_events, os.path.getsize(out), time.perf_counter() - t0)

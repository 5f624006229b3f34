"""HDF5 files of event images or feature vectors.

One file holds:

* ``images`` (N, n_eta, n_phi, C) float32 *or* ``features`` (N, F) float32,
  chunked (about 1 MiB of whole events per chunk) and compressed with HDF5's standard
  deflate (gzip) filter, readable by any HDF5 tool.  Event images are sparse: their
  chunks are deflated at level 1 without shuffle on a thread pool (about 100 bytes an
  event for 32 x 32 x 4 histogram images instead of 16 KiB); features use level 4 with
  byte shuffle.  ``bench/bench_read.py`` measures the options.
* ``feature_names`` (F,) UTF-8 strings, for features
* ``labels`` (N,) int32, when known
* ``event_index`` (N,) int64, the entry of each event in its source file
* ``source`` (N,) int32, index of the source file in the ``inputs`` attribute

(event images may instead be stored sparse, as their non-zero pixels:
:mod:`poetml.datasets.sparse`, which :func:`load` and :func:`open_dataset` read too)
and attributes ``kind``, ``channels`` and ``inputs`` (JSON lists), ``poetml_version``,
``format_version`` and the caller's ``attrs`` (the spec used, as JSON for mappings and
lists; their keys are listed in ``json_attrs`` so :func:`load` can decode them).

Files are written under a temporary name in the same folder, unique to the process
(``.OUT.h5.PID.tmp``), and renamed only on success; an exception, KeyboardInterrupt or a
full disk removes the temporary file, so a half-written file never sits under the final
name.  A second process writing the same output at the same time is refused
(:class:`poetml._atomic.OutputLock`).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from .._atomic import OutputLock, temp_path, write_error
from ..exceptions import ReadError
from ..images import SparseImages
from . import _h5io

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["KINDS", "Dataset", "ShardWriter", "load", "open_dataset", "write"]

#: Kinds of data a file holds; also the name of the main dataset.
KINDS = ("images", "features")
#: Compression filters accepted by :class:`ShardWriter`.
COMPRESSIONS = ("gzip", "lzf", "none")
FORMAT_VERSION = 1
_CHUNK_BYTES = 1 << 20  # target size of one chunk of the main dataset
_GZIP_LEVEL = 4  # features and the small datasets, through HDF5's deflate filter + shuffle
#: event images: level 1 (bench/bench_read.py: ~100 bytes/event for 32x32x4 images, 150x
#: smaller than raw, compresses 2x and inflates 3x faster than level 4 or zlib's RLE mode)
_GZIP_LEVEL_IMAGES = 1


def _json(value: Any) -> str:
    from .._mapping import to_mapping

    return json.dumps(to_mapping(value), sort_keys=True)


def _chunk_events(item_shape: tuple[int, ...]) -> int:
    item_bytes = int(np.prod(item_shape, dtype=np.int64)) * 4
    return int(max(1, min(65536, _CHUNK_BYTES // max(item_bytes, 1))))


def _filter_kwargs(compression: str | None, level: int | None = None) -> dict[str, Any]:
    if compression in (None, "none"):
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": _GZIP_LEVEL if level is None else level,
                "shuffle": True}  # fmt: skip
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    raise ValueError(f"unknown compression {compression!r}; valid: {', '.join(COMPRESSIONS)}")


class ShardWriter:
    """Append batches of images or features to an HDF5 file, atomically.

    ::

        with ShardWriter("out.h5", "images", item_shape=spec.shape, attrs={"spec": spec},
                         channels=spec.channels, inputs=files) as w:
            for batch in poetml.iterate(files):
                w.append(poetml.rasterize(batch, spec), batch.event_index, files.index(batch.source))

    ``kind`` is ``images`` or ``features``; ``item_shape`` the shape of one event
    (``(n_eta, n_phi, C)`` or ``(F,)``); ``attrs`` extra file attributes (mappings, lists
    and dataclasses are stored as JSON); ``inputs`` the source files that ``source_id``
    indexes; ``compression`` ``gzip`` (default; images level 1 without shuffle,
    compressed on ``threads`` threads (default: all cores) while the caller goes on;
    features level 4 with shuffle), ``lzf`` or ``none``; ``compression_level`` overrides
    the gzip level; ``chunk_events`` the events per chunk (default: about 1 MiB).

    The data go to a temporary name beside ``path`` and are renamed to ``path`` by a clean exit of the
    ``with`` block (or :meth:`close`); an exception (KeyboardInterrupt too) deletes the
    temporary file (or call :meth:`abort`).  ``append`` copies what it keeps, so the
    caller may reuse its arrays.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        kind: str,
        *,
        item_shape: Sequence[int],
        attrs: Mapping[str, Any] | None = None,
        feature_names: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        inputs: Sequence[str | os.PathLike[str]] = (),
        compression: str | None = "gzip",
        compression_level: int | None = None,
        chunk_events: int | None = None,
        threads: int | None = None,
    ) -> None:
        import h5py

        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(KINDS)}")
        self.path = Path(path)
        self.kind = kind
        self.item_shape = tuple(int(s) for s in item_shape)
        if kind == "images" and len(self.item_shape) != 3:
            raise ValueError(f"images need item_shape (n_eta, n_phi, C), got {self.item_shape}")
        if kind == "features" and len(self.item_shape) != 1:
            raise ValueError(f"features need item_shape (F,), got {self.item_shape}")
        if feature_names is not None:
            feature_names = [str(n) for n in feature_names]
            if kind == "features" and len(feature_names) != self.item_shape[0]:
                raise ValueError(
                    f"{len(feature_names)} feature names for {self.item_shape[0]} features"
                )
        if channels is not None:
            channels = [str(c) for c in channels]
            if kind == "images" and len(channels) != self.item_shape[2]:
                raise ValueError(f"{len(channels)} channel names for {self.item_shape[2]} channels")
        self.inputs = [os.fspath(p) for p in inputs]
        filters = _filter_kwargs(compression, compression_level)
        # event images: chunks are deflated here, on a thread pool and while the caller
        # goes on computing, then stored as they are (H5Dwrite_chunk); any HDF5 reader
        # inflates them through the standard deflate filter.
        self._direct = kind == "images" and compression == "gzip"
        if self._direct:
            self._level = (
                _GZIP_LEVEL_IMAGES if compression_level is None else int(compression_level)
            )
            filters = {"compression": "gzip", "compression_opts": self._level}
        self._threads = max(1, threads or os.cpu_count() or 1)
        self._pool: Any = None
        self._pending: collections.deque[tuple[int, Any]] = collections.deque()
        self._buffer: np.ndarray | None = None  # events not yet making a whole chunk
        self.n_events = 0
        self._labels: bool | None = None
        self._closed = False
        if not self.path.parent.is_dir():
            raise OSError(f"cannot write {self.path}: folder {self.path.parent} does not exist")
        if self.path.is_dir():
            raise IsADirectoryError(f"cannot write {self.path}: it is a directory")
        self.tmp_path = temp_path(self.path)
        ce = chunk_events or _chunk_events(self.item_shape)
        self.chunk_events = ce
        self._file: Any = None  # an h5py.File once opened (abort() reads it before then)
        self._lock = OutputLock(self.path)
        try:  # from here on, any exception (SIGTERM and Ctrl-C too) removes file and lock
            try:
                self._file = h5py.File(self.tmp_path, "w", rdcc_nbytes=4 * _CHUNK_BYTES + (1 << 20))
            except OSError as exc:
                raise write_error(self.path, exc) from exc
            f = self._file
            self._data = f.create_dataset(
                kind,
                shape=(0, *self.item_shape),
                maxshape=(None, *self.item_shape),
                dtype=np.float32,
                chunks=(ce, *self.item_shape),
                **filters,
            )
            small = {"chunks": (1 << 16,), "maxshape": (None,), **_filter_kwargs(
                "gzip" if compression not in (None, "none") else None)}  # fmt: skip
            self._event_index = f.create_dataset("event_index", shape=(0,), dtype=np.int64, **small)
            self._source = f.create_dataset("source", shape=(0,), dtype=np.int32, **small)
            self._small = small
            if feature_names is not None:
                f.create_dataset("feature_names", data=feature_names, dtype=h5py.string_dtype())
            json_keys = []
            for key, value in (attrs or {}).items():
                if isinstance(value, str | int | float | bool | np.integer | np.floating):
                    f.attrs[key] = value
                else:
                    f.attrs[key] = _json(value)
                    json_keys.append(key)
            from .._version import __version__

            f.attrs["kind"] = kind
            f.attrs["channels"] = json.dumps(channels)
            f.attrs["inputs"] = json.dumps(self.inputs)
            f.attrs["poetml_version"] = __version__
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["json_attrs"] = json.dumps(json_keys)
        except BaseException:
            self.abort()
            raise

    # -- context manager ----------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- writing ------------------------------------------------------------------------
    def append(
        self,
        data: np.ndarray,
        event_index: np.ndarray | Sequence[int],
        source_id: int | np.ndarray | Sequence[int],
        labels: np.ndarray | Sequence[int] | int | None = None,
    ) -> None:
        """Append ``len(data)`` events.  ``source_id`` is one file id or one per event;
        ``labels`` one int per event (or one for all) and given for every append or none."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        data = np.asarray(data)
        if data.shape[1:] != self.item_shape:
            raise ValueError(
                f"{self.path}: {self.kind} of shape {data.shape[1:]} per event, "
                f"the file holds {self.item_shape}"
            )
        n = data.shape[0]
        event_index = np.asarray(event_index, dtype=np.int64).reshape(-1)
        if len(event_index) != n:
            raise ValueError(f"{self.path}: {len(event_index)} event indices for {n} events")
        source = np.broadcast_to(np.asarray(source_id, dtype=np.int32), (n,))
        has_labels = labels is not None
        if self._labels is None:
            self._labels = has_labels
            if has_labels:
                self._label_ds = self._file.create_dataset(
                    "labels", shape=(0,), dtype=np.int32, **self._small
                )
        elif self._labels != has_labels:
            raise ValueError(f"{self.path}: labels must be given for every append or for none")
        if n == 0:
            return
        try:
            self._append(data, event_index, source, labels, n)
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from exc

    def _append(
        self, data: np.ndarray, event_index: np.ndarray, source: np.ndarray, labels: Any, n: int
    ) -> None:
        has_labels = labels is not None
        lo, hi = self.n_events, self.n_events + n
        self._data.resize(hi, axis=0)
        if self._direct:
            self._append_direct(lo, data)
        else:
            self._data[lo:hi] = np.asarray(data, dtype=np.float32)
        for ds, values in ((self._event_index, event_index), (self._source, source)):
            ds.resize(hi, axis=0)
            ds[lo:hi] = values
        if has_labels:
            lab = np.broadcast_to(np.asarray(labels, dtype=np.int32), (n,))
            self._label_ds.resize(hi, axis=0)
            self._label_ds[lo:hi] = lab
        self.n_events = hi

    # -- direct chunk writes --------------------------------------------------------------
    def _append_direct(self, lo: int, data: np.ndarray) -> None:
        """Queue whole chunks of events ``lo...`` for compression; keep the rest buffered."""
        ce = self.chunk_events
        data = np.asarray(data, dtype=np.float32)
        start = lo - (len(self._buffer) if self._buffer is not None else 0)  # chunk aligned
        if self._buffer is not None:
            data = np.concatenate([self._buffer, data])
            self._buffer = None
        whole = len(data) - len(data) % ce
        for k in range(0, whole, ce):
            self._submit(start + k, data[k : k + ce])
        if whole < len(data):
            self._buffer = np.array(data[whole:], dtype=np.float32, copy=True)
        self._drain(self._threads * 4)

    def _submit(self, first: int, block: np.ndarray) -> None:
        import zlib

        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="poetml-deflate")
        raw = np.ascontiguousarray(block, dtype=np.float32).tobytes()  # a copy: caller may reuse
        if len(block) < self.chunk_events:  # the last, partial chunk is stored padded
            raw += bytes(4 * int(np.prod(self.item_shape)) * (self.chunk_events - len(block)))
        level = self._level

        def deflate() -> bytes:  # zlib releases the GIL while it compresses
            return zlib.compress(raw, level)

        self._pending.append((first, self._pool.submit(deflate)))

    def _drain(self, keep: int = 0) -> None:
        """Write compressed chunks, in order, until at most ``keep`` are pending."""
        zeros = (0,) * len(self.item_shape)
        while len(self._pending) > keep:
            first, future = self._pending.popleft()
            self._data.id.write_direct_chunk((first, *zeros), future.result())

    def _finish_direct(self) -> None:
        if self._buffer is not None:
            self._submit(self.n_events - len(self._buffer), self._buffer)
            self._buffer = None
        self._drain(0)
        self._shutdown_pool()

    def _shutdown_pool(self) -> None:
        if self._pool is not None:
            for _, future in self._pending:
                future.cancel()
            self._pending.clear()
            self._pool.shutdown(wait=True)
            self._pool = None

    def close(self) -> Path:
        """Finish the file and rename it to its final name; returns that path."""
        if self._closed:
            return self.path
        try:
            if self._direct:
                self._finish_direct()
            self._file.attrs["n_events"] = self.n_events
            _h5io.finish(self._file, self.tmp_path, self.path)
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from exc
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._lock.release()
        return self.path

    def abort(self) -> None:
        """Drop everything written: close and delete the temporary file."""
        self._closed = True
        try:
            if getattr(self, "_pool", None) is not None:
                self._shutdown_pool()
            _h5io.discard(getattr(self, "_file", None))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp_path)
            lock = getattr(self, "_lock", None)
            if lock is not None:
                lock.release()


def write(
    path: str | os.PathLike[str],
    kind: str,
    data: np.ndarray,
    *,
    event_index: np.ndarray | Sequence[int],
    source: int | np.ndarray | Sequence[int],
    attrs: Mapping[str, Any] | None = None,
    feature_names: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    inputs: Sequence[str | os.PathLike[str]] = (),
    labels: np.ndarray | Sequence[int] | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write a whole array in one go (see :class:`ShardWriter`); returns the path."""
    data = np.asarray(data)
    with ShardWriter(
        path,
        kind,
        item_shape=data.shape[1:],
        attrs=attrs,
        feature_names=feature_names,
        channels=channels,
        inputs=inputs,
        compression=compression,
    ) as w:
        w.append(data, event_index, source, labels)
    return Path(path)


@dataclass(frozen=True, eq=False)
class Dataset:
    """The content of one file written by :class:`ShardWriter` (``data``: sparse images
    only when :func:`load` is asked to keep them sparse)."""

    data: np.ndarray | SparseImages
    kind: str
    feature_names: tuple[str, ...] | None
    channels: tuple[str, ...] | None
    labels: np.ndarray | None
    event_index: np.ndarray
    source: np.ndarray
    inputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    path: str = ""

    def __len__(self) -> int:
        return len(self.data)


def _open(path: str | os.PathLike[str]) -> Any:
    import h5py

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ReadError(f"no such file: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ReadError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {exc}") from exc


def _kind(f: Any, path: str) -> str:
    for kind in KINDS:
        if kind in f:
            return kind
    raise ReadError(
        f"{path}: no dataset 'images' or 'features'; datasets in the file: "
        f"{', '.join(f.keys()) or 'none'}"
    )


def _need(f: Any, path: str, name: str) -> Any:
    if name not in f:
        raise ReadError(
            f"{path}: missing dataset {name!r}; datasets in the file: {', '.join(f.keys()) or 'none'}"
        )
    return f[name]


def _decode_attrs(f: Any) -> dict[str, Any]:
    raw = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    json_keys = set(json.loads(raw.get("json_attrs", "[]")))
    for key in ("channels", "inputs", "json_attrs"):
        json_keys.add(key)
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if k in json_keys and isinstance(v, str):
            with contextlib.suppress(json.JSONDecodeError):
                v = json.loads(v)
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def load(
    path: str | os.PathLike[str],
    *,
    start: int | None = None,
    stop: int | None = None,
    keep_sparse: bool = False,
) -> Dataset:
    """Read a file written by :class:`ShardWriter` into memory (events ``start:stop``).

    A file of sparse images (:mod:`poetml.datasets.sparse`) is read too: ``data`` holds its
    images densified, or with ``keep_sparse=True`` as they are stored
    (:class:`~poetml.images.SparseImages`, as :func:`poetml.datasets.sparse.read_sparse`)."""
    from . import sparse

    path = os.fspath(path)
    with _open(path) as f:
        sel = slice(start, stop)
        data: np.ndarray | SparseImages
        if sparse.is_sparse(f):  # the sparse image layout (poetml.datasets.sparse)
            images = sparse.SparseImageDataset(f, path)
            if keep_sparse:
                lo, hi, _ = sel.indices(len(images))
                kind, data = "images", images.sparse(lo, max(lo, hi))
            else:
                kind, data = "images", images[sel]
        else:
            kind = _kind(f, path)
            data = np.asarray(f[kind][sel])
        event_index = np.asarray(_need(f, path, "event_index")[sel])
        source = np.asarray(_need(f, path, "source")[sel])
        labels = np.asarray(f["labels"][sel]) if "labels" in f else None
        names = (
            tuple(n.decode() if isinstance(n, bytes) else str(n) for n in f["feature_names"][()])
            if "feature_names" in f
            else None
        )
        attrs = _decode_attrs(f)
    channels = attrs.get("channels")
    return Dataset(
        data=data,
        kind=kind,
        feature_names=names,
        channels=tuple(channels) if channels is not None else None,
        labels=labels,
        event_index=event_index,
        source=source,
        inputs=tuple(attrs.get("inputs") or ()),
        attrs=attrs,
        path=path,
    )


def open_dataset(path: str | os.PathLike[str], name: str | None = None) -> Any:
    """The ``images``/``features`` (or ``name``) dataset as a lazy ``h5py.Dataset`` (for a
    file of sparse images a :class:`~poetml.datasets.sparse.SparseImageDataset`, which
    densifies the events it is sliced for).

    Nothing is read until it is sliced.  The file stays open as long as the dataset is
    used; close it with ``ds.file.close()``.
    """
    from . import sparse

    path = os.fspath(path)
    f = _open(path)
    try:
        if name is None and sparse.is_sparse(f):
            return sparse.SparseImageDataset(f, path)
        return _need(f, path, name) if name is not None else f[_kind(f, path)]
    except BaseException:
        f.close()
        raise

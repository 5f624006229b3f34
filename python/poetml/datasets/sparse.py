"""The sparse HDF5 layout of event images: per event its non-zero pixels.

``poetml images`` and ``poetml batch images`` write it by default (``--image-layout
dense`` writes the dense ``images`` array of :mod:`poetml.datasets.hdf5` instead).  A file
holds, besides ``event_index``, ``source`` and ``labels`` as in the dense layout:

* ``image_offsets`` (N + 1,) int64: event ``i`` owns entries
  ``image_offsets[i]:image_offsets[i + 1]`` of the two datasets below (starts at 0);
* ``pixel_index`` (nnz,) int32: the flat pixel index into one C-ordered
  ``(n_eta, n_phi, C)`` image, ``(ix * n_phi + iy) * C + c``, ascending within an event;
* ``pixel_value`` (nnz,) float32: the pixel's value (never 0);

and the attributes ``kind = "images"``, ``layout = "sparse"``, ``image_shape``
(``[n_eta, n_phi, C]``), ``channels``, ``inputs`` (JSON lists), the spec (JSON) and the
poetml version.  h5py alone reads it (``docs/guide/sparse-images.md`` densifies one event
in ten lines); :func:`poetml.datasets.hdf5.load` densifies, :func:`read_sparse` does not.
Densifying gives exactly the images :func:`poetml.rasterize` makes.

The datasets are chunked (256 Ki entries) and compressed with HDF5's deflate filter and
byte shuffle (``pixel_index`` at level 1, compressed on a thread pool and written as whole
chunks), so any HDF5 tool reads them; with ``gzip`` (the default) ``pixel_value`` alone is
stored uncompressed: deflate shrinks those float32 values by 17 % only (the file by 13 %)
and took a fifth of the conversion's CPU (``bench/bench_read.py``).  Files are written
under a temporary name and renamed when complete, as the dense ones
(:class:`SparseShardWriter`).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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

    from .scalers import Scaler

__all__ = [
    "IMAGE_LAYOUTS",
    "SparseImageDataset",
    "SparseShardWriter",
    "fit_image_scaler",
    "is_sparse",
    "read_sparse",
    "sparse_events",
]

#: Layouts of event images on disk.
IMAGE_LAYOUTS = ("sparse", "dense")
#: Names of the three datasets of the layout.
OFFSETS, INDEX, VALUE = "image_offsets", "pixel_index", "pixel_value"
_CHUNK_ENTRIES = 1 << 18  # 1 MiB of int32 / float32 per chunk
_OFFSET_CHUNK = 1 << 16
_GZIP_LEVEL = 4  # offsets, event_index, source, labels (HDF5's filters)
#: ``pixel_index``: byte shuffle + deflate level 1, done on a thread pool while the caller
#: goes on (level 4 saves 1 % and compresses 1.6x slower); ``pixel_value`` is not deflated
#: (bench/bench_read.py: 22 bytes an event for the default images, 19 with the values
#: deflated, at 20 % more CPU for the whole conversion)
_GZIP_LEVEL_PIXELS = 1
#: the ``format_version`` attribute (that of :mod:`.hdf5`, which imports this module)
FORMAT_VERSION = 1


def is_sparse(f: Any) -> bool:
    """Whether the open h5py file ``f`` holds sparse images."""
    return OFFSETS in f and INDEX in f and VALUE in f


def _filters(compression: str | None, level: int = _GZIP_LEVEL) -> dict[str, Any]:
    if compression in (None, "none"):
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": level, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    raise ValueError(f"unknown compression {compression!r}; valid: gzip, lzf, none")


def _json(value: Any) -> str:
    from .._mapping import to_mapping

    return json.dumps(to_mapping(value), sort_keys=True)


class _PixelColumn:
    """One pixel dataset written by whole chunks: each full chunk is byte-shuffled and
    deflated on a thread pool (zlib releases the GIL) and stored as it is
    (``write_direct_chunk``), exactly what HDF5's shuffle + deflate filters would store,
    so any HDF5 reader inflates it.  Without gzip the chunks go through h5py as usual."""

    def __init__(self, ds: Any, dtype: Any, pool: Callable[[], Any] | None) -> None:
        self.ds = ds
        self.dtype = np.dtype(dtype)
        self.pool = pool  # None: no direct writes
        self.parts: list[np.ndarray] = []
        self.n_buffered = 0
        self.n_total = 0
        self.n_flushed = 0  # entries handed to whole-chunk writes
        self.pending: collections.deque[tuple[int, Any]] = collections.deque()

    def append(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        n0, n1 = self.n_total, self.n_total + len(values)
        self.ds.resize(n1, axis=0)
        self.n_total = n1
        if self.pool is None:
            if len(values):
                self.ds[n0:n1] = values
            return
        if len(values):
            self.parts.append(values.copy())  # the caller may reuse its arrays
            self.n_buffered += len(values)
        while self.n_buffered >= _CHUNK_ENTRIES:
            data = np.concatenate(self.parts)
            self._submit(data[:_CHUNK_ENTRIES])
            rest = data[_CHUNK_ENTRIES:]
            self.parts = [rest] if len(rest) else []
            self.n_buffered = len(rest)

    def _submit(self, block: np.ndarray) -> None:
        import zlib

        assert self.pool is not None
        first = self.n_flushed
        self.n_flushed += len(block)
        if len(block) < _CHUNK_ENTRIES:  # the last, partial chunk is stored padded
            block = np.concatenate([block, np.zeros(_CHUNK_ENTRIES - len(block), self.dtype)])
        size = self.dtype.itemsize

        def deflate() -> bytes:  # HDF5's shuffle filter, then deflate
            shuffled = block.view(np.uint8).reshape(-1, size).T.tobytes()
            return zlib.compress(shuffled, _GZIP_LEVEL_PIXELS)

        self.pending.append((first, self.pool().submit(deflate)))

    def drain(self, keep: int = 0) -> None:
        while len(self.pending) > keep:
            first, future = self.pending.popleft()
            self.ds.id.write_direct_chunk((first,), future.result())

    def finish(self) -> None:
        if self.pool is not None and self.n_buffered:
            self._submit(np.concatenate(self.parts))
            self.parts, self.n_buffered = [], 0
        self.drain(0)

    def cancel(self) -> None:
        for _, future in self.pending:
            future.cancel()
        self.pending.clear()


class SparseShardWriter:
    """Append batches of sparse images (:class:`~poetml.images.SparseImages`) to an HDF5
    file of the sparse layout, atomically; the counterpart of
    :class:`~poetml.datasets.hdf5.ShardWriter` (same arguments, same ``append``,
    ``close``, ``abort`` and ``with`` behaviour), which
    :func:`poetml.datasets.convert.write_batch` feeds from :func:`poetml.rasterize_sparse`.
    ``append`` also takes dense images ``(n, n_eta, n_phi, C)`` and keeps their non-zero
    pixels."""

    sparse = True
    kind = "images"

    def __init__(
        self,
        path: str | os.PathLike[str],
        kind: str = "images",
        *,
        item_shape: Sequence[int],
        attrs: Mapping[str, Any] | None = None,
        channels: Sequence[str] | None = None,
        inputs: Sequence[str | os.PathLike[str]] = (),
        compression: str | None = "gzip",
        threads: int | None = None,
    ) -> None:
        import h5py

        if kind != "images":
            raise ValueError(f"the sparse layout holds images, not {kind!r}")
        self.path = Path(path)
        self.item_shape = tuple(int(s) for s in item_shape)
        if len(self.item_shape) != 3 or min(self.item_shape) < 1:
            raise ValueError(
                f"sparse images need item_shape (n_eta, n_phi, C), got {self.item_shape}"
            )
        channels = [str(c) for c in channels] if channels is not None else None
        if channels is not None and len(channels) != self.item_shape[2]:
            raise ValueError(f"{len(channels)} channel names for {self.item_shape[2]} channels")
        self.inputs = [os.fspath(p) for p in inputs]
        filters = _filters(compression)
        self.n_events = 0
        self.n_entries = 0
        self._threads = max(1, threads or os.cpu_count() or 1)
        self._pool: Any = None
        self._labels: bool | None = None
        self._closed = False
        if not self.path.parent.is_dir():
            raise OSError(f"cannot write {self.path}: folder {self.path.parent} does not exist")
        if self.path.is_dir():
            raise IsADirectoryError(f"cannot write {self.path}: it is a directory")
        self.tmp_path = temp_path(self.path)
        self._file: Any = None
        self._lock = OutputLock(self.path)
        try:  # from here on, any exception removes file and lock
            try:
                self._file = h5py.File(self.tmp_path, "w")
            except OSError as exc:
                raise write_error(self.path, exc) from exc
            f = self._file
            self._small = {"chunks": (_OFFSET_CHUNK,), "maxshape": (None,), **filters}
            self._offsets = f.create_dataset(OFFSETS, data=np.zeros(1, np.int64), **self._small)
            direct = compression == "gzip"
            big = {"chunks": (_CHUNK_ENTRIES,), "maxshape": (None,),
                   **(_filters(compression, _GZIP_LEVEL_PIXELS) if direct else filters)}  # fmt: skip
            pool = self._get_pool if direct else None
            self._index = _PixelColumn(
                f.create_dataset(INDEX, shape=(0,), dtype=np.int32, **big), np.int32, pool
            )
            # gzip: the values as they are (see _GZIP_LEVEL_PIXELS); lzf: filtered as all
            plain = {
                "chunks": (_CHUNK_ENTRIES,),
                "maxshape": (None,),
                **({} if direct else filters),
            }
            self._value = _PixelColumn(
                f.create_dataset(VALUE, shape=(0,), dtype=np.float32, **plain), np.float32, None
            )
            self._event_index = f.create_dataset(
                "event_index", shape=(0,), dtype=np.int64, **self._small
            )
            self._source = f.create_dataset("source", shape=(0,), dtype=np.int32, **self._small)
            json_keys = []
            for key, value in (attrs or {}).items():
                if isinstance(value, str | int | float | bool | np.integer | np.floating):
                    f.attrs[key] = value
                else:
                    f.attrs[key] = _json(value)
                    json_keys.append(key)
            from .._version import __version__

            f.attrs["kind"] = "images"
            f.attrs["layout"] = "sparse"
            f.attrs["image_shape"] = np.asarray(self.item_shape, dtype=np.int64)
            f.attrs["channels"] = json.dumps(channels)
            f.attrs["inputs"] = json.dumps(self.inputs)
            f.attrs["poetml_version"] = __version__
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["json_attrs"] = json.dumps(json_keys)
        except BaseException:
            self.abort()
            raise

    def _get_pool(self) -> Any:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="poetml-deflate")
        return self._pool

    def _shutdown_pool(self) -> None:
        for col in (getattr(self, "_index", None), getattr(self, "_value", None)):
            if col is not None:
                col.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

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

    def append(
        self,
        data: SparseImages | np.ndarray,
        event_index: np.ndarray | Sequence[int],
        source_id: int | np.ndarray | Sequence[int],
        labels: np.ndarray | Sequence[int] | int | None = None,
    ) -> None:
        """Append ``len(data)`` events (see :meth:`ShardWriter.append
        <poetml.datasets.hdf5.ShardWriter.append>`)."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        if not isinstance(data, SparseImages):
            data = _to_sparse(np.asarray(data), self.path, self.item_shape)
        if data.shape != self.item_shape:
            raise ValueError(
                f"{self.path}: images of shape {data.shape} per event, the file holds "
                f"{self.item_shape}"
            )
        n = data.n_events
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
        self, data: SparseImages, event_index: np.ndarray, source: np.ndarray, labels: Any, n: int
    ) -> None:
        lo, hi = self.n_events, self.n_events + n
        first = int(data.offsets[0])
        nnz = int(data.offsets[-1]) - first
        e0, e1 = self.n_entries, self.n_entries + nnz
        self._index.append(data.index[first : first + nnz])
        self._value.append(data.values[first : first + nnz])
        for col in (self._index, self._value):
            col.drain(self._threads * 2)
        self._offsets.resize(hi + 1, axis=0)
        self._offsets[lo + 1 : hi + 1] = data.offsets[1:] - first + e0
        for ds, values in ((self._event_index, event_index), (self._source, source)):
            ds.resize(hi, axis=0)
            ds[lo:hi] = values
        if labels is not None:
            lab = np.broadcast_to(np.asarray(labels, dtype=np.int32), (n,))
            self._label_ds.resize(hi, axis=0)
            self._label_ds[lo:hi] = lab
        self.n_events, self.n_entries = hi, e1

    def close(self) -> Path:
        """Finish the file and rename it to its final name; returns that path."""
        if self._closed:
            return self.path
        try:
            self._index.finish()
            self._value.finish()
            self._shutdown_pool()
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


def _to_sparse(images: np.ndarray, path: Path, shape: tuple[int, ...]) -> SparseImages:
    if images.ndim != 4:
        raise ValueError(
            f"{path}: images must be (n, n_eta, n_phi, C) or SparseImages, got shape {images.shape}"
        )
    flat = images.reshape(len(images), int(np.prod(images.shape[1:])))
    event, pixel = np.nonzero(flat)
    offsets = np.zeros(len(images) + 1, dtype=np.int64)
    np.cumsum(np.bincount(event, minlength=len(images)), out=offsets[1:])
    return SparseImages(
        offsets,
        pixel.astype(np.int32),
        flat[event, pixel].astype(np.float32),
        tuple(int(s) for s in images.shape[1:]),  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------


def _need(f: Any, path: str, name: str) -> Any:
    if name not in f:
        raise ReadError(
            f"{path}: missing dataset {name!r}; datasets in the file: {', '.join(f.keys()) or 'none'}"
        )
    return f[name]


def image_shape(f: Any, path: str) -> tuple[int, int, int]:
    """The ``image_shape`` attribute of an open sparse file, checked."""
    raw = f.attrs.get("image_shape")
    shape = tuple(int(s) for s in np.asarray(raw).reshape(-1)) if raw is not None else ()
    if len(shape) != 3 or min(shape) < 1:
        raise ReadError(
            f"{path}: attribute 'image_shape' must be [n_eta, n_phi, C] with positive sizes, "
            f"got {raw!r}"
        )
    return shape


def sparse_events(f: Any, path: str, start: int, stop: int) -> SparseImages:
    """Events ``start:stop`` of the open sparse file ``f`` (offsets rebased to 0).

    Checks what it reads: offsets that decrease or point past the pixel datasets, or an
    index outside the image, raise :class:`~poetml.exceptions.ReadError` naming the file,
    the dataset and the value."""
    shape = image_shape(f, path)
    offsets = np.asarray(_need(f, path, OFFSETS)[start : stop + 1], dtype=np.int64)
    index_ds, value_ds = _need(f, path, INDEX), _need(f, path, VALUE)
    if len(index_ds) != len(value_ds):
        raise ReadError(
            f"{path}: {INDEX!r} holds {len(index_ds)} entries but {VALUE!r} {len(value_ds)}"
        )
    if len(offsets) == 0:
        offsets = np.zeros(1, np.int64)
    dec = np.flatnonzero(np.diff(offsets) < 0)
    if len(dec) or offsets[0] < 0 or offsets[-1] > len(index_ds):
        where = int(start + dec[0]) if len(dec) else start
        raise ReadError(
            f"{path}: dataset {OFFSETS!r} is corrupt near event {where}: offsets "
            f"{offsets[max(0, where - start) : where - start + 2].tolist()} (pixel datasets hold "
            f"{len(index_ds)} entries)"
        )
    lo, hi = int(offsets[0]), int(offsets[-1])
    index = np.asarray(index_ds[lo:hi], dtype=np.int32)
    values = np.asarray(value_ds[lo:hi], dtype=np.float32)
    per_event = int(np.prod(shape))
    bad = np.flatnonzero((index < 0) | (index >= per_event))
    if len(bad):
        raise ReadError(
            f"{path}: dataset {INDEX!r} entry {lo + int(bad[0])} holds pixel index "
            f"{int(index[bad[0]])}, outside an image of {shape} = {per_event} pixels"
        )
    return SparseImages(offsets - lo, index, values, shape)


def n_events(f: Any, path: str) -> int:
    return max(0, len(_need(f, path, OFFSETS)) - 1)


def read_sparse(
    path: str | os.PathLike[str], *, start: int | None = None, stop: int | None = None
) -> SparseImages:
    """Events ``start:stop`` of a sparse file as :class:`~poetml.images.SparseImages`
    (nothing densified)."""
    import h5py

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ReadError(f"no such file: {path}")
    with h5py.File(path, "r") as f:
        if not is_sparse(f):
            raise ReadError(
                f"{path}: not a sparse image file (no {OFFSETS!r}/{INDEX!r}/{VALUE!r}); "
                f"datasets in the file: {', '.join(f.keys()) or 'none'}"
            )
        lo, hi, _ = slice(start, stop).indices(n_events(f, path))
        return sparse_events(f, path, lo, max(lo, hi))


@dataclass(eq=False)
class SparseImageDataset:
    """A lazy, read-only view of the images of an open sparse file, sliced like the
    ``h5py.Dataset`` of a dense file: ``ds[a:b]`` (or an int, or sorted / unsorted integer
    indices) reads and densifies only those events.  ``ds.file`` is the open file (close
    it with ``ds.file.close()``); ``ds.sparse(a, b)`` returns events ``a:b`` undensified."""

    file: Any
    path: str

    def __post_init__(self) -> None:
        self.image_shape = image_shape(self.file, self.path)
        self._n = n_events(self.file, self.path)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._n, *self.image_shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return self._n

    def sparse(self, start: int, stop: int) -> SparseImages:
        lo, hi, _ = slice(start, stop).indices(self._n)
        return sparse_events(self.file, self.path, lo, max(lo, hi))

    def __getitem__(self, key: Any) -> np.ndarray:
        from ..images import densify

        if isinstance(key, slice) and key.step in (None, 1):
            return densify(self.sparse(key.start or 0, self._n if key.stop is None else key.stop))
        if isinstance(key, int | np.integer):
            i = int(key) + (self._n if key < 0 else 0)
            if not 0 <= i < self._n:
                raise IndexError(f"{self.path}: event {key} out of range for {self._n} events")
            return densify(self.sparse(i, i + 1))[0]
        idx = np.arange(self._n)[key] if isinstance(key, slice) else np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return take_dense(self, idx.astype(np.int64))


def take_dense(
    ds: SparseImageDataset, idx: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Dense images of events ``idx`` (any order, repeats allowed) of ``ds``: reads the
    range of entries that covers them once, densifies into ``out`` when given."""
    from ..images import densify

    if idx.ndim != 1:
        raise IndexError(f"{ds.path}: event indices must be 1-D, got shape {idx.shape}")
    if len(idx) and (idx.min() < -len(ds) or idx.max() >= len(ds)):
        raise IndexError(f"{ds.path}: event index out of range for {len(ds)} events")
    idx = np.where(idx < 0, idx + len(ds), idx)
    if len(idx) == 0:
        return np.zeros((0, *ds.image_shape), np.float32) if out is None else out
    lo = int(idx.min())
    return densify(ds.sparse(lo, int(idx.max()) + 1).take(idx - lo), out=out)


def fit_image_scaler(
    images: SparseImages, names: Sequence[str], *, quantile: float = 0.99
) -> Scaler:
    """:func:`poetml.datasets.scalers.fit_scaler` of sparse training images, without
    densifying them: per channel the ``quantile`` of the absolute non-zero pixel values
    (the same values the dense fit looks at, so the same scaler)."""
    from .scalers import fit_scaler

    return fit_scaler(images, "images", names, quantile=quantile)

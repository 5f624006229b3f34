"""HDF5 files of per-event columns (scores): one 1-D dataset per column.

One file holds the named columns (N,) (``bool`` columns stored as ``uint8`` 0/1, which any
HDF5 reader reads; h5py's own booleans are an HDF5 enum), ``event_index`` (N,) int64 (the
entry of each event in its source file), ``source`` (N,) int32 (index into the ``inputs``
attribute), and attributes ``kind`` (``scores``), ``columns`` (JSON list of the column
names, in order), ``inputs`` (JSON), ``poetml_version`` and the caller's ``attrs`` (JSON for
mappings and lists).  ``poetml batch score`` writes one per task.  Written under a temporary
name and renamed on success, like :class:`~poetml.datasets.hdf5.ShardWriter`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import temp_path, write_error
from ..exceptions import WriteError
from . import _h5io

__all__ = ["TABLE_KIND", "write_table"]

#: the ``kind`` attribute of a table file
TABLE_KIND = "scores"
_RESERVED = ("event_index", "source", "labels", "feature_names", "sources")


def write_table(
    path: str | os.PathLike[str],
    columns: Mapping[str, np.ndarray],
    *,
    event_index: np.ndarray | Sequence[int],
    source: int | np.ndarray | Sequence[int],
    attrs: Mapping[str, Any] | None = None,
    inputs: Sequence[str | os.PathLike[str]] = (),
    compression: str | None = "gzip",
) -> Path:
    """Write ``columns`` (name -> (N,) array) with their ``event_index`` and ``source`` file
    id(s) to ``path`` (through a temporary name); returns the path."""
    import h5py

    from .._mapping import to_mapping
    from .._version import __version__
    from .hdf5 import _filter_kwargs

    path = Path(path)
    event_index = np.asarray(event_index, dtype=np.int64).reshape(-1)
    n = len(event_index)
    cols = {}
    for name, values in columns.items():
        if name in _RESERVED:
            raise ValueError(f"{path}: column name {name!r} is reserved ({', '.join(_RESERVED)})")
        a = np.asarray(values)
        if a.shape != (n,):
            raise ValueError(f"{path}: column {name!r} has shape {a.shape}, not ({n},)")
        cols[name] = a.astype(np.uint8) if a.dtype == bool else a
    filters = _filter_kwargs(compression)
    chunks = (min(max(n, 1), 1 << 16),)
    tmp = temp_path(path)
    f: Any = None
    try:
        f = h5py.File(tmp, "w")
        for name, a in cols.items():
            f.create_dataset(name, data=a, chunks=chunks, maxshape=(None,), **filters)
        f.create_dataset("event_index", data=event_index, chunks=chunks, maxshape=(None,),
                         **filters)  # fmt: skip
        f.create_dataset(
            "source",
            data=np.broadcast_to(np.asarray(source, dtype=np.int32), (n,)),
            chunks=chunks,
            maxshape=(None,),
            **filters,
        )
        json_keys = []
        for key, value in (attrs or {}).items():
            if isinstance(value, str | int | float | bool | np.integer | np.floating):
                f.attrs[key] = value
            else:
                f.attrs[key] = json.dumps(to_mapping(value), sort_keys=True)
                json_keys.append(key)
        f.attrs["kind"] = TABLE_KIND
        f.attrs["columns"] = json.dumps(list(cols))
        f.attrs["inputs"] = json.dumps([os.fspath(p) for p in inputs])
        f.attrs["n_events"] = n
        f.attrs["poetml_version"] = __version__
        f.attrs["json_attrs"] = json.dumps(json_keys)
        _h5io.finish(f, tmp, path)
    except BaseException as exc:
        _h5io.discard(f)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise write_error(path, exc) from exc
        raise
    return path

"""Finishing and discarding an HDF5 file being written (shared by the dense and sparse
writers): the steps that keep a full disk from crashing the interpreter."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

from .._atomic import commit

__all__ = ["discard", "finish"]


def _os_error(exc: BaseException) -> OSError | None:
    """The OS error inside an HDF5 write failure (``... errno = 27, error message = 'File
    too large' ...``), or None."""
    m = re.search(r"errno = (\d+)", str(exc))
    return OSError(int(m.group(1)), os.strerror(int(m.group(1)))) if m else None


def finish(f: Any, tmp_path: Path, path: Path) -> None:
    """Flush and close the open ``h5py.File`` ``f`` (written at ``tmp_path``) and rename it
    to ``path``.  The flush comes while the file is still open: a full disk (or a file-size
    limit) fails there, where :func:`discard` can still detach HDF5 from the file; failing
    inside close would leave HDF5 a file it cannot close, and crash the interpreter later.
    A failed write raises OSError (HDF5's RuntimeError carrying an errno becomes one); a
    signal the command line got raises (:func:`poetml._atomic.check_signalled`) before the
    rename, and the caller deletes the file."""
    try:
        f.flush()
        f.close()
    except RuntimeError as exc:
        err = _os_error(exc)
        if err is None:
            raise
        raise err from exc
    commit(tmp_path, path)


def discard(f: Any) -> None:
    """Close ``f`` (an ``h5py.File`` or None) without writing anything: HDF5's descriptor is
    pointed at /dev/null first, so closing a file being deleted cannot fail on a full disk
    (HDF5 left with a file it cannot close crashes the interpreter later).  HDF5 then fails to
    extend /dev/null to its end of allocation: that error, on a discarded file, is ignored."""
    if f is None or not f.id.valid:
        return
    with contextlib.suppress(Exception):
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, f.id.get_vfd_handle())
        finally:
            os.close(null)
    with contextlib.suppress(Exception):
        f.close()

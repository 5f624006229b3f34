"""What a poetml HDF5 file holds (either image layout, features, a batch's dataset.h5),
as a JSON-ready dict: ``poetml inspect OUT.h5`` prints it."""

from __future__ import annotations

import json
import os
from typing import Any

from ..exceptions import ReadError

__all__ = ["HDF5_MAGIC", "describe", "is_hdf5"]

#: The signature an HDF5 file starts with (at offset 0 for the files poetml writes).
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a local file starting with the HDF5 signature."""
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_MAGIC
    except OSError:
        return False


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``path``, ``size_bytes``, ``kind`` (images / features), ``layout`` (sparse / dense),
    ``n_events``, ``shape`` (one event), ``channels`` or ``feature_names``, ``n_pixels``
    (sparse: stored non-zero pixels), ``bytes_per_event``, ``inputs`` and ``datasets``
    (``{name: {"shape", "dtype", "virtual"}}``)."""
    import h5py

    from . import sparse

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ReadError(f"no such file: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ReadError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {exc}") from exc
    with f:
        datasets = {
            k: {"shape": list(v.shape), "dtype": str(v.dtype), "virtual": bool(v.is_virtual)}
            for k, v in f.items()
            if isinstance(v, h5py.Dataset)
        }
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}

        def js(key: str) -> Any:
            v = attrs.get(key)
            try:
                return json.loads(v) if isinstance(v, str) else None
            except json.JSONDecodeError:
                return None

        info: dict[str, Any] = {
            "path": path,
            "size_bytes": os.path.getsize(path),
            "kind": None,
            "layout": None,
            "n_events": None,
            "shape": None,
            "channels": js("channels"),
            "feature_names": None,
            "n_pixels": None,
            "bytes_per_event": None,
            "inputs": js("inputs") or [],
            "datasets": datasets,
        }
        if sparse.is_sparse(f):
            shape = sparse.image_shape(f, path)
            info.update(kind="images", layout="sparse", shape=list(shape),
                        n_events=sparse.n_events(f, path), n_pixels=len(f[sparse.INDEX]))  # fmt: skip
        else:
            for kind in ("images", "features"):
                if kind in f:
                    ds = f[kind]
                    info.update(kind=kind, layout="dense", shape=list(ds.shape[1:]),
                                n_events=int(ds.shape[0]))  # fmt: skip
                    break
            if "feature_names" in f:
                info["feature_names"] = [
                    n.decode() if isinstance(n, bytes) else str(n) for n in f["feature_names"][()]
                ]
    if info["kind"] is None:
        raise ReadError(
            f"{path}: an HDF5 file, but not a poetml dataset (no images, features or sparse "
            f"image datasets); datasets in the file: {', '.join(datasets) or 'none'}"
        )
    if info["n_events"]:
        info["bytes_per_event"] = info["size_bytes"] / info["n_events"]
    return info

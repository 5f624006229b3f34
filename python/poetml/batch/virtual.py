"""``OUT/dataset.h5``: HDF5 virtual datasets presenting every finished shard as one."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from .._atomic import commit, temp_path
from .inputs import KINDS
from .manifest import DATASET_NAME, BatchError, Manifest

__all__ = ["write_virtual_dataset"]


def write_virtual_dataset(out_dir: str | os.PathLike[str]) -> Path:
    """Write ``out_dir/dataset.h5`` over every finished shard, in (file, entry) order.

    ``images`` or ``features``, ``event_index`` and ``labels`` are HDF5 virtual datasets
    mapped onto the shards: nothing is copied, and the mapping uses paths *relative* to
    the folder, so the output folder can be moved as a whole.  ``source`` (the file id of
    each event, an index into the ``inputs`` attribute and the ``sources`` table) is a real,
    compressed int32 column: the shards each number their one file 0, so the batch-wide
    ids cannot be a view of theirs (constant runs compress to almost nothing).
    Sparse image shards (:mod:`poetml.datasets.sparse`) give a sparse file:
    ``pixel_index`` and ``pixel_value`` are virtual datasets concatenating the shards'
    entries, and ``image_offsets`` a real int64 dataset holding every shard's offsets
    rebased onto that concatenation (read from the shards, 8 bytes an event).
    Score shards (kind ``scores``, :mod:`poetml.datasets.table`) give one virtual dataset
    per column (``firmware_score``, ``trigger``, ...), listed in the ``columns`` attribute.
    ``feature_names`` and the attributes (spec, channels, poetml version, image shape and
    layout) come from the first shard; ``complete`` says whether every task of the batch is in.

    Returns the path written (through a temporary name, renamed at the end).
    """
    import h5py
    import numpy as np

    from ..datasets import sparse

    out = Path(out_dir).absolute()
    man = Manifest(out, create=False)
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
        is_sparse = sparse.is_sparse(first)
        main = [sparse.INDEX, sparse.VALUE] if is_sparse else [kind]
        if kind == "scores":  # a table (poetml.datasets.table): its columns
            main = [str(c) for c in json.loads(first.attrs.get("columns", "[]"))]
        for k in main:
            if k not in first:
                raise BatchError(f"{out / str(done[0].shard)} holds no {k!r} dataset")
        virtual = [k for k in (*main, "event_index", "labels") if k in first]
        layouts = {k: (first[k].shape[1:], first[k].dtype) for k in virtual}
        feature_names = first["feature_names"][()] if "feature_names" in first else None
        attrs = dict(first.attrs)
    per_event = [k for k in virtual if k not in (sparse.INDEX, sparse.VALUE)]
    # sparse shards: the pixel datasets are concatenated (nnz entries per shard, from its
    # offsets) and the offsets, rebased onto the concatenation, are a real dataset
    offsets = np.zeros(n_total + 1 if is_sparse else 0, dtype=np.int64)
    nnz = []
    pos = 0
    for t in done:
        n = int(t.n_events or 0)
        if is_sparse:
            shard = out / str(t.shard)
            with h5py.File(shard, "r") as f:
                own = np.asarray(f[sparse.OFFSETS][()], dtype=np.int64)
                if len(own) != n + 1 or own[0] != 0 or len(f[sparse.INDEX]) != own[-1]:
                    raise BatchError(
                        f"{shard}: {sparse.OFFSETS!r} holds {len(own)} offsets ending at "
                        f"{own[-1] if len(own) else None} for {n} events and "
                        f"{len(f[sparse.INDEX])} pixels; the shard does not match the manifest"
                    )
            offsets[pos + 1 : pos + n + 1] = own[1:] + offsets[pos]
            nnz.append(int(own[-1]))
        pos += n
    n_entries = int(offsets[-1]) if is_sparse else 0
    length = {k: (n_entries if k in (sparse.INDEX, sparse.VALUE) else n_total) for k in virtual}
    vls = {k: h5py.VirtualLayout(shape=(length[k], *s), dtype=d) for k, (s, d) in layouts.items()}
    source = np.empty(n_total, dtype=np.int32)
    pos = 0
    entry = 0
    for i, t in enumerate(done):
        n = int(t.n_events or 0)
        for k in per_event:
            s, d = layouts[k]
            vls[k][pos : pos + n] = h5py.VirtualSource(str(t.shard), k, shape=(n, *s), dtype=d)
        if is_sparse:
            m = nnz[i]
            for k in (sparse.INDEX, sparse.VALUE) if m else ():  # a shard without pixels
                s, d = layouts[k]
                vls[k][entry : entry + m] = h5py.VirtualSource(str(t.shard), k, shape=(m,), dtype=d)
            entry += m
        source[pos : pos + n] = t.source_id
        pos += n
    n_ids = max((int(r["id"]) for r in sources), default=-1) + 1
    source_paths = [""] * n_ids
    for r in sources:
        source_paths[int(r["id"])] = r["path"]
    complete = len(done) == len(all_tasks) and all(r["status"] == "counted" for r in sources)

    final = out / DATASET_NAME
    tmp = temp_path(final)
    try:
        # libver latest: dense attribute storage, so thousands of inputs fit in "inputs"
        with h5py.File(tmp, "w", libver="latest") as f:
            for k, vl in vls.items():
                f.create_virtual_dataset(k, vl)
            if is_sparse:
                f.create_dataset(
                    sparse.OFFSETS,
                    data=offsets,
                    chunks=(min(len(offsets), 1 << 16),),
                    compression="gzip",
                    shuffle=True,
                )
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
        commit(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return final

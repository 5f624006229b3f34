"""Batch processing on Dask: many ntuples -> sharded HDF5 datasets, resumable.

The work is split into *tasks*, one per (file, entry range) of ``step_size`` entries.
Each task runs on a ``dask.distributed`` worker: it reads its entries
(:func:`poetml.reading.read`), runs the C++ kernel (:func:`poetml.rasterize` or
:func:`poetml.build_features`) with ``n_threads`` threads (1 by default, so that workers do
not oversubscribe the cores) and writes one HDF5 shard through
:func:`poetml.datasets.convert.write_batch` (the loop of ``poetml images`` too) into a
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
that present all finished shards as one array each (``images`` or ``features``, for
sparse image shards, the default, ``pixel_index`` and ``pixel_value`` with a real
``image_offsets`` column rebased across the shards; ``event_index``, ``labels``) without
copying any data, a small ``source`` column (the batch-wide file id of each event) and a
``sources`` table (file id -> path).  It reads like
any other poetml dataset (:func:`poetml.datasets.hdf5.load`).

Kind ``scores`` (``poetml batch score``) runs a *scorer* given by the caller instead of a
kernel: :func:`poetml.firmware.load_scorer` (the model directory's inputs through the
firmware's bit-exact emulator), whose shards (:mod:`poetml.datasets.table`) hold
``firmware_score``, ``trigger``, ``event_index`` and ``source``, and whose identity (the
model directory's and the emulator export's SHA-256, the input spec) is in the fingerprint.
This package never imports the firmware layer: the scorer is an object it is handed.

Input paths may be local files, glob patterns or ``root://`` URLs; the latter need the
``xrootd`` extra (``fsspec-xrootd``).

The package, one concern a module: :mod:`~poetml.batch.inputs` (patterns -> files, entry
ranges, the run's fingerprint), :mod:`~poetml.batch.manifest` (the output folder: SQLite
manifest, lock, shard names), :mod:`~poetml.batch.tasks` (what runs on a worker),
:mod:`~poetml.batch.cluster` (the Dask client), :mod:`~poetml.batch.runner` (:func:`run`:
submit and record), :mod:`~poetml.batch.virtual` (``dataset.h5``) and
:mod:`~poetml.batch.state` (:func:`status`).  Dask is imported only when a run starts.
"""

from __future__ import annotations

from .inputs import KINDS, expand_inputs, plan_ranges, spec_fingerprint
from .manifest import DATASET_NAME, MANIFEST_NAME, SHARD_DIR, BatchError, TaskRecord
from .runner import BatchResult, run
from .state import Status, status
from .tasks import count_entries, process_task
from .virtual import write_virtual_dataset

__all__ = [
    "DATASET_NAME",
    "KINDS",
    "MANIFEST_NAME",
    "SHARD_DIR",
    "BatchError",
    "BatchResult",
    "Status",
    "TaskRecord",
    "count_entries",
    "expand_inputs",
    "plan_ranges",
    "process_task",
    "run",
    "spec_fingerprint",
    "status",
    "write_virtual_dataset",
]

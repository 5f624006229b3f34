"""Datasets on disk: HDF5 files of event images or feature vectors (:mod:`.hdf5`).

``h5py`` is imported only when a file is written or read.
"""

from __future__ import annotations

from .hdf5 import KINDS, Dataset, ShardWriter, load, open_dataset, write

__all__ = ["KINDS", "Dataset", "ShardWriter", "load", "open_dataset", "write"]

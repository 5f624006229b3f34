"""Checks of the arrays the metrics take: scores, class labels, binary labels, matrices.
Each raises ``ValueError`` naming the argument and the first bad entry."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..rates import check_scores as _scores

__all__ = ["_binary_labels", "_int_labels", "_matrix", "_scores"]


def _int_labels(values: Any, name: str, n_classes: int | None = None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold integer class indices, got non-integer values")
    elif arr.dtype.kind == "b":
        pass
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if n_classes is not None and len(arr):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= n_classes:
            bad = arr[(arr < 0) | (arr >= n_classes)][0]
            raise ValueError(
                f"{name} has class index {int(bad)} outside 0..{n_classes - 1} "
                f"({n_classes} class names given)"
            )
    return arr


def _binary_labels(values: Any, name: str = "labels") -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    uniq = np.unique(arr)
    if not np.all(np.isin(uniq, (0, 1))):
        raise ValueError(f"{name} must be 0 (background) or 1 (signal); found values {uniq[:10]}")
    return arr.astype(bool)


def _matrix(x: Any, name: str = "x") -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        arr = arr.reshape(len(arr), -1) if arr.ndim > 2 else arr
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (N, D) (or (N, ...) to flatten), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} has non-finite values (first at row {int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])})"
        )
    return arr

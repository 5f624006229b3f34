"""Stratified train/validation/test splits by seed, and class balance.

:func:`stratified_split` shuffles each class with ``numpy.random.default_rng(seed)`` and
cuts it by the fractions, so every split holds every class in the same proportions and the
same ``(labels, fractions, seed)`` always gives the same split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Split", "class_weights", "resample_balanced", "split_weights", "stratified_split"]


@dataclass(frozen=True, eq=False)
class Split:
    """Sorted event indices of each part."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 1
) -> Split:
    """Split events into train/val/test, stratified by ``labels``.

    Raises ValueError when the fractions are not 3 non-negative numbers summing to 1 or a
    class has too few events to appear in every non-empty part.
    """
    labels = np.asarray(labels)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must be 3 numbers >= 0 summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    need = sum(1 for f in fractions if f > 0)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < need:
            raise ValueError(
                f"class {c} has {len(idx)} event(s): too few for a {need}-way split "
                f"{tuple(fractions)}"
            )
        idx = rng.permutation(idx)
        n = len(idx)
        n_train = round(fractions[0] * n)
        n_val = round(fractions[1] * n)
        # every non-empty part gets at least one event of every class
        if fractions[1] > 0:
            n_val = max(n_val, 1)
        if fractions[2] > 0:
            n_train = min(n_train, n - n_val - 1)
        n_train = max(n_train, 1 if fractions[0] > 0 else 0)
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train : n_train + n_val])
        parts[2].append(idx[n_train + n_val :])
    train, val, test = (np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts)
    return Split(train, val, test)


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """Balanced weights ``n / (n_classes * count_c)`` (mean weight 1 over the events)."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=n_classes)
    missing = [c for c in range(n_classes) if counts[c] == 0]
    if missing:
        raise ValueError(f"classes {missing} have no training events")
    return {c: float(len(labels) / (n_classes * counts[c])) for c in range(n_classes)}


def resample_balanced(indices: np.ndarray, labels: np.ndarray, seed: int = 1) -> np.ndarray:
    """Oversample ``indices`` (with replacement) so each class has as many as the largest."""
    labels = np.asarray(labels)
    indices = np.asarray(indices)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels[indices])
    n_max = max(int(np.sum(labels[indices] == c)) for c in classes)
    out = []
    for c in classes:
        idx = indices[labels[indices] == c]
        extra: np.ndarray | list[int] = (
            rng.choice(idx, n_max - len(idx), replace=True) if n_max > len(idx) else []
        )
        out.append(np.concatenate([idx, np.asarray(extra, dtype=idx.dtype)]))
    return rng.permutation(np.concatenate(out))


def split_weights(weights: np.ndarray, groups: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The weights of the events ``idx`` (one split) rescaled per group (process) so each
    group's split sums to the group's total over all events: a test split of 20 % of each
    process still stands for the whole cross section, so rates from it need no factor."""
    w = np.asarray(weights, np.float64)
    g = np.asarray(groups)
    out = w[idx].copy()
    for k in np.unique(g[idx]):
        sel = g[idx] == k
        part = float(out[sel].sum())
        if part != 0:
            out[sel] *= float(w[g == k].sum()) / part
    return out

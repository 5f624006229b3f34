"""Latent space: principal components and k-means clusters (scikit-learn), and the table
of clusters against true classes.  scikit-learn is imported when a fit runs."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._optional import require
from .inputs import _int_labels, _matrix

__all__ = ["KMeansResult", "PCAResult", "cluster_table", "fit_clusters", "kmeans", "pca"]


@dataclass(frozen=True)
class PCAResult:
    """A fitted principal-component analysis.

    ``components`` is ``(n_components, D)`` (unit rows, sign fixed so that the largest
    absolute entry of each is positive), ``mean`` the training mean, ``explained_variance``
    the variance along each component (``ddof=1``) and ``explained_variance_ratio`` its
    fraction of the total; ``scores`` holds the training points projected, ``(N, n_components)``.
    """

    components: np.ndarray
    mean: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    scores: np.ndarray

    def transform(self, x: Any) -> np.ndarray:
        """Project new points ``(M, D)`` onto the components."""
        arr = _matrix(x)
        if arr.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"x has {arr.shape[1]} features, the PCA was fitted on {self.mean.shape[0]}"
            )
        return (arr - self.mean) @ self.components.T


def pca(x: Any, n_components: int = 2) -> PCAResult:
    """Principal-component analysis of ``x`` ``(N, D)`` (higher-rank inputs are flattened
    per row): ``sklearn.decomposition.PCA`` with the full SVD of the centred data."""
    arr = _matrix(x)
    n, d = arr.shape
    if not 1 <= n_components <= min(n, d):
        raise ValueError(f"n_components must be in 1..min(N, D) = {min(n, d)}, got {n_components}")
    decomposition = require("sklearn.decomposition", "PCA")
    fit = decomposition.PCA(n_components, svd_solver="full").fit(arr)
    comps = np.array(fit.components_, dtype=np.float64)
    flip = np.sign(comps[np.arange(n_components), np.argmax(np.abs(comps), axis=1)])
    flip[flip == 0] = 1.0
    comps = comps * flip[:, None]
    mean = np.asarray(fit.mean_, dtype=np.float64)
    var = np.asarray(fit.explained_variance_, dtype=np.float64)
    ratio = np.nan_to_num(np.asarray(fit.explained_variance_ratio_, dtype=np.float64))
    return PCAResult(comps, mean, var, ratio, (arr - mean) @ comps.T)


@dataclass(frozen=True)
class KMeansResult:
    """k-means clustering: ``centers`` ``(k, D)``, ``labels`` ``(N,)`` cluster of each point,
    ``inertia`` (sum of squared distances to the assigned centre) and ``n_iter``."""

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int

    def predict(self, x: Any) -> np.ndarray:
        """Nearest centre of each new point."""
        return _sqdist(_matrix(x), self.centers).argmin(axis=1)


def _sqdist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    d = (x * x).sum(axis=1)[:, None] - 2.0 * x @ c.T + (c * c).sum(axis=1)[None, :]
    return np.maximum(d, 0.0)


def kmeans(
    x: Any, k: int, seed: int = 0, *, n_init: int = 4, max_iter: int = 300, tol: float = 1e-4
) -> KMeansResult:
    """k-means clustering: ``sklearn.cluster.KMeans`` (Lloyd's algorithm, k-means++
    initialisation, ``random_state=seed``), keeping the best of ``n_init`` initialisations.

    Each run stops when the centres move by less than ``tol`` times the mean feature
    variance, or after ``max_iter`` iterations.
    """
    arr = _matrix(x)
    n = arr.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..N = {n}, got {k}")
    cluster = require("sklearn.cluster", "k-means")
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():  # fewer distinct points than k: k-means still answers
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        fit = cluster.KMeans(
            n_clusters=k,
            init="k-means++",
            n_init=max(1, n_init),
            max_iter=max_iter,
            tol=tol,
            random_state=seed,
        ).fit(arr)
    return KMeansResult(
        np.asarray(fit.cluster_centers_, dtype=np.float64),
        np.asarray(fit.labels_, dtype=np.int64),
        float(fit.inertia_),
        int(fit.n_iter_),
    )


def fit_clusters(x: Any, k: int, max_fit_points: int = 20_000, seed: int = 0) -> KMeansResult:
    """:func:`kmeans` fitted on at most ``max_fit_points`` random points (``seed``), with the
    cluster of every point of ``x``."""
    arr = _matrix(x)
    if len(arr) <= max_fit_points:
        return kmeans(arr, k, seed=seed)
    rng = np.random.default_rng(seed)
    fit = kmeans(arr[rng.choice(len(arr), max_fit_points, replace=False)], k, seed=seed)
    return replace(fit, labels=fit.predict(arr))


def cluster_table(
    labels: Any, clusters: Any, class_names: Sequence[str], n_clusters: int | None = None
) -> list[list[Any]]:
    """Rows ``["cluster", class1, class2, ..., "purity"]`` counting true classes per
    cluster; purity = fraction of the cluster's events in its most common class."""
    names = list(class_names)
    t = _int_labels(labels, "labels", len(names))
    cl = _int_labels(clusters, "clusters")
    if len(t) != len(cl):
        raise ValueError(f"labels has {len(t)} entries but clusters has {len(cl)}")
    k = int(n_clusters if n_clusters is not None else (cl.max() + 1 if len(cl) else 0))
    counts = np.zeros((k, len(names)), dtype=np.int64)
    np.add.at(counts, (cl, t), 1)
    rows: list[list[Any]] = [["cluster", *names, "purity"]]
    for j in range(k):
        tot = counts[j].sum()
        rows.append([j, *counts[j].tolist(), float(counts[j].max() / tot) if tot else None])
    return rows

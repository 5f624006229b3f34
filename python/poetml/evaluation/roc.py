"""ROC curves and areas (scikit-learn), and thinning of a curve for JSON files and plots.

An event is *selected* when ``score >= threshold``.  Events with equal scores are selected
together, so ties produce a single (diagonal) step of the curve and the AUC equals the
Mann-Whitney probability ``P(s_sig > s_bkg) + 0.5 P(s_sig == s_bkg)``.  scikit-learn is
imported when a curve is computed, not with the package.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._atomic import to_jsonable
from .._optional import require
from .inputs import _binary_labels, _scores

__all__ = ["auc", "roc_auc", "roc_curve", "roc_from_scores", "thin_curve"]


def _metrics() -> Any:
    return require("sklearn.metrics", "ROC curves and classification metrics")


def roc_curve(
    labels: Any, scores: Any, sample_weight: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receiver operating characteristic of ``scores`` for binary ``labels`` (1 = signal).

    Returns ``(fpr, tpr, thresholds)``: one point per distinct score, ordered by decreasing
    threshold, with ``fpr[i]``/``tpr[i]`` the background/signal fraction with
    ``score >= thresholds[i]``.  The first point is ``(0, 0)`` at ``threshold = +inf`` and the
    last ``(1, 1)``.  Tied scores form one point (see the module docstring); no point is
    dropped (``sklearn.metrics.roc_curve`` with ``drop_intermediate=False``).  Raises
    ``ValueError`` when either class is empty.
    """
    y = _binary_labels(labels)
    s = _scores(scores, "scores")
    if len(y) != len(s):
        raise ValueError(f"labels has {len(y)} entries but scores has {len(s)}")
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w is not None and len(w) != len(s):
        raise ValueError(f"sample_weight has {len(w)} entries but scores has {len(s)}")
    p = float(y.sum() if w is None else w[y].sum())
    n = float((~y).sum() if w is None else w[~y].sum())
    if p <= 0:
        raise ValueError("roc_curve needs at least one signal event (label 1); got none")
    if n <= 0:
        raise ValueError("roc_curve needs at least one background event (label 0); got none")
    fpr, tpr, thresholds = _metrics().roc_curve(
        y.astype(np.int8), s, sample_weight=w, drop_intermediate=False
    )
    return fpr, tpr, thresholds.astype(np.float64, copy=False)


def roc_from_scores(bkg_scores: Any, sig_scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`roc_curve` of background (label 0) against signal (label 1) scores."""
    b = _scores(bkg_scores, "background scores")
    s = _scores(sig_scores, "signal scores")
    labels = np.r_[np.zeros(len(b), np.int8), np.ones(len(s), np.int8)]
    return roc_curve(labels, np.r_[b, s])


def auc(x: Any, y: Any) -> float:
    """Area under the curve ``y(x)`` by the trapezoidal rule (``sklearn.metrics.auc``);
    ``x`` must be monotonic (either direction)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError(f"auc needs at least 2 points, got {len(x)}")
    dx = np.diff(x)
    if not (np.all(dx >= 0) or np.all(dx <= 0)):
        raise ValueError("x must be monotonic (increasing or decreasing) to compute an area")
    return float(_metrics().auc(x, y))


def roc_auc(labels: Any, scores: Any, sample_weight: Any = None) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties count one half)."""
    fpr, tpr, _ = roc_curve(labels, scores, sample_weight)
    return auc(fpr, tpr)


def thin_curve(
    fpr: Any, tpr: Any, thresholds: Any = None, max_points: int = 400, min_fpr: float = 1e-7
) -> tuple[np.ndarray, ...]:
    """At most about ``max_points`` points of a ROC curve, for JSON files and plots.

    Points are kept where the curve crosses a grid that is half linear in FPR and half
    logarithmic (down to ``min_fpr``), so both linear and log-FPR plots stay faithful; the
    first and last points and the first point with ``fpr > 0`` are always kept.  The area is
    *not* meant to be recomputed from the thinned curve.  Returns ``(fpr, tpr)`` or
    ``(fpr, tpr, thresholds)``.
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    if len(fpr) <= max_points:
        keep = np.arange(len(fpr))
    else:
        half = max(max_points // 2, 2)
        grid = np.r_[np.linspace(0.0, 1.0, half), np.logspace(np.log10(min_fpr), 0.0, half)]
        idx = np.searchsorted(fpr, grid, side="left")
        idx = np.clip(np.r_[idx, idx - 1], 0, len(fpr) - 1)
        first_pos = np.searchsorted(fpr, 0.0, side="right")
        extra = [0, len(fpr) - 1] + ([int(first_pos)] if first_pos < len(fpr) else [])
        keep = np.unique(np.r_[idx, extra])
    out: tuple[np.ndarray, ...] = (fpr[keep], tpr[keep])
    if thresholds is not None:
        out = (*out, np.asarray(thresholds, dtype=np.float64)[keep])
    return out


def roc_dict(fpr: np.ndarray, tpr: np.ndarray, thr: np.ndarray, max_points: int) -> dict:
    """A thinned curve as JSON-ready lists (``thresholds[0]`` = +inf becomes ``None``)."""
    f, t, th = thin_curve(fpr, tpr, thr, max_points=max_points)
    return {"fpr": f.tolist(), "tpr": t.tolist(), "thresholds": to_jsonable(th)}

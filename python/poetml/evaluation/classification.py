"""Metrics of a multi-class classifier: accuracy, precision/recall/F1 and the confusion
matrix (scikit-learn), one-vs-rest ROC curves and AUCs.

``y_true`` holds integer class indices ``0 .. C-1``; predictions are either class
probabilities ``(N, C)`` (the prediction is the arg-max) or integer labels.  Precision,
recall and F1 are scikit-learn's with ``zero_division=0``; the macro average is the
unweighted mean over classes (the macro F1 is the mean of the per-class F1, not the F1 of
the macro precision and recall).  The confusion matrix has the true class on rows and the
predicted class on columns; the normalised matrix divides each row by its number of true
events (row sums are 1, the diagonal is the recall).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._atomic import to_jsonable
from .inputs import _int_labels, _scores
from .roc import _metrics, auc, roc_curve, roc_dict

__all__ = ["classification_metrics", "confusion_matrix"]


def _predictions(y_pred: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(predicted labels, probabilities or None) from probabilities or labels."""
    arr = np.asarray(y_pred)
    if arr.ndim == 2:
        if arr.shape[1] != n_classes:
            raise ValueError(
                f"predictions have {arr.shape[1]} columns but {n_classes} class names were given"
            )
        probs = arr.astype(np.float64)
        bad = ~np.isfinite(probs)
        if bad.any():
            i = int(np.flatnonzero(bad.any(axis=1))[0])
            raise ValueError(f"predictions have non-finite values; first in row {i}: {arr[i]}")
        return probs.argmax(axis=1), probs
    if arr.ndim == 1:
        if arr.dtype.kind in "iub":
            return _int_labels(arr, "y_pred", n_classes), None
        if arr.dtype.kind == "f" and n_classes == 2:
            p1 = _scores(arr, "y_pred (probability of class 1)")
            return (p1 >= 0.5).astype(np.int64), np.c_[1.0 - p1, p1]
        raise ValueError(
            "1-D y_pred must be integer class labels (or, for 2 classes, the probability of "
            f"class 1); got dtype {arr.dtype} with {n_classes} classes"
        )
    raise ValueError(f"y_pred must be (N, C) probabilities or (N,) labels, got shape {arr.shape}")


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Counts ``(C, C)``: row = true class, column = predicted class (int64)."""
    t = _int_labels(y_true, "y_true", n_classes)
    p = _int_labels(y_pred, "y_pred", n_classes)
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} entries but y_pred has {len(p)}")
    if len(t) == 0:
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    cm = _metrics().confusion_matrix(t, p, labels=np.arange(n_classes))
    return cm.astype(np.int64, copy=False)


def classification_metrics(
    y_true: Any,
    y_prob_or_pred: Any,
    class_names: Sequence[str],
    *,
    max_roc_points: int = 400,
) -> dict[str, Any]:
    """Accuracy, per-class and macro precision/recall/F1, confusion matrices and
    one-vs-rest ROC/AUC of a multi-class classifier.

    ``y_prob_or_pred`` is ``(N, C)`` class probabilities (ROC curves are then computed, one
    class against the rest, using that class' probability as the score) or ``(N,)`` integer
    predicted labels (no ROC; the AUC entries are ``None``).  Returns a JSON-ready dict::

        {"kind": "classification", "class_names", "n_events", "accuracy",
         "per_class": {name: {"precision", "recall", "f1", "support", "auc"}},
         "macro": {"precision", "recall", "f1", "auc"},
         "weighted": {"precision", "recall", "f1"},
         "confusion_matrix": {"counts": [[..]], "normalized": [[..]]},   # rows = true class
         "roc": {name: {"fpr", "tpr", "thresholds"}} or None, "warnings": [...]}

    Definitions follow scikit-learn (``zero_division=0``); a class absent from ``y_true``
    has recall 0 and AUC ``None`` (listed in ``warnings``) and the macro AUC averages the
    classes where it is defined.
    """
    names = [str(c) for c in class_names]
    c = len(names)
    if c < 2:
        raise ValueError(f"classification needs at least 2 class names, got {names}")
    t = _int_labels(y_true, "y_true", c)
    pred, probs = _predictions(y_prob_or_pred, c)
    if len(t) != len(pred):
        raise ValueError(f"y_true has {len(t)} entries but predictions have {len(pred)}")
    if len(t) == 0:
        raise ValueError("classification_metrics needs at least one event")
    cm = confusion_matrix(t, pred, c)
    tp = np.diag(cm).astype(np.float64)
    precision, recall, f1, sup = _metrics().precision_recall_fscore_support(
        t, pred, labels=np.arange(c), zero_division=0
    )
    support = sup.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(support[:, None] > 0, cm / support[:, None], 0.0)
    warn_list: list[str] = []
    aucs: list[float | None] = [None] * c
    roc: dict[str, dict | None] | None = None
    if probs is not None:
        roc = {}
        for i, name in enumerate(names):
            is_i = t == i
            if is_i.all() or not is_i.any():
                warn_list.append(
                    f"class {name!r}: one-vs-rest ROC undefined "
                    f"({'no' if not is_i.any() else 'only'} events of this class)"
                )
                roc[name] = None
                continue
            fpr, tpr, thr = roc_curve(is_i.astype(np.int8), probs[:, i])
            aucs[i] = auc(fpr, tpr)
            roc[name] = roc_dict(fpr, tpr, thr, max_roc_points)
    for i, name in enumerate(names):
        if support[i] == 0:
            warn_list.append(f"class {name!r} has no true events: its recall is set to 0")
    defined = [a for a in aucs if a is not None]
    total = support.sum()
    result = {
        "kind": "classification",
        "class_names": names,
        "n_events": len(t),
        "accuracy": float(tp.sum() / total),
        "per_class": {
            name: {
                "precision": precision[i],
                "recall": recall[i],
                "f1": f1[i],
                "support": int(support[i]),
                "auc": aucs[i],
            }
            for i, name in enumerate(names)
        },
        "macro": {
            "precision": precision.mean(),
            "recall": recall.mean(),
            "f1": f1.mean(),
            "auc": float(np.mean(defined)) if defined and probs is not None else None,
        },
        "weighted": {
            "precision": float(np.sum(precision * support) / total),
            "recall": float(np.sum(recall * support) / total),
            "f1": float(np.sum(f1 * support) / total),
        },
        "confusion_matrix": {"counts": cm, "normalized": norm},
        "roc": roc,
        "warnings": warn_list,
    }
    return to_jsonable(result)

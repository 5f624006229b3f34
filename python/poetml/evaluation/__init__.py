"""Physics evaluation of trained networks: arrays of labels and scores in, plain dicts out.

Nothing here imports TensorFlow: the models are evaluated elsewhere and this module gets
their predictions.  Every result is built from Python ``int``/``float``/``str``/``list``/
``dict`` (non-finite floats become ``None``) so it can be written with :func:`write_json`.

Conventions
-----------
* **Classification**: ``y_true`` holds integer class indices ``0 .. C-1``; predictions are
  either class probabilities ``(N, C)`` (the prediction is the arg-max) or integer labels.
  Precision, recall and F1 follow scikit-learn's definitions with ``zero_division=0``; the
  macro average is the unweighted mean over classes (the macro F1 is the mean of the
  per-class F1, not the F1 of the macro precision and recall).  The confusion matrix has
  the true class on rows and the predicted class on columns; the normalised matrix divides
  each row by its number of true events (row sums are 1, the diagonal is the recall).
* **ROC**: an event is *selected* when ``score >= threshold``.  Events with equal scores are
  selected together, so ties produce a single (diagonal) step of the curve and the AUC
  equals the Mann-Whitney probability ``P(s_sig > s_bkg) + 0.5 P(s_sig == s_bkg)``.
* **Anomaly detection / trigger working points**: an event is *selected* when
  ``score > threshold``, where the threshold is chosen on the background sample so that the
  selected background fraction does not exceed the target false-positive rate (FPR).  A
  trigger rate is ``rate = FPR x collision rate`` (40 MHz, the LHC bunch-crossing clock, by
  default, as in the CMS Level-1 anomaly-detection studies; the rate of *filled* bunch
  crossings is lower, about 30 MHz, and can be passed as ``collision_rate_mhz``).
* **Uncertainties**: binomial intervals at one-sigma coverage (68.27 %), Clopper-Pearson by
  default (exact, as ROOT's ``TEfficiency``; uses SciPy, installed with scikit-learn in the
  ``learn`` extra) or Wilson (NumPy only).
* **Small background samples**: at a target FPR ``f`` with ``N`` background events, about
  ``f N`` background events pass the threshold, and the relative statistical uncertainty on
  the achieved FPR is about ``1/sqrt(f N)``.  When ``f N < min_bkg_events`` (10 by default,
  i.e. a relative uncertainty above ~32 % on the rate) the working point is not measured
  reliably: the result carries a warning and :class:`SmallSampleWarning` is emitted.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MUON_MASS",
    "KMeansResult",
    "PCAResult",
    "SmallSampleWarning",
    "anomaly_metrics",
    "auc",
    "binomial_interval",
    "classification_metrics",
    "cluster_table",
    "compare_models",
    "confusion_matrix",
    "dimuon_mass",
    "dimuon_mass_from_features",
    "efficiency_at_fpr",
    "fpr_to_rate",
    "kmeans",
    "pca",
    "rate_to_fpr",
    "roc_auc",
    "roc_curve",
    "thin_curve",
    "threshold_at_fpr",
    "to_jsonable",
    "write_json",
]

#: Muon mass [GeV] (PDG).
MUON_MASS = 0.1056584
#: One-sigma coverage of a two-sided interval.
ONE_SIGMA_CL = 0.6826894921370859


class SmallSampleWarning(UserWarning):
    """The background sample is too small to measure the requested FPR or trigger rate."""


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def _scores(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of scores, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite value(s); first at index {i}: {arr[i]}"
        )
    return arr


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


# --------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------


def to_jsonable(obj: Any) -> Any:
    """``obj`` with NumPy scalars/arrays turned into Python ones and non-finite floats into
    ``None``, so :func:`json.dumps` with ``allow_nan=False`` accepts it."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` (through :func:`to_jsonable`) as indented JSON, atomically: to a
    temporary file in the same directory, then renamed onto ``path``."""
    from .._atomic import write_text

    return write_text(path, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")


# --------------------------------------------------------------------------------------
# ROC / AUC
# --------------------------------------------------------------------------------------


def roc_curve(
    labels: Any, scores: Any, sample_weight: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receiver operating characteristic of ``scores`` for binary ``labels`` (1 = signal).

    Returns ``(fpr, tpr, thresholds)``: one point per distinct score, ordered by decreasing
    threshold, with ``fpr[i]``/``tpr[i]`` the background/signal fraction with
    ``score >= thresholds[i]``.  The first point is ``(0, 0)`` at ``threshold = +inf`` and the
    last ``(1, 1)``.  Tied scores form one point (see the module docstring).  Raises
    ``ValueError`` when either class is empty.
    """
    y = _binary_labels(labels)
    s = _scores(scores, "scores")
    if len(y) != len(s):
        raise ValueError(f"labels has {len(y)} entries but scores has {len(s)}")
    w = (
        np.ones(len(s))
        if sample_weight is None
        else np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    )
    if len(w) != len(s):
        raise ValueError(f"sample_weight has {len(w)} entries but scores has {len(s)}")
    order = np.argsort(-s)  # order inside a group of ties is irrelevant: groups are merged
    s, y, w = s[order], y[order], w[order]
    # last index of each group of equal scores
    distinct = np.flatnonzero(np.diff(s)) if len(s) else np.zeros(0, dtype=np.int64)
    ends = np.r_[distinct, len(s) - 1] if len(s) else np.zeros(0, dtype=np.int64)
    tps = np.cumsum(w * y)[ends] if len(s) else np.zeros(0)
    fps = np.cumsum(w * ~y)[ends] if len(s) else np.zeros(0)
    p = tps[-1] if len(tps) else 0.0
    n = fps[-1] if len(fps) else 0.0
    if p <= 0:
        raise ValueError("roc_curve needs at least one signal event (label 1); got none")
    if n <= 0:
        raise ValueError("roc_curve needs at least one background event (label 0); got none")
    fpr = np.r_[0.0, fps / n]
    tpr = np.r_[0.0, tps / p]
    thresholds = np.r_[np.inf, s[ends]]
    return fpr, tpr, thresholds


def auc(x: Any, y: Any) -> float:
    """Area under the curve ``y(x)`` by the trapezoidal rule; ``x`` must be monotonic
    (either direction)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError(f"auc needs at least 2 points, got {len(x)}")
    dx = np.diff(x)
    if np.all(dx >= 0):
        sign = 1.0
    elif np.all(dx <= 0):
        sign = -1.0
    else:
        raise ValueError("x must be monotonic (increasing or decreasing) to compute an area")
    return float(sign * np.sum(dx * (y[1:] + y[:-1]) / 2.0))


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
    out = (fpr[keep], tpr[keep])
    if thresholds is not None:
        out = (*out, np.asarray(thresholds, dtype=np.float64)[keep])
    return out


# --------------------------------------------------------------------------------------
# binomial uncertainties, working points, rates
# --------------------------------------------------------------------------------------


def binomial_interval(
    k: int, n: int, cl: float = ONE_SIGMA_CL, method: str = "clopper-pearson"
) -> tuple[float, float]:
    """Two-sided confidence interval on a binomial proportion ``k / n``.

    ``method`` is ``"clopper-pearson"`` (exact, conservative; the ROOT ``TEfficiency``
    default; needs SciPy) or ``"wilson"`` (score interval, NumPy only).  ``cl`` is the
    coverage (one sigma by default).  Returns ``(low, high)`` with ``0 <= low <= k/n <= high <= 1``.
    """
    k, n = int(k), int(n)
    if n <= 0:
        raise ValueError(f"binomial_interval needs n > 0 trials, got n={n}")
    if not 0 <= k <= n:
        raise ValueError(f"binomial_interval needs 0 <= k <= n, got k={k}, n={n}")
    if not 0.0 < cl < 1.0:
        raise ValueError(f"cl must be in (0, 1), got {cl}")
    alpha = 1.0 - cl
    if method == "clopper-pearson":
        from .._optional import require

        stats = require("scipy.stats", "Clopper-Pearson intervals")
        lo = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
        hi = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
        return lo, hi
    if method == "wilson":
        z = math.sqrt(2.0) * _erfinv(cl)
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        return max(0.0, centre - half), min(1.0, centre + half)
    raise ValueError(f"unknown interval method {method!r}; choose 'clopper-pearson' or 'wilson'")


def _erfinv(y: float) -> float:
    """Inverse error function by Newton iterations on math.erf (|y| < 1)."""
    x = 0.0
    for _ in range(100):
        err = math.erf(x) - y
        step = err / (2.0 / math.sqrt(math.pi) * math.exp(-x * x))
        x -= step
        if abs(step) < 1e-15:
            break
    return x


def rate_to_fpr(rate_khz: float, collision_rate_mhz: float = 40.0) -> float:
    """False-positive rate giving a trigger ``rate_khz`` at ``collision_rate_mhz``:
    ``FPR = rate / collision rate`` (e.g. 1 kHz at 40 MHz -> 2.5e-5)."""
    rate_khz, collision_rate_mhz = float(rate_khz), float(collision_rate_mhz)
    if not collision_rate_mhz > 0:
        raise ValueError(f"collision_rate_mhz must be positive, got {collision_rate_mhz}")
    if not rate_khz > 0:
        raise ValueError(f"rate_khz must be positive, got {rate_khz}")
    fpr = rate_khz / (collision_rate_mhz * 1e3)
    if fpr > 1.0:
        raise ValueError(
            f"a rate of {rate_khz} kHz exceeds the collision rate of {collision_rate_mhz} MHz"
        )
    return fpr


def fpr_to_rate(fpr: float, collision_rate_mhz: float = 40.0) -> float:
    """Trigger rate in kHz at false-positive rate ``fpr``: ``rate = FPR x collision rate``."""
    fpr = float(fpr)
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must be in [0, 1], got {fpr}")
    if not float(collision_rate_mhz) > 0:
        raise ValueError(f"collision_rate_mhz must be positive, got {collision_rate_mhz}")
    return fpr * float(collision_rate_mhz) * 1e3


def _k_allowed(fpr: float, n: int) -> int:
    fpr = float(fpr)
    if not 0.0 < fpr <= 1.0:
        raise ValueError(f"fpr must be in (0, 1], got {fpr}")
    return math.floor(fpr * n * (1 + 1e-12))  # guard against fpr*n = 2.9999999


def _threshold_sorted(b_sorted: np.ndarray, fpr: float) -> float:
    """threshold_at_fpr on background scores sorted in ascending order."""
    n = len(b_sorted)
    k = _k_allowed(fpr, n)
    return -math.inf if k >= n else float(b_sorted[n - 1 - k])


def _n_above(sorted_scores: np.ndarray, threshold: float) -> int:
    """Number of entries of an ascending array strictly above ``threshold``."""
    return len(sorted_scores) - int(np.searchsorted(sorted_scores, threshold, side="right"))


def threshold_at_fpr(bkg_scores: Any, fpr: float) -> float:
    """Score threshold selecting (``score > threshold``) at most a fraction ``fpr`` of the
    background: the ``(k+1)``-th highest background score with ``k = floor(fpr N)``.

    With ``k = 0`` this is the highest background score (no background passes); with
    ``fpr = 1`` it is ``-inf``.  Ties can make the achieved FPR smaller than ``k / N``.
    """
    b = _scores(bkg_scores, "bkg_scores")
    if len(b) == 0:
        raise ValueError("bkg_scores is empty: a threshold needs background events")
    n = len(b)
    k = _k_allowed(fpr, n)
    if k >= n:
        return -math.inf
    # (k+1)-th largest = element n-1-k of the ascending order
    return float(np.partition(b, n - 1 - k)[n - 1 - k])


def _small_sample_warning(
    name: str, fpr: float, n_b: int, min_bkg_events: float, collision_rate_mhz: float
) -> str | None:
    expected = float(fpr) * n_b
    if expected >= min_bkg_events:
        return None
    return (
        f"{name}: background sample too small for FPR {float(fpr):.3g} "
        f"(rate {fpr_to_rate(fpr, collision_rate_mhz):.3g} kHz at {collision_rate_mhz:g} MHz): "
        f"{n_b} background events give {expected:.3g} expected above threshold (rule: at "
        f"least {min_bkg_events:g}, i.e. a relative rate uncertainty below "
        f"~{100 / math.sqrt(min_bkg_events):.0f}%); need at least "
        f"{math.ceil(min_bkg_events / float(fpr)):,} background events"
    )


def _efficiency_sorted(
    b_sorted: np.ndarray,
    s_sorted: np.ndarray,
    fpr: float,
    cl: float,
    method: str,
    min_bkg_events: float,
    collision_rate_mhz: float,
    name: str,
) -> dict[str, Any]:
    n_b, n_s = len(b_sorted), len(s_sorted)
    thr = _threshold_sorted(b_sorted, fpr)
    k_b = _n_above(b_sorted, thr)
    k_s = _n_above(s_sorted, thr)
    eff = k_s / n_s
    lo, hi = binomial_interval(k_s, n_s, cl, method)
    flo, fhi = binomial_interval(k_b, n_b, cl, method)
    band = [
        _n_above(s_sorted, _threshold_sorted(b_sorted, f_end)) / n_s if f_end > 0 else eff
        for f_end in (flo, fhi)
    ]
    return {
        "target_fpr": float(fpr),
        "target_rate_khz": fpr_to_rate(fpr, collision_rate_mhz),
        "threshold": thr,
        "n_background": n_b,
        "n_background_selected": k_b,
        "expected_background_selected": float(fpr) * n_b,
        "achieved_fpr": k_b / n_b,
        "fpr_interval": [flo, fhi],
        "achieved_rate_khz": fpr_to_rate(k_b / n_b, collision_rate_mhz),
        "n_signal": n_s,
        "n_signal_selected": k_s,
        "efficiency": eff,
        "efficiency_interval": [lo, hi],
        "efficiency_err_low": eff - lo,
        "efficiency_err_high": hi - eff,
        "efficiency_fpr_band": band,
        "interval_method": method,
        "cl": cl,
        "warning": _small_sample_warning(name, fpr, n_b, min_bkg_events, collision_rate_mhz),
    }


def efficiency_at_fpr(
    bkg_scores: Any,
    sig_scores: Any,
    fpr: float,
    *,
    cl: float = ONE_SIGMA_CL,
    method: str = "clopper-pearson",
    min_bkg_events: float = 10.0,
    collision_rate_mhz: float = 40.0,
    warn: bool = True,
) -> dict[str, Any]:
    """Signal efficiency at the threshold where the background FPR is ``fpr``.

    Returns a dict with ``target_fpr``, ``target_rate_khz``, ``threshold``,
    ``n_background``, ``n_background_selected``, ``expected_background_selected``
    (``fpr x N``), ``achieved_fpr`` and its ``fpr_interval``, ``achieved_rate_khz``,
    ``n_signal``, ``n_signal_selected``, ``efficiency``, ``efficiency_interval``
    (``cl`` coverage, ``method`` as in :func:`binomial_interval`), ``efficiency_err_low``/
    ``efficiency_err_high`` (distances to the interval ends) and ``warning`` (``None`` or
    the text of the small-sample warning; see the module docstring for the rule).

    ``efficiency_interval`` is the statistical uncertainty of the *signal* sample at the
    chosen threshold.  The finite *background* sample makes the threshold itself uncertain:
    ``efficiency_fpr_band`` gives the efficiencies at the thresholds whose background FPR are
    the ends of ``fpr_interval`` (``[at the lower FPR, at the higher FPR]``), a measure of
    how much the efficiency at this rate could move with more background events.
    """
    b = _scores(bkg_scores, "bkg_scores")
    s = _scores(sig_scores, "sig_scores")
    if len(b) == 0:
        raise ValueError("bkg_scores is empty: a threshold needs background events")
    if len(s) == 0:
        raise ValueError("sig_scores is empty: an efficiency needs signal events")
    r = _efficiency_sorted(
        np.sort(b),
        np.sort(s),
        fpr,
        cl,
        method,
        min_bkg_events,
        collision_rate_mhz,
        f"FPR={float(fpr):.3g}",
    )
    if r["warning"] and warn:
        warnings.warn(r["warning"], SmallSampleWarning, stacklevel=2)
    return r


def _roc_sorted(b_sorted: np.ndarray, s_sorted: np.ndarray) -> tuple[np.ndarray, ...]:
    """roc_curve(labels, scores) for background/signal scores each sorted ascending."""
    thr = np.unique(np.concatenate([b_sorted, s_sorted]))[::-1]
    fps = len(b_sorted) - np.searchsorted(b_sorted, thr, side="left")
    tps = len(s_sorted) - np.searchsorted(s_sorted, thr, side="left")
    return (
        np.r_[0.0, fps / len(b_sorted)],
        np.r_[0.0, tps / len(s_sorted)],
        np.r_[np.inf, thr],
    )


def _roc_dict(fpr: np.ndarray, tpr: np.ndarray, thr: np.ndarray, max_points: int) -> dict:
    f, t, th = thin_curve(fpr, tpr, thr, max_points=max_points)
    return {"fpr": f.tolist(), "tpr": t.tolist(), "thresholds": to_jsonable(th)}


def anomaly_metrics(
    bkg_scores: Any,
    signal_scores: Mapping[str, Any],
    fpr_targets: Iterable[float] = (1e-5,),
    rate_khz: float | Sequence[float] | None = None,
    collision_rate_mhz: float = 40.0,
    *,
    cl: float = ONE_SIGMA_CL,
    method: str = "clopper-pearson",
    min_bkg_events: float = 10.0,
    max_roc_points: int = 400,
) -> dict[str, Any]:
    """Per-signal ROC, AUC and efficiencies of an anomaly score (higher = more anomalous).

    ``bkg_scores`` are the Standard-Model (background) scores, ``signal_scores`` maps signal
    names to their scores.  Working points are each FPR in ``fpr_targets`` and each trigger
    rate in ``rate_khz`` (converted with :func:`rate_to_fpr`).  Returns::

        {"n_background", "collision_rate_mhz",
         "working_points": [{"name", "fpr", "rate_khz", "threshold",
                             "expected_background_selected", "n_background_selected",
                             "achieved_fpr", "fpr_interval", "warning"}, ...],
         "signals": {name: {"n_events", "auc", "roc": {"fpr", "tpr", "thresholds"},
                            "efficiency": {wp_name: efficiency_at_fpr(...) dict}}},
         "warnings": [...]}

    ROC curves are thinned to about ``max_roc_points`` points (the AUC uses all events).
    A working point with fewer than ``min_bkg_events`` expected background events above
    threshold adds a line to ``warnings`` and emits one :class:`SmallSampleWarning`.
    """
    b = _scores(bkg_scores, "bkg_scores")
    if len(b) == 0:
        raise ValueError("bkg_scores is empty")
    if not isinstance(signal_scores, Mapping) or not signal_scores:
        raise ValueError("signal_scores must be a non-empty mapping {signal name: scores}")
    wps: list[tuple[str, float, float | None]] = []
    for f in fpr_targets:
        f = float(f)
        if not 0.0 < f <= 1.0:
            raise ValueError(f"fpr_targets must be in (0, 1], got {f}")
        wps.append((f"FPR={f:.3g}", f, None))
    if rate_khz is not None:
        rates = [rate_khz] if np.ndim(rate_khz) == 0 else list(rate_khz)  # type: ignore[arg-type]
        for r in rates:
            f = rate_to_fpr(float(r), collision_rate_mhz)
            wps.append((f"rate={float(r):g} kHz", f, float(r)))
    if not wps:
        raise ValueError("no working point: give fpr_targets and/or rate_khz")

    b_sorted = np.sort(b)
    out_wps = []
    warn_list: list[str] = []
    for name, f, r in wps:
        thr = _threshold_sorted(b_sorted, f)
        k_b = _n_above(b_sorted, thr)
        flo, fhi = binomial_interval(k_b, len(b), cl, method)
        warning = _small_sample_warning(name, f, len(b), min_bkg_events, collision_rate_mhz)
        if warning:
            warn_list.append(warning)
            warnings.warn(warning, SmallSampleWarning, stacklevel=2)
        out_wps.append(
            {
                "name": name,
                "fpr": f,
                "rate_khz": r if r is not None else fpr_to_rate(f, collision_rate_mhz),
                "threshold": thr,
                "expected_background_selected": f * len(b),
                "n_background_selected": k_b,
                "achieved_fpr": k_b / len(b),
                "fpr_interval": [flo, fhi],
                "warning": warning,
            }
        )

    signals: dict[str, Any] = {}
    for sname, sc in signal_scores.items():
        s_sorted = np.sort(_scores(sc, f"signal_scores[{sname!r}]"))
        if len(s_sorted) == 0:
            raise ValueError(f"signal_scores[{sname!r}] is empty")
        fpr, tpr, thr = _roc_sorted(b_sorted, s_sorted)
        effs = {
            name: _efficiency_sorted(
                b_sorted, s_sorted, f, cl, method, min_bkg_events, collision_rate_mhz, name
            )
            for name, f, _ in wps
        }
        signals[str(sname)] = {
            "n_events": len(s_sorted),
            "auc": auc(fpr, tpr),
            "roc": _roc_dict(fpr, tpr, thr, max_roc_points),
            "efficiency": effs,
        }
    return to_jsonable(
        {
            "kind": "anomaly",
            "n_background": len(b),
            "collision_rate_mhz": float(collision_rate_mhz),
            "working_points": out_wps,
            "signals": signals,
            "warnings": warn_list,
        }
    )


# --------------------------------------------------------------------------------------
# classification
# --------------------------------------------------------------------------------------


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
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


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
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
        norm = np.where(support[:, None] > 0, cm / support[:, None], 0.0)
    warn_list: list[str] = []
    aucs: list[float | None] = [None] * c
    roc = None
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
            roc[name] = _roc_dict(fpr, tpr, thr, max_roc_points)
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


# --------------------------------------------------------------------------------------
# side-by-side comparison
# --------------------------------------------------------------------------------------


def _fmt_eff(e: Mapping[str, Any]) -> str:
    return f"{e['efficiency']:.4f} +{e['efficiency_err_high']:.4f}/-{e['efficiency_err_low']:.4f}"


def compare_models(
    results_by_model: Mapping[str, Mapping[str, Any]], relative_to: str | None = None
) -> list[list[Any]]:
    """A table comparing models (float, quantized, pruned ...) side by side.

    ``results_by_model`` maps model names to dicts from :func:`classification_metrics` or
    all from :func:`anomaly_metrics`.  Returns rows, the first being the header
    ``["metric", model1, model2, ...]``; cells are floats, strings (efficiencies as
    ``"eff +err/-err"``) or ``None`` when undefined.  With ``relative_to`` (a model name),
    one column per other model gives its relative difference to that model in percent
    (``100 (x / x_ref - 1)``), the quantity the trigger targets are stated in.
    """
    if not results_by_model:
        raise ValueError("compare_models needs at least one model")
    models = list(results_by_model)
    kinds = {m: _kind(r, m) for m, r in results_by_model.items()}
    if len(set(kinds.values())) != 1:
        raise ValueError(f"cannot compare classification and anomaly results together: {kinds}")
    if relative_to is not None and relative_to not in results_by_model:
        raise ValueError(f"relative_to={relative_to!r} is not one of the models {models}")
    kind = kinds[models[0]]
    rows: list[tuple[str, list[Any], list[float | None]]] = []  # label, cells, numeric

    if kind == "classification":
        names = results_by_model[models[0]]["class_names"]
        for m in models[1:]:
            if results_by_model[m]["class_names"] != names:
                raise ValueError(
                    f"model {m!r} has classes {results_by_model[m]['class_names']}, "
                    f"model {models[0]!r} has {names}"
                )

        def add(label: str, getter: Any) -> None:
            vals = [getter(results_by_model[m]) for m in models]
            rows.append((label, vals, vals))

        add("accuracy", lambda r: r["accuracy"])
        for key in ("precision", "recall", "f1", "auc"):
            add(f"macro {key}", lambda r, k=key: r["macro"][k])
        for name in names:
            for key in ("precision", "recall", "f1", "auc"):
                add(f"{name} {key}", lambda r, n=name, k=key: r["per_class"][n][k])
    else:
        sigs = list(results_by_model[models[0]]["signals"])
        wps = [w["name"] for w in results_by_model[models[0]]["working_points"]]
        for m in models[1:]:
            if list(results_by_model[m]["signals"]) != sigs:
                raise ValueError(
                    f"model {m!r} has signals {list(results_by_model[m]['signals'])}, "
                    f"model {models[0]!r} has {sigs}"
                )
        for s in sigs:
            vals = [results_by_model[m]["signals"][s]["auc"] for m in models]
            rows.append((f"{s} AUC", vals, vals))
            for wp in wps:
                effs = [results_by_model[m]["signals"][s]["efficiency"].get(wp) for m in models]
                rows.append(
                    (
                        f"{s} efficiency at {wp}",
                        [_fmt_eff(e) if e else None for e in effs],
                        [e["efficiency"] if e else None for e in effs],
                    )
                )
    header: list[Any] = ["metric", *models]
    others = [m for m in models if m != relative_to] if relative_to else []
    header += [f"{m} vs {relative_to} [%]" for m in others]
    table: list[list[Any]] = [header]
    for label, cells, nums in rows:
        row = [label, *cells]
        if relative_to is not None:
            ref = nums[models.index(relative_to)]
            for m in others:
                x = nums[models.index(m)]
                row.append(100.0 * (x / ref - 1.0) if x is not None and ref else None)
        table.append(row)
    return to_jsonable(table)


def _kind(result: Mapping[str, Any], model: str) -> str:
    if "accuracy" in result and "per_class" in result:
        return "classification"
    if "signals" in result and "working_points" in result:
        return "anomaly"
    raise ValueError(
        f"results of model {model!r} are neither classification_metrics() nor "
        f"anomaly_metrics() output (keys: {sorted(result)})"
    )


# --------------------------------------------------------------------------------------
# latent space: PCA and k-means
# --------------------------------------------------------------------------------------


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
    per row) by singular value decomposition of the centred data."""
    arr = _matrix(x)
    n, d = arr.shape
    if not 1 <= n_components <= min(n, d):
        raise ValueError(f"n_components must be in 1..min(N, D) = {min(n, d)}, got {n_components}")
    mean = arr.mean(axis=0)
    xc = arr - mean
    _, sv, vt = np.linalg.svd(xc, full_matrices=False)
    comps = vt[:n_components]
    flip = np.sign(comps[np.arange(n_components), np.argmax(np.abs(comps), axis=1)])
    flip[flip == 0] = 1.0
    comps = comps * flip[:, None]
    var = sv**2 / max(n - 1, 1)
    total = var.sum()
    ratio = var[:n_components] / total if total > 0 else np.zeros(n_components)
    return PCAResult(comps, mean, var[:n_components], ratio, xc @ comps.T)


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


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = len(x)
    centers = np.empty((k, x.shape[1]))
    centers[0] = x[rng.integers(n)]
    d2 = _sqdist(x, centers[:1])[:, 0]
    for j in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than k
            centers[j] = x[rng.integers(n)]
        else:
            centers[j] = x[min(np.searchsorted(np.cumsum(d2), rng.random() * total), n - 1)]
        d2 = np.minimum(d2, _sqdist(x, centers[j : j + 1])[:, 0])
    return centers


def kmeans(
    x: Any, k: int, seed: int = 0, *, n_init: int = 4, max_iter: int = 300, tol: float = 1e-4
) -> KMeansResult:
    """k-means clustering (Lloyd's algorithm, k-means++ initialisation) in NumPy.

    Runs ``n_init`` initialisations from ``numpy.random.default_rng(seed)`` and keeps the one
    with the lowest inertia.  Each run stops when no point changes cluster, when the centres
    move (sum of squared shifts) by less than ``tol`` times the mean feature variance (the
    scikit-learn convention), or after ``max_iter`` iterations.  An empty cluster is
    re-seeded with the point farthest from its centre.
    """
    arr = _matrix(x)
    n, d = arr.shape
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..N = {n}, got {k}")
    rng = np.random.default_rng(seed)
    scale = float(arr.var(axis=0).mean()) or 1.0
    best: KMeansResult | None = None
    rows = np.arange(n)
    for _ in range(max(1, n_init)):
        centers = _kmeans_pp(arr, k, rng)
        labels = np.full(n, -1, dtype=np.int64)
        it = 0
        for it in range(1, max_iter + 1):  # noqa: B007 (it is reported as n_iter)
            dist = _sqdist(arr, centers)
            new_labels = dist.argmin(axis=1)
            counts = np.bincount(new_labels, minlength=k)
            for j in np.flatnonzero(counts == 0):  # re-seed empty clusters
                far = int(dist[rows, new_labels].argmax())
                new_labels[far] = j
                counts = np.bincount(new_labels, minlength=k)
            sums = np.stack(
                [np.bincount(new_labels, weights=arr[:, c], minlength=k) for c in range(d)], axis=1
            )
            new = sums / counts[:, None]
            shift = float(((new - centers) ** 2).sum())
            centers = new
            unchanged = bool(np.array_equal(new_labels, labels))
            labels = new_labels
            if unchanged or shift <= tol * scale:
                break
        dist = _sqdist(arr, centers)
        labels = dist.argmin(axis=1)
        inertia = float(dist[rows, labels].sum())
        if best is None or inertia < best.inertia:
            best = KMeansResult(centers, labels.astype(np.int64), inertia, it)
    assert best is not None
    return best


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


# --------------------------------------------------------------------------------------
# dimuon mass
# --------------------------------------------------------------------------------------


def _pair_mass(pt1, eta1, phi1, m1, pt2, eta2, phi2, m2) -> np.ndarray:
    px1, py1, pz1 = pt1 * np.cos(phi1), pt1 * np.sin(phi1), pt1 * np.sinh(eta1)
    px2, py2, pz2 = pt2 * np.cos(phi2), pt2 * np.sin(phi2), pt2 * np.sinh(eta2)
    e1 = np.sqrt(px1**2 + py1**2 + pz1**2 + m1**2)
    e2 = np.sqrt(px2**2 + py2**2 + pz2**2 + m2**2)
    m2_ = (e1 + e2) ** 2 - (px1 + px2) ** 2 - (py1 + py2) ** 2 - (pz1 + pz2) ** 2
    return np.sqrt(np.maximum(m2_, 0.0))


def dimuon_mass(
    batch_or_pt: Any,
    eta: Any = None,
    phi: Any = None,
    charge: Any = None,
    offsets: Any = None,
    *,
    mass: Any = MUON_MASS,
    opposite_sign: bool = True,
    min_pt: float = 0.0,
    collection: str = "muon",
) -> np.ndarray:
    """Invariant mass [GeV] of the leading dimuon of every event (``NaN`` when none).

    The pair is the highest-pT muon and the highest-pT other muon of opposite charge
    (of any charge with ``opposite_sign=False``), among muons with ``pt > min_pt``.

    Inputs, one of:

    * a :class:`poetml.jagged.EventBatch` (its ``collection``, default ``muon``, with fields
      ``pt``, ``eta``, ``phi``, ``charge`` and ``mass`` if present) or a
      :class:`poetml.jagged.Collection`;
    * flat per-muon arrays ``pt, eta, phi, charge`` plus ``offsets`` (length
      ``n_events + 1``);
    * padded per-event arrays ``(N, M)`` (slots with ``pt <= 0`` are empty), as in the
      feature vectors; ``offsets`` must then be ``None``.

    ``mass`` is a constant or a per-muon array (the muon mass by default); ``charge`` may be
    ``None`` only with ``opposite_sign=False``.
    """
    from ..jagged import Collection, EventBatch

    if isinstance(batch_or_pt, EventBatch):
        batch_or_pt = batch_or_pt[collection]
    if isinstance(batch_or_pt, Collection):
        coll = batch_or_pt
        pt, eta, phi = coll["pt"], coll["eta"], coll["phi"]
        charge = coll.fields.get("charge")
        if "mass" in coll:
            mass = coll["mass"]
        offsets = coll.offsets
    else:
        pt = batch_or_pt
        if eta is None or phi is None:
            raise ValueError("dimuon_mass needs pt, eta and phi (or an EventBatch / Collection)")
    pt = np.asarray(pt, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    if opposite_sign and charge is None:
        raise ValueError(
            "dimuon_mass: no muon charge given; pass charge or opposite_sign=False "
            "(feature vectors carry no charge)"
        )
    q = None if charge is None else np.asarray(charge, dtype=np.float64)
    m = np.broadcast_to(np.asarray(mass, dtype=np.float64), pt.shape)
    if offsets is None:
        if pt.ndim != 2:
            raise ValueError(
                f"without offsets, pt must be a padded (N, M) array; got shape {pt.shape}"
            )
        for name, a in (("eta", eta), ("phi", phi), ("charge", q)):
            if a is not None and a.shape != pt.shape:
                raise ValueError(f"{name} has shape {a.shape}, pt has {pt.shape}")
        n_events = pt.shape[0]
        valid = pt > 0
        counts = valid.sum(axis=1)
        offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
        pt, eta, phi, m = pt[valid], eta[valid], phi[valid], m[valid]
        q = None if q is None else q[valid]
    else:
        offsets = np.asarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
            raise ValueError("offsets must be 1-D, start at 0 and be non-decreasing")
        n_events = len(offsets) - 1
        for name, a in (("pt", pt), ("eta", eta), ("phi", phi), ("charge", q), ("mass", m)):
            if a is not None and (a.ndim != 1 or len(a) != offsets[-1]):
                raise ValueError(
                    f"{name} has shape {a.shape}; offsets end at {int(offsets[-1])} muons"
                )
    out = np.full(n_events, np.nan)
    counts = np.diff(offsets)
    event = np.repeat(np.arange(n_events), counts)
    keep = pt > min_pt
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        return out
    ev = event[idx]
    order = idx[np.lexsort((-pt[idx], ev))]  # by event, then decreasing pt
    ev = event[order]
    first = np.r_[True, ev[1:] != ev[:-1]]
    starts = np.flatnonzero(first)
    lead_pos = np.repeat(starts, np.diff(np.r_[starts, len(order)]))  # leading of own event
    lead = order[lead_pos]
    cand = ~first
    if opposite_sign:
        assert q is not None
        cand &= q[order] * q[lead] < 0
    cpos = np.flatnonzero(cand)
    if len(cpos) == 0:
        return out
    cev = ev[cpos]
    firstc = np.r_[True, cev[1:] != cev[:-1]]
    sub = order[cpos[firstc]]
    ld = lead[cpos[firstc]]
    out[cev[firstc]] = _pair_mass(
        pt[ld], eta[ld], phi[ld], m[ld], pt[sub], eta[sub], phi[sub], m[sub]
    )
    return out


def dimuon_mass_from_features(
    features: Any, feature_names: Sequence[str], *, mass: float = MUON_MASS, prefix: str = "muon"
) -> np.ndarray:
    """Leading dimuon mass from feature vectors with slots ``muon_<i>_pt/eta/phi``.

    Feature vectors carry no charge, so this is the mass of the two leading muons whatever
    their charges (``NaN`` with fewer than two).  Features must be *unscaled* (GeV).
    """
    x = np.asarray(features, dtype=np.float64)
    names = list(feature_names)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"features shape {x.shape} does not match {len(names)} feature names")
    slots = []
    i = 0
    while f"{prefix}_{i}_pt" in names:
        slots.append(i)
        i += 1
    if not slots:
        raise ValueError(f"no '{prefix}_0_pt' in feature names (have: {', '.join(names[:8])}...)")
    cols = {
        v: np.stack([x[:, names.index(f"{prefix}_{i}_{v}")] for i in slots], axis=1)
        for v in ("pt", "eta", "phi")
    }
    return dimuon_mass(cols["pt"], cols["eta"], cols["phi"], None, mass=mass, opposite_sign=False)

"""Trigger rates and thresholds: the one place both the evaluation (working points in the
reports) and the firmware (the threshold constant of ``trigger_decision``) choose a threshold
for a rate, so the report's working point and the firmware's threshold are the same.

Conventions
-----------
* **Rate**: ``rate = FPR x collision rate`` (40 MHz, the LHC bunch-crossing clock, by
  default, as in the CMS Level-1 anomaly-detection studies; the rate of *filled* bunch
  crossings is lower, about 30 MHz, and can be passed as ``collision_rate_mhz``).  1 kHz at
  40 MHz is an FPR of 2.5e-5.
* **Threshold**: an event is *selected* when ``score > threshold``.  At a target FPR ``f``
  on ``N`` background events at most ``k = floor(f N)`` background events may pass; the
  threshold is the ``(k+1)``-th highest background score, so ties never push the rate above
  the target.  ``f N`` is floored with a relative guard of 1e-12, because the product of two
  decimal numbers is often a hair below the integer it stands for (3 kHz at 40 MHz on
  200 000 events: ``7.5e-5 x 200000 = 14.999999999999998``; 15 events are allowed).
* **Uncertainties**: binomial intervals at one-sigma coverage (68.27 %), Clopper-Pearson by
  default (exact, as ROOT's ``TEfficiency``; uses SciPy, installed with the ``learn``
  extra) or Wilson (NumPy only).
* **Small background samples**: at a target FPR ``f`` with ``N`` background events, about
  ``f N`` background events pass the threshold, and the relative statistical uncertainty on
  the achieved FPR is about ``1/sqrt(f N)``.  When ``f N < min_bkg_events`` (10 by default,
  i.e. a relative uncertainty above ~32 % on the rate) the working point is not measured
  reliably: the result carries a warning (and the evaluation emits
  :class:`SmallSampleWarning`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

__all__ = [
    "ONE_SIGMA_CL",
    "SmallSampleWarning",
    "allowed_background",
    "binomial_interval",
    "check_scores",
    "efficiency_at_fpr",
    "fpr_to_rate",
    "n_above",
    "rate_to_fpr",
    "small_sample_warning",
    "threshold_at_fpr",
    "threshold_at_rate",
]

#: One-sigma coverage of a two-sided interval.
ONE_SIGMA_CL = 0.6826894921370859


class SmallSampleWarning(UserWarning):
    """The background sample is too small to measure the requested FPR or trigger rate."""


def check_scores(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array of finite scores, or ``ValueError`` naming ``name``
    and the first bad entry."""
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


# --------------------------------------------------------------------------------------
# rate <-> FPR
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# binomial uncertainties
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
        from ._optional import require

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


# --------------------------------------------------------------------------------------
# thresholds
# --------------------------------------------------------------------------------------


def allowed_background(fpr: float, n: int) -> int:
    """``k = floor(fpr x n)``: the most background events of ``n`` a threshold at ``fpr``
    may keep (with a 1e-12 relative guard: ``fpr x n = 14.999999999999998`` allows 15)."""
    fpr = float(fpr)
    if not 0.0 < fpr <= 1.0:
        raise ValueError(f"fpr must be in (0, 1], got {fpr}")
    return math.floor(fpr * n * (1 + 1e-12))


def _threshold_sorted(b_sorted: np.ndarray, fpr: float) -> float:
    """threshold_at_fpr on background scores sorted in ascending order."""
    n = len(b_sorted)
    k = allowed_background(fpr, n)
    return -math.inf if k >= n else float(b_sorted[n - 1 - k])


def n_above(sorted_scores: np.ndarray, threshold: float) -> int:
    """Number of entries of an ascending array strictly above ``threshold``."""
    return len(sorted_scores) - int(np.searchsorted(sorted_scores, threshold, side="right"))


def threshold_at_fpr(bkg_scores: Any, fpr: float) -> float:
    """Score threshold selecting (``score > threshold``) at most a fraction ``fpr`` of the
    background: the ``(k+1)``-th highest background score with ``k = floor(fpr N)``.

    With ``k = 0`` this is the highest background score (no background passes); with
    ``fpr = 1`` it is ``-inf``.  Ties can make the achieved FPR smaller than ``k / N``.
    """
    b = check_scores(bkg_scores, "bkg_scores")
    if len(b) == 0:
        raise ValueError("bkg_scores is empty: a threshold needs background events")
    n = len(b)
    k = allowed_background(fpr, n)
    if k >= n:
        return -math.inf
    # (k+1)-th largest = element n-1-k of the ascending order
    return float(np.partition(b, n - 1 - k)[n - 1 - k])


def threshold_at_rate(bkg_scores: Any, rate_khz: float, collision_rate_mhz: float = 40.0) -> float:
    """:func:`threshold_at_fpr` at the FPR of a trigger ``rate_khz`` (:func:`rate_to_fpr`)."""
    return threshold_at_fpr(bkg_scores, rate_to_fpr(rate_khz, collision_rate_mhz))


def small_sample_warning(
    name: str, fpr: float, n_b: int, min_bkg_events: float = 10.0, collision_rate_mhz: float = 40.0
) -> str | None:
    """The warning text when ``n_b`` background events cannot measure ``fpr`` (fewer than
    ``min_bkg_events`` expected above the threshold), else ``None``."""
    expected = float(fpr) * n_b
    if expected >= min_bkg_events:
        return None
    text = (
        f"{name}: background sample too small for FPR {float(fpr):.3g} "
        f"(rate {fpr_to_rate(fpr, collision_rate_mhz):.3g} kHz at {collision_rate_mhz:g} MHz): "
        f"{n_b} background events give {expected:.3g} expected above threshold (rule: at "
        f"least {min_bkg_events:g}, i.e. a relative rate uncertainty below "
        f"~{100 / math.sqrt(min_bkg_events):.0f}%); need at least "
        f"{math.ceil(min_bkg_events / float(fpr)):,} background events"
    )
    if allowed_background(fpr, n_b) == 0:
        text += (
            "; the sample cannot resolve this FPR: no background event may pass, so the "
            "threshold is the highest background score"
        )
    return text


# --------------------------------------------------------------------------------------
# efficiency at a working point
# --------------------------------------------------------------------------------------


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
    k_b = n_above(b_sorted, thr)
    k_s = n_above(s_sorted, thr)
    eff = k_s / n_s
    lo, hi = binomial_interval(k_s, n_s, cl, method)
    flo, fhi = binomial_interval(k_b, n_b, cl, method)
    band = [
        n_above(s_sorted, _threshold_sorted(b_sorted, f_end)) / n_s if f_end > 0 else eff
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
        "warning": small_sample_warning(name, fpr, n_b, min_bkg_events, collision_rate_mhz),
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
    b = check_scores(bkg_scores, "bkg_scores")
    s = check_scores(sig_scores, "sig_scores")
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

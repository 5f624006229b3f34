"""Trigger rates and thresholds: the one place both the evaluation (working points in the
reports) and the firmware (the threshold constant of ``trigger_decision``) choose a threshold
for a rate, so the report's working point and the firmware's threshold are the same.

Conventions
-----------
* **Rate of a weighted stream** (what a trigger physicist quotes): every background event
  carries a weight in pb (its share of the cross section, see :mod:`poetml.generate`); the
  rate above a threshold is ``luminosity x sum of the selected weights`` in kHz, with the
  statistical uncertainty ``luminosity x sqrt(sum of squared weights)`` and the effective
  number of events ``(sum w)^2 / sum w^2`` (:class:`Beam`, :func:`rate_above`,
  :func:`threshold_for_rate_weighted`, :func:`efficiency_at_rate`).  Luminosity (default
  2e34 cm^-2 s^-1) and the filled bunch-crossing rate (40 MHz x 2544/3564) are
  configuration.
* **Rate of an unweighted sample** (the older convention of the Level-1 anomaly-detection
  challenge): ``rate = FPR x collision rate`` (40 MHz by default).  1 kHz at 40 MHz is an
  FPR of 2.5e-5.  Both use the one threshold rule of :func:`threshold_for_weight`.
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
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "ONE_SIGMA_CL",
    "Beam",
    "SmallSampleWarning",
    "WeightedRate",
    "allowed_background",
    "binomial_interval",
    "check_scores",
    "check_weights",
    "efficiency_at_fpr",
    "efficiency_at_rate",
    "fpr_to_rate",
    "n_above",
    "rate_above",
    "rate_to_fpr",
    "small_sample_warning",
    "threshold_at_fpr",
    "threshold_at_rate",
    "threshold_for_rate_weighted",
    "threshold_for_weight",
    "unbiased_rate_check",
    "weighted_efficiency",
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
    return _interval(float(k), float(n), cl, method)


def _interval(k: float, n: float, cl: float, method: str) -> tuple[float, float]:
    """:func:`binomial_interval` for real-valued counts (effective counts of weighted
    events); ``0 <= k <= n``, ``n > 0``."""
    alpha = 1.0 - cl
    p = k / n
    if method == "clopper-pearson":
        from ._optional import require

        stats = require("scipy.stats", "Clopper-Pearson intervals")
        lo = 0.0 if k <= 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
        hi = 1.0 if k >= n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
        return min(lo, p), max(hi, p)
    if method == "wilson":
        z = math.sqrt(2.0) * _erfinv(cl)
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
    allowed_background(fpr, len(b))  # checks fpr
    # the one threshold rule, with unit weights: at most f N of them above
    return threshold_for_weight(b, np.ones(len(b)), float(fpr) * len(b))


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


# --------------------------------------------------------------------------------------
# weighted streams: rates in kHz at a luminosity
# --------------------------------------------------------------------------------------

#: 1 pb = 1e-36 cm^2
_CM2_PER_PB = 1e-36


@dataclass(frozen=True)
class Beam:
    """The LHC conditions a rate is quoted at.

    ``luminosity``: instantaneous luminosity [cm^-2 s^-1] (default 2e34, Run 3);
    ``bunch_crossing_mhz``: the bunch clock (40 MHz); ``filled_fraction``: the fraction of
    crossings with colliding bunches (2544 of 3564 in the standard 25 ns filling scheme).
    An event of weight ``w`` pb contributes ``w x 1e-36 x luminosity`` Hz; the rate of
    filled crossings (``crossing_rate_khz``, about 28.6 MHz) bounds every trigger rate.
    """

    luminosity: float = 2.0e34
    bunch_crossing_mhz: float = 40.0
    filled_fraction: float = 2544 / 3564

    def __post_init__(self) -> None:
        if not (math.isfinite(self.luminosity) and self.luminosity > 0):
            raise ValueError(f"luminosity must be > 0 [cm^-2 s^-1], got {self.luminosity!r}")
        if not (math.isfinite(self.bunch_crossing_mhz) and self.bunch_crossing_mhz > 0):
            raise ValueError(f"bunch_crossing_mhz must be > 0, got {self.bunch_crossing_mhz!r}")
        if not 0 < self.filled_fraction <= 1:
            raise ValueError(f"filled_fraction must be in (0, 1], got {self.filled_fraction!r}")

    @property
    def crossing_rate_khz(self) -> float:
        """Rate of filled bunch crossings [kHz]."""
        return self.bunch_crossing_mhz * 1e3 * self.filled_fraction

    @property
    def khz_per_pb(self) -> float:
        """Rate [kHz] of a process of 1 pb at this luminosity."""
        return self.luminosity * _CM2_PER_PB / 1e3

    @property
    def pileup(self) -> float:
        """Mean interactions per filled crossing for an inelastic cross section of 79.5 mb
        (TOTEM, 13 TeV)."""
        return 79.5e9 * self.khz_per_pb / self.crossing_rate_khz


def check_weights(weights: Any, n: int, name: str) -> np.ndarray:
    """``weights`` as float64 of length ``n``, all finite, or ``ValueError`` naming ``name``
    and the first bad entry.  Negative weights (NLO generators, NanoAOD ``genWeight``) are
    allowed: they enter every sum with their sign."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"{name} must have one weight per score ({n}), got shape {w.shape}")
    bad = ~np.isfinite(w)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite weight(s); first at index {i}: {w[i]}"
        )
    return w


def threshold_for_weight(scores: Any, weights: Any, max_weight: float) -> float:
    """The lowest threshold whose selected events (``score > threshold``) weigh at most
    ``max_weight`` (1e-12 relative guard): the ``(k+1)``-th highest score, ``k`` the most
    top-scoring events whose weights fit.  With unit weights and ``max_weight = f N`` this is
    :func:`threshold_at_fpr` exactly; ties never push the selected weight above the
    target.  With negative weights the running sum is not monotonic: the set stops before
    the running sum first exceeds the target (conservative)."""
    s = check_scores(scores, "scores")
    w = check_weights(weights, len(s), "weights")
    if len(s) == 0:
        raise ValueError("scores is empty: a threshold needs background events")
    if not max_weight >= 0:
        raise ValueError(f"max_weight must be >= 0, got {max_weight}")
    order = np.argsort(-s, kind="stable")
    cum = np.maximum.accumulate(np.cumsum(w[order]))
    k = int(np.searchsorted(cum, max_weight * (1 + 1e-12), side="right"))
    return -math.inf if k >= len(s) else float(s[order[k]])


@dataclass(frozen=True)
class WeightedRate:
    """A rate above a threshold: ``rate_khz`` with its statistical uncertainty
    ``rate_khz_err`` (from the sum of squared weights), ``n_events`` selected events and
    ``n_effective`` = (sum w)^2 / sum w^2, the number of unweighted events with the same
    relative uncertainty."""

    threshold: float
    rate_khz: float
    rate_khz_err: float
    n_events: int
    n_effective: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def rate_above(scores: Any, weights_pb: Any, threshold: float, beam: Beam = Beam()) -> WeightedRate:
    """The rate [kHz] of events with ``score > threshold`` in a stream whose events weigh
    ``weights_pb`` (pb each): ``luminosity x sum w``, error ``luminosity x sqrt(sum w^2)``."""
    s = check_scores(scores, "scores")
    w = check_weights(weights_pb, len(s), "weights_pb")
    sel = s > threshold
    sw, sw2 = float(w[sel].sum()), float((w[sel] ** 2).sum())
    return WeightedRate(
        threshold=float(threshold),
        rate_khz=sw * beam.khz_per_pb,
        rate_khz_err=math.sqrt(sw2) * beam.khz_per_pb,
        n_events=int(sel.sum()),
        n_effective=sw * sw / sw2 if sw2 > 0 else 0.0,
    )


def threshold_for_rate_weighted(
    scores: Any, weights_pb: Any, rate_khz: float, beam: Beam = Beam()
) -> float:
    """The threshold of a trigger of ``rate_khz`` on a weighted stream: at most
    ``rate_khz / (luminosity x 1e-36)`` pb of the stream above it (:func:`threshold_for_weight`)."""
    rate_khz = float(rate_khz)
    if not rate_khz > 0:
        raise ValueError(f"rate_khz must be positive, got {rate_khz}")
    if rate_khz > beam.crossing_rate_khz:
        raise ValueError(
            f"a rate of {rate_khz} kHz exceeds the rate of filled crossings "
            f"({beam.crossing_rate_khz:.4g} kHz)"
        )
    return threshold_for_weight(scores, weights_pb, rate_khz / beam.khz_per_pb)


def weighted_efficiency(
    scores: Any,
    weights: Any,
    threshold: float,
    cl: float = ONE_SIGMA_CL,
    method: str = "clopper-pearson",
) -> dict[str, float | list[float]]:
    """Weighted fraction of events with ``score > threshold`` and its interval: the
    binomial interval of ``method`` at the effective numbers ``n_eff = (sum w)^2 / sum w^2``
    and ``k_eff = efficiency x n_eff`` (unit weights: the plain binomial interval)."""
    s = check_scores(scores, "scores")
    w = check_weights(weights, len(s), "weights")
    tot = float(w.sum())
    if not tot > 0:
        raise ValueError("the weights sum to 0: an efficiency needs events")
    sel = s > threshold
    eff = float(w[sel].sum()) / tot
    n_eff = tot * tot / float((w**2).sum())
    lo, hi = _interval(eff * n_eff, n_eff, cl, method)
    return {"efficiency": eff, "interval": [lo, hi], "n_effective": n_eff}


def efficiency_at_rate(
    bkg_scores: Any,
    bkg_weights_pb: Any,
    sig_scores: Any,
    rate_khz: float,
    *,
    sig_weights: Any = None,
    beam: Beam = Beam(),
    cl: float = ONE_SIGMA_CL,
    method: str = "clopper-pearson",
    min_effective_events: float = 10.0,
    name: str = "",
    warn: bool = True,
) -> dict[str, Any]:
    """Signal efficiency at the threshold giving ``rate_khz`` on the weighted background
    stream.  Returns ``target_rate_khz``, ``threshold``, ``rate_khz`` (achieved) and
    ``rate_khz_err``, ``n_background_selected`` and ``n_effective_background_selected``,
    ``efficiency`` with ``efficiency_interval`` (weighted, effective counts), ``luminosity``,
    and ``warning`` when fewer than ``min_effective_events`` effective background events
    are above the threshold (the rate is then not measured reliably)."""
    b = check_scores(bkg_scores, "bkg_scores")
    bw = check_weights(bkg_weights_pb, len(b), "bkg_weights_pb")
    s = check_scores(sig_scores, "sig_scores")
    sw = (
        np.ones(len(s))
        if sig_weights is None
        else check_weights(sig_weights, len(s), "sig_weights")
    )
    if len(s) == 0:
        raise ValueError("sig_scores is empty: an efficiency needs signal events")
    thr = threshold_for_rate_weighted(b, bw, rate_khz, beam)
    r = rate_above(b, bw, thr, beam)
    e = weighted_efficiency(s, sw, thr, cl, method)
    warning = None
    if r.n_effective < min_effective_events:
        warning = (
            f"{name + ': ' if name else ''}the background stream has {r.n_effective:.3g} "
            f"effective events ({r.n_events} events) above the threshold for {float(rate_khz):g} "
            f"kHz (rule: at least {min_effective_events:g}); the rate "
            f"{r.rate_khz:.3g} +- {r.rate_khz_err:.2g} kHz is not measured reliably: populate "
            "the tail (pT-hat bins or a bias) or generate more background"
        )
        if warn:
            warnings.warn(warning, SmallSampleWarning, stacklevel=2)
    lo, hi = e["interval"]  # type: ignore[misc]
    return {
        "target_rate_khz": float(rate_khz),
        "threshold": thr,
        "rate_khz": r.rate_khz,
        "rate_khz_err": r.rate_khz_err,
        "n_background_selected": r.n_events,
        "n_effective_background_selected": r.n_effective,
        "efficiency": e["efficiency"],
        "efficiency_interval": [lo, hi],
        "n_effective_signal": e["n_effective"],
        "luminosity": beam.luminosity,
        "interval_method": method,
        "cl": cl,
        "warning": warning,
    }


def unbiased_rate_check(
    scores: Any,
    weights_pb: Any,
    unbiased_khz: Any,
    rate_khz: float,
    beam: Beam = Beam(),
) -> dict[str, Any]:
    """The weighted stream's rate against a brute-force estimate at one working point.

    The threshold of ``rate_khz`` on the weighted stream (``scores``, ``weights_pb``) and
    its rate there, against the rate an unbiased sample gives alone at that threshold:
    ``unbiased_khz`` is the rate [kHz] each event stands for in that sample (0 for events
    outside it; for a plain sample of ``n`` crossings, ``crossing rate / n`` each).

    The uncertainty of the difference treats the events by where they count: those in both
    estimates (shared) enter once, as ``(w_i x kHz per pb - unbiased_i)^2``; the weighted
    stream's events outside the sample (the *replacement*: biased, stitched hard processes)
    with ``w_i^2``; and the sample's events the stream leaves out (the *replaced*: its own
    vetoed hard events, few and heavy) with their Poisson variance *expected* from the
    replacement's rate, ``mean unbiased weight x replacement rate``, or what was observed if
    larger, so a sample too small to hold the replaced events above the threshold shows as
    a large uncertainty, not as a disagreement.  The two agree when ``|pull| <= 2``.
    Returns ``target_rate_khz``, ``threshold``, ``weighted`` (:class:`WeightedRate` as a
    dict), ``unbiased`` (``rate_khz``, ``rate_khz_err`` (observed, sum of squares), ``k``
    selected of ``n`` events of the sample, ``replaced_khz`` and ``replacement_khz``: the
    two estimates of what the stream's stitch replaced), ``difference_khz`` and its
    ``difference_err_khz``, and ``pull``."""
    s = check_scores(scores, "scores")
    w = check_weights(weights_pb, len(s), "weights_pb")
    u = check_weights(unbiased_khz, len(s), "unbiased_khz")
    n = int(np.count_nonzero(u))
    if n == 0:
        raise ValueError("no unbiased event: a brute-force rate needs some")
    thr = threshold_for_rate_weighted(s, w, rate_khz, beam)
    r = rate_above(s, w, thr, beam)
    sel = s > thr
    wk = w * beam.khz_per_pb
    shared = sel & (u != 0) & (w != 0)
    replacement = sel & (u == 0) & (w != 0)
    replaced_all = (u != 0) & (w == 0)
    replaced = sel & replaced_all
    brute = float(u[sel].sum())
    rate_replacement = float(wk[replacement].sum())
    mean_replaced = float(u[replaced_all].mean()) if replaced_all.any() else 0.0
    var = (
        float(((wk[shared] - u[shared]) ** 2).sum())
        + float((wk[replacement] ** 2).sum())
        + max(mean_replaced * max(rate_replacement, 0.0), float((u[replaced] ** 2).sum()))
    )
    err = math.sqrt(var)
    return {
        "target_rate_khz": float(rate_khz),
        "threshold": thr,
        "weighted": r.to_dict(),
        "unbiased": {
            "rate_khz": brute,
            "rate_khz_err": math.sqrt(float((u[sel] ** 2).sum())),
            "k": int(np.count_nonzero(sel & (u != 0))),
            "n": n,
            "replaced_khz": float(u[replaced].sum()),
            "replaced_events": int(replaced.sum()),
            "replacement_khz": rate_replacement,
        },
        "difference_khz": r.rate_khz - brute,
        "difference_err_khz": err,
        "pull": (r.rate_khz - brute) / err if err > 0 else 0.0,
    }

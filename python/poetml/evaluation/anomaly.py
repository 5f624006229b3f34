"""Metrics of an anomaly score (higher = more anomalous): per-signal ROC and AUC, and the
signal efficiency at trigger working points (thresholds and rates from :mod:`poetml.rates`,
the same the firmware uses)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._atomic import to_jsonable
from ..rates import (
    ONE_SIGMA_CL,
    SmallSampleWarning,
    _efficiency_sorted,
    _threshold_sorted,
    binomial_interval,
    fpr_to_rate,
    n_above,
    rate_to_fpr,
    small_sample_warning,
)
from .inputs import _scores
from .roc import auc, roc_dict, roc_from_scores

__all__ = ["anomaly_metrics", "weighted_rate_metrics"]


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
        rates: list[Any] = (
            [rate_khz] if np.ndim(rate_khz) == 0 else list(rate_khz)  # type: ignore[arg-type]
        )
        for r in rates:
            rate = float(r)
            f = rate_to_fpr(rate, collision_rate_mhz)
            wps.append((f"rate={rate:g} kHz", f, rate))
    if not wps:
        raise ValueError("no working point: give fpr_targets and/or rate_khz")

    b_sorted = np.sort(b)
    out_wps = []
    warn_list: list[str] = []
    for name, f, r in wps:
        thr = _threshold_sorted(b_sorted, f)
        k_b = n_above(b_sorted, thr)
        flo, fhi = binomial_interval(k_b, len(b), cl, method)
        warning = small_sample_warning(name, f, len(b), min_bkg_events, collision_rate_mhz)
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
        fpr, tpr, roc_thr = roc_from_scores(b_sorted, s_sorted)
        effs = {
            name: _efficiency_sorted(
                b_sorted, s_sorted, f, cl, method, min_bkg_events, collision_rate_mhz, name
            )
            for name, f, _ in wps
        }
        signals[str(sname)] = {
            "n_events": len(s_sorted),
            "auc": auc(fpr, tpr),
            "roc": roc_dict(fpr, tpr, roc_thr, max_roc_points),
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


def weighted_rate_metrics(
    bkg_scores: Any,
    bkg_weights_pb: Any,
    signal_scores: Mapping[str, Any],
    rate_khz: Sequence[float],
    beam: Any = None,
    *,
    signal_weights: Mapping[str, Any] | None = None,
    cl: float = ONE_SIGMA_CL,
    method: str = "clopper-pearson",
    min_effective_events: float = 10.0,
    n_curve: int = 60,
) -> dict[str, Any]:
    """Trigger rates on a weighted background stream (weights in pb; see
    :mod:`poetml.rates`): for each target rate in kHz the threshold, the achieved rate with
    its uncertainty and the effective number of background events above it, each signal's
    efficiency with its interval, and each signal's weighted AUC; plus the rate [kHz]
    against threshold (``curve``, with its uncertainty) for the plot.  Returns::

        {"kind": "weighted_rates", "luminosity", "crossing_rate_khz", "sum_weights_pb",
         "n_background", "n_effective_background",
         "working_points": [{"name", "target_rate_khz", "threshold", "rate_khz",
                             "rate_khz_err", "n_background_selected",
                             "n_effective_background_selected", "warning"}],
         "signals": {name: {"auc", "efficiency": {wp: {...}}}},
         "curve": {"threshold", "rate_khz", "rate_khz_err"}, "warnings": [...]}
    """
    from ..rates import Beam, check_weights, efficiency_at_rate, rate_above
    from .roc import roc_curve

    beam = beam or Beam()
    b = _scores(bkg_scores, "bkg_scores")
    bw = check_weights(bkg_weights_pb, len(b), "bkg_weights_pb")
    if len(b) == 0:
        raise ValueError("bkg_scores is empty")
    wps: list[dict[str, Any]] = []
    signals: dict[str, Any] = {}
    warn_list: list[str] = []
    for r in rate_khz:
        name = f"rate={float(r):g} kHz"
        first = None
        for sname, sc in signal_scores.items():
            sw = None if signal_weights is None else signal_weights.get(sname)
            e = efficiency_at_rate(
                b,
                bw,
                _scores(sc, f"signal_scores[{sname!r}]"),
                float(r),
                sig_weights=sw,
                beam=beam,
                cl=cl,
                method=method,
                min_effective_events=min_effective_events,
                name=name,
                warn=False,
            )
            first = first or e
            signals.setdefault(str(sname), {"efficiency": {}})["efficiency"][name] = e
        assert first is not None
        if first["warning"]:
            warn_list.append(first["warning"])
            warnings.warn(first["warning"], SmallSampleWarning, stacklevel=2)
        wps.append(
            {
                "name": name,
                "target_rate_khz": float(r),
                "threshold": first["threshold"],
                "rate_khz": first["rate_khz"],
                "rate_khz_err": first["rate_khz_err"],
                "n_background_selected": first["n_background_selected"],
                "n_effective_background_selected": first["n_effective_background_selected"],
                "warning": first["warning"],
            }
        )
    for sname, sc in signal_scores.items():
        s = _scores(sc, f"signal_scores[{sname!r}]")
        sw = (
            np.ones(len(s))
            if signal_weights is None
            else signal_weights.get(sname, np.ones(len(s)))
        )
        y = np.concatenate([np.zeros(len(b), bool), np.ones(len(s), bool)])
        w = np.concatenate([bw, np.asarray(sw, np.float64) / np.sum(sw) * bw.sum()])
        fpr, tpr, _ = roc_curve(y, np.concatenate([b, s]), sample_weight=w)
        signals.setdefault(str(sname), {"efficiency": {}})["auc"] = auc(fpr, tpr)
    qs = np.unique(np.quantile(b, np.linspace(0.0, 1.0, n_curve)))
    pts = [rate_above(b, bw, float(t), beam) for t in qs]
    tot = float(bw.sum())
    return to_jsonable(
        {
            "kind": "weighted_rates",
            "luminosity": beam.luminosity,
            "crossing_rate_khz": beam.crossing_rate_khz,
            "sum_weights_pb": tot,
            "n_background": len(b),
            "n_effective_background": tot * tot / float((bw**2).sum()),
            "working_points": wps,
            "signals": signals,
            "curve": {
                "threshold": qs.tolist(),
                "rate_khz": [p.rate_khz for p in pts],
                "rate_khz_err": [p.rate_khz_err for p in pts],
            },
            "warnings": warn_list,
        }
    )

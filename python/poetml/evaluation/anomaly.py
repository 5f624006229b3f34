"""Metrics of an anomaly score (higher = more anomalous): per-signal ROC and AUC, the
signal efficiency at trigger working points (thresholds and rates from :mod:`poetml.rates`,
the same the firmware uses), and the comparison with an L1-like single-lepton menu: the
anomaly trigger's pure rate and each signal's efficiency gain over the menu."""

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

__all__ = [
    "ADC2021_BASELINE_MISSING",
    "ADC2021_DENSE_AE_AUC",
    "ADC2021_SIGNALS",
    "anomaly_metrics",
    "menu_fires",
    "trigger_menu_metrics",
    "weighted_rate_metrics",
]

#: The poetml processes standing for the four benchmark signals of the ADC2021 dataset
#: (Govorkova et al., "LHC physics dataset for unsupervised New Physics detection at
#: 40 MHz", Sci. Data 9 (2022) 118, arXiv:2107.02157), with the paper's names.
ADC2021_SIGNALS: dict[str, str] = {
    "a4l": "A -> 4l",
    "lq_btau": "LQ -> b tau",
    "h0_tautau": "h0 -> tau tau",
    "hplus_taunu": "H+ -> tau nu",
}

#: The published AUC of the ADC2021 baseline dense (DNN) autoencoder per benchmark signal,
#: from the table of baseline results in Govorkova et al. (above).  MISSING: the table's
#: numbers were not in the reference material available when this was written (searches
#: of the stored pages found the paper's abstract and introduction, never its results
#: table), and a baseline is not quoted from memory.  Every entry is ``None`` until someone
#: copies the numbers from the paper, citing the table; the report then reads
#: :data:`ADC2021_BASELINE_MISSING` in that column.
ADC2021_DENSE_AE_AUC: dict[str, float | None] = dict.fromkeys(ADC2021_SIGNALS)

#: What the report's baseline column reads for a signal without a published number.
ADC2021_BASELINE_MISSING = "n/a (reference not available offline)"


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
    bkg_menu: Any = None,
    signal_menu: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Trigger rates on a weighted background stream (weights in pb; see
    :mod:`poetml.rates`): for each target rate in kHz the threshold, the achieved rate with
    its uncertainty and the effective number of background events above it, each signal's
    efficiency with its interval, and each signal's weighted AUC; plus the rate [kHz]
    against threshold (``curve``, with its uncertainty) and each signal's efficiency
    against the rate (``efficiency_curve``: ``n_curve`` rates spaced logarithmically, the
    efficiency's interval ``low``/``high`` from the signal's effective counts) for the
    plots.  With the menu's decisions on the background (``bkg_menu``) and on each signal
    (``signal_menu``, see :func:`menu_fires`) also ``menu``: the
    :func:`trigger_menu_metrics` at these working points.  Returns::

        {"kind": "weighted_rates", "luminosity", "crossing_rate_khz", "sum_weights_pb",
         "n_background", "n_effective_background",
         "working_points": [{"name", "target_rate_khz", "threshold", "rate_khz",
                             "rate_khz_err", "n_background_selected",
                             "n_effective_background_selected", "warning"}],
         "signals": {name: {"auc", "efficiency": {wp: {...}}}},
         "curve": {"threshold", "rate_khz", "rate_khz_err"},
         "efficiency_curve": {"threshold", "rate_khz", "rate_khz_err",
                              "signals": {name: {"efficiency", "low", "high"}}},
         "menu": {...} (with bkg_menu), "warnings": [...]}
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
    sig_arrays = {}
    for sname, sc in signal_scores.items():
        s = _scores(sc, f"signal_scores[{sname!r}]")
        sw = signal_weights.get(sname) if signal_weights is not None else None
        sig_arrays[str(sname)] = (
            s,
            np.ones(len(s))
            if sw is None
            else check_weights(sw, len(s), f"signal_weights[{sname!r}]"),
        )
    extra: dict[str, Any] = {
        "efficiency_curve": _efficiency_curve(b, bw, sig_arrays, beam, n_curve, cl, method)
    }
    if bkg_menu is not None and wps:
        if signal_menu is None:
            raise ValueError("bkg_menu needs signal_menu: the menu's decisions on every signal")
        extra["menu"] = trigger_menu_metrics(
            b,
            bw,
            bkg_menu,
            signal_scores,
            signal_menu,
            {wp["name"]: wp["threshold"] for wp in wps},
            beam,
            signal_weights=signal_weights,
            cl=cl,
            method=method,
            min_effective_events=min_effective_events,
        )
        warn_list += extra["menu"]["warnings"]
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
            **extra,
            "warnings": warn_list,
        }
    )


def menu_fires(
    lead_muon_pt: Any, lead_electron_pt: Any, muon_pt: float = 22.0, electron_pt: float = 30.0
) -> np.ndarray:
    """Whether a simple L1-like menu fires on each event: a single-muon seed (leading muon
    ``pT >= muon_pt``) or a single-electron seed (leading electron ``pT >= electron_pt``).
    The leading pTs are 0 for an event without that object (what the dataset stores), so
    thresholds must be > 0."""
    mu = _scores(lead_muon_pt, "lead_muon_pt")
    el = _scores(lead_electron_pt, "lead_electron_pt")
    if mu.shape != el.shape:
        raise ValueError(
            f"lead_muon_pt ({len(mu)} events) and lead_electron_pt ({len(el)}) differ in length"
        )
    for name, v in (("muon_pt", muon_pt), ("electron_pt", electron_pt)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a pT threshold > 0 GeV, got {v}")
    return (mu >= float(muon_pt)) | (el >= float(electron_pt))


def _fires(x: Any, n: int, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.shape != (n,):
        raise ValueError(f"{name} must hold one trigger decision per event ({n}), got {a.shape}")
    if a.dtype != bool:
        raise ValueError(f"{name} must be boolean (menu_fires), got dtype {a.dtype}")
    return a


def trigger_menu_metrics(
    bkg_scores: Any,
    bkg_weights_pb: Any,
    bkg_menu: Any,
    signal_scores: Mapping[str, Any],
    signal_menu: Mapping[str, Any],
    thresholds: Mapping[str, float],
    beam: Any = None,
    *,
    signal_weights: Mapping[str, Any] | None = None,
    cl: float = ONE_SIGMA_CL,
    method: str = "clopper-pearson",
    min_effective_events: float = 10.0,
) -> dict[str, Any]:
    """The anomaly-detection (AD) trigger against an L1-like menu on a weighted background
    stream (weights in pb; rates in kHz at ``beam``'s luminosity, see :mod:`poetml.rates`).

    ``bkg_menu`` / ``signal_menu[s]``: whether the menu fires on each event
    (:func:`menu_fires`); the AD trigger fires when ``score > threshold`` for each
    working point of ``thresholds`` ``{name: threshold}``.  Returns::

        {"kind": "trigger_menu",
         "menu": {"rate_khz", "rate_khz_err", "n_events", "n_effective"},
         "working_points": [{"name", "threshold", "rate_khz", "rate_khz_err",
                             "pure_rate_khz", "pure_rate_khz_err", "n_pure",
                             "n_effective_pure", "overlap_rate_khz",
                             "total_rate_khz", "total_rate_khz_err", "warning"}],
         "signals": {name: {"n_events", "menu": eff,
                            "efficiency": {wp: {"ad": eff, "gain": eff, "total": eff,
                                                "relative_gain"}}}},
         "warnings": [...]}

    ``pure`` is the rate of background events the AD trigger fires on and the menu does
    not (what the AD trigger adds to the menu's bandwidth); ``total`` the rate of either.
    Each ``eff`` is ``{"efficiency", "interval", "n_effective"}``
    (:func:`poetml.rates.weighted_efficiency`: the binomial interval of ``method`` at the
    effective counts).  ``gain`` is the fraction of signal events the AD trigger selects
    and the menu does not; ``relative_gain = gain / menu efficiency`` (``None`` when the
    menu selects nothing), as the CMS AXOL1TL and CICADA results quote it.  A pure rate
    measured by fewer than ``min_effective_events`` effective background events adds a
    warning.
    """
    from ..rates import Beam, check_weights, rate_above, weighted_efficiency

    beam = beam or Beam()
    b = _scores(bkg_scores, "bkg_scores")
    if len(b) == 0:
        raise ValueError("bkg_scores is empty")
    bw = check_weights(bkg_weights_pb, len(b), "bkg_weights_pb")
    bm = _fires(bkg_menu, len(b), "bkg_menu")
    if not thresholds:
        raise ValueError("thresholds must name at least one working point {name: threshold}")

    def rate(sel: np.ndarray) -> Any:
        return rate_above(sel.astype(np.float64), bw, 0.5, beam)

    def eff(sel: np.ndarray, w: np.ndarray) -> dict[str, Any]:
        return weighted_efficiency(sel.astype(np.float64), w, 0.5, cl, method)

    menu = rate(bm)
    wps: list[dict[str, Any]] = []
    warn_list: list[str] = []
    for name, thr in thresholds.items():
        ad = b > float(thr)
        r_ad, r_pure, r_tot = rate(ad), rate(ad & ~bm), rate(ad | bm)
        warning = None
        if r_pure.n_effective < min_effective_events:
            warning = (
                f"{name}: the pure rate {r_pure.rate_khz:.3g} +- {r_pure.rate_khz_err:.2g} kHz "
                f"rests on {r_pure.n_effective:.3g} effective background events ({r_pure.n_events}"
                f" events) the anomaly trigger selects and the menu does not (rule: at least "
                f"{min_effective_events:g}); it is not measured reliably"
            )
            warn_list.append(warning)
            warnings.warn(warning, SmallSampleWarning, stacklevel=2)
        wps.append(
            {
                "name": str(name),
                "threshold": float(thr),
                "rate_khz": r_ad.rate_khz,
                "rate_khz_err": r_ad.rate_khz_err,
                "pure_rate_khz": r_pure.rate_khz,
                "pure_rate_khz_err": r_pure.rate_khz_err,
                "n_pure": r_pure.n_events,
                "n_effective_pure": r_pure.n_effective,
                "overlap_rate_khz": r_ad.rate_khz - r_pure.rate_khz,
                "total_rate_khz": r_tot.rate_khz,
                "total_rate_khz_err": r_tot.rate_khz_err,
                "warning": warning,
            }
        )
    signals: dict[str, Any] = {}
    for sname, sc in signal_scores.items():
        s = _scores(sc, f"signal_scores[{sname!r}]")
        if len(s) == 0:
            raise ValueError(f"signal_scores[{sname!r}] is empty")
        if sname not in signal_menu:
            raise ValueError(f"signal_menu has no menu decisions for signal {sname!r}")
        sm = _fires(signal_menu[sname], len(s), f"signal_menu[{sname!r}]")
        sw = (
            np.ones(len(s))
            if signal_weights is None or sname not in signal_weights
            else check_weights(signal_weights[sname], len(s), f"signal_weights[{sname!r}]")
        )
        e_menu = eff(sm, sw)
        per_wp: dict[str, Any] = {}
        for name, thr in thresholds.items():
            ad = s > float(thr)
            gain = eff(ad & ~sm, sw)
            m_eff = float(e_menu["efficiency"])
            per_wp[str(name)] = {
                "ad": eff(ad, sw),
                "gain": gain,
                "total": eff(ad | sm, sw),
                "relative_gain": float(gain["efficiency"]) / m_eff if m_eff > 0 else None,
            }
        signals[str(sname)] = {"n_events": len(s), "menu": e_menu, "efficiency": per_wp}
    return to_jsonable(
        {
            "kind": "trigger_menu",
            "menu": menu.to_dict() | {"n_events": menu.n_events},
            "working_points": wps,
            "signals": signals,
            "warnings": warn_list,
        }
    )


def _efficiency_curve(
    b: np.ndarray,
    bw: np.ndarray,
    signals: Mapping[str, tuple[np.ndarray, np.ndarray]],
    beam: Any,
    n: int,
    cl: float,
    method: str,
) -> dict[str, Any]:
    """Signal efficiency against the rate of the weighted stream at ``n`` thresholds whose
    rates are spaced logarithmically from the top background event's to the whole
    stream's (the threshold rule of :func:`poetml.rates.threshold_for_weight`; points with
    no background above are left out: their rate is 0 on a log axis)."""
    from ..rates import rate_above, weighted_efficiency

    order = np.argsort(-b, kind="stable")
    cum = np.maximum.accumulate(np.cumsum(bw[order]))
    pos = cum[cum > 0]
    thr: list[float] = []
    if pos.size:
        targets = np.geomspace(float(pos[0]), float(cum[-1]), n)
        ks = np.searchsorted(cum, targets * (1 + 1e-12), side="right")
        thr = sorted({float(b[order[k]]) for k in ks if k < len(b)}, reverse=True)
    pts = [rate_above(b, bw, t, beam) for t in thr]
    keep = [i for i, p in enumerate(pts) if p.rate_khz > 0]
    thr, pts = [thr[i] for i in keep], [pts[i] for i in keep]
    sig: dict[str, Any] = {}
    for name, (s, sw) in signals.items():
        es = [weighted_efficiency(s, sw, t, cl, method) for t in thr]
        sig[name] = {
            "efficiency": [e["efficiency"] for e in es],
            "low": [e["interval"][0] for e in es],  # type: ignore[index]
            "high": [e["interval"][1] for e in es],  # type: ignore[index]
        }
    return {
        "threshold": thr,
        "rate_khz": [p.rate_khz for p in pts],
        "rate_khz_err": [p.rate_khz_err for p in pts],
        "signals": sig,
    }

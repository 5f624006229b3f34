"""Report sections from the result dicts of :mod:`poetml.evaluation`, models side by side.
Only assembly: the numbers come from evaluation, the images from :mod:`poetml.plots`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..evaluation import compare_models
from .render import Section, Table, format_value

__all__ = ["anomaly_section", "classification_section"]


def _by_model(warnings: Sequence[tuple[str, str]]) -> list[str]:
    """One line per distinct message, naming every model it applies to, in first-seen order
    (models evaluated on the same background share its small-sample warnings)."""
    models: dict[str, list[str]] = {}
    for m, w in warnings:
        models.setdefault(w, [])
        if m not in models[w]:
            models[w].append(m)
    return [f"{', '.join(ms)}: {w}" for w, ms in models.items()]


def _signed_percent(rows: list[list[Any]]) -> list[list[Any]]:
    """Cells of the ``... [%]`` columns as signed text with two decimals (``+0.86``)."""
    cols = [i for i, h in enumerate(rows[0]) if str(h).endswith("[%]")]
    out = [list(rows[0])]
    for r in rows[1:]:
        r = list(r)
        for i in cols:
            if isinstance(r[i], (int, float)):
                r[i] = f"{r[i]:+.2f}"
        out.append(r)
    return out


def classification_section(
    results_by_model: Mapping[str, Mapping[str, Any]],
    *,
    title: str = "Classification",
    text: str = "",
    images: Sequence[Any] = (),
    relative_to: str | None = None,
) -> Section:
    """A section with the models side by side (accuracy, macro and per-class precision,
    recall, F1, AUC), then per model its confusion matrix (counts and row fractions)."""
    tables: list[Table] = [
        Table(
            _signed_percent(compare_models(results_by_model, relative_to=relative_to)),
            caption="Test-set metrics, models side by side",
        )
    ]
    warnings: list[tuple[str, str]] = []
    for m, r in results_by_model.items():
        names = r["class_names"]
        counts = r["confusion_matrix"]["counts"]
        norm = r["confusion_matrix"]["normalized"]
        rows: list[list[Any]] = [["true \\ predicted", *names]]
        for i, n in enumerate(names):
            rows.append([n, *[f"{counts[i][j]} ({norm[i][j]:.3f})" for j in range(len(names))]])
        tables.append(
            Table(rows, caption=f"Confusion matrix, {m}: events (fraction of the true class)")
        )
        warnings += [(m, w) for w in r.get("warnings", [])]
    first = next(iter(results_by_model.values()))
    n = first["n_events"]
    intro = text or f"{n} test events; classes: {', '.join(first['class_names'])}."
    return Section(title, intro, tables, list(images), _by_model(warnings))


def anomaly_section(
    results_by_model: Mapping[str, Mapping[str, Any]],
    *,
    title: str = "Anomaly detection",
    text: str = "",
    images: Sequence[Any] = (),
    relative_to: str | None = None,
) -> Section:
    """A section with per-signal AUC and efficiencies (with their uncertainties) at every
    working point, models side by side, and the working points (threshold, achieved FPR
    and rate) of each model."""
    tables: list[Table] = [
        Table(
            _signed_percent(compare_models(results_by_model, relative_to=relative_to)),
            caption="Per-signal AUC and efficiency (68% CL Clopper-Pearson), models side by side",
        )
    ]
    rows: list[list[Any]] = [
        [
            "model",
            "working point",
            "target FPR",
            "rate [kHz]",
            "threshold",
            "background above",
            "achieved FPR",
        ]
    ]
    warnings: list[tuple[str, str]] = []
    for m, r in results_by_model.items():
        for wp in r["working_points"]:
            rows.append(
                [
                    m,
                    wp["name"],
                    wp["fpr"],
                    wp["rate_khz"],
                    wp["threshold"],
                    wp["n_background_selected"],
                    wp["achieved_fpr"],
                ]
            )
        warnings += [(m, w) for w in r.get("warnings", [])]
    tables.append(Table(rows, caption="Working points (thresholds set on the background sample)"))
    detail: list[list[Any]] = [
        [
            "model",
            "signal",
            "working point",
            "efficiency",
            "68% CL interval (signal statistics)",
            "range from background statistics",
            "selected / total",
        ]
    ]
    for m, r in results_by_model.items():
        for s, sig in r["signals"].items():
            for wp, e in sig["efficiency"].items():
                lo, hi = e["efficiency_interval"]
                blo, bhi = e.get("efficiency_fpr_band", [None, None])
                detail.append(
                    [
                        m,
                        s,
                        wp,
                        e["efficiency"],
                        f"[{format_value(lo)}, {format_value(hi)}]",
                        f"[{format_value(blo)}, {format_value(bhi)}]",
                        f"{e['n_signal_selected']} / {e['n_signal']}",
                    ]
                )
    tables.append(Table(detail, caption="Signal efficiencies and their uncertainties"))
    first = next(iter(results_by_model.values()))
    intro = text or (
        f"{first['n_background']} background events; signals: {', '.join(first['signals'])}; "
        f"rate = FPR x {first['collision_rate_mhz']:g} MHz."
    )
    return Section(title, intro, tables, list(images), _by_model(warnings))


def _pm(value: float, err: float) -> str:
    return f"{value:.3g} +- {err:.2g}"


def _interval_text(e: Mapping[str, Any]) -> str:
    lo, hi = e["interval"]
    return f"{format_value(e['efficiency'])} [{format_value(lo)}, {format_value(hi)}]"


def menu_tables(weighted: Mapping[str, Mapping[str, Any]]) -> list[Table]:
    """The anomaly trigger against the L1-like menu (``weighted[model]["menu"]``, see
    :func:`poetml.evaluation.trigger_menu_metrics`): rates (menu, AD, pure, total) per
    working point, then per signal the menu's and the AD trigger's efficiency and the gain.
    Empty when no model carries the comparison."""
    with_menu = {m: r["menu"] for m, r in weighted.items() if r.get("menu")}
    if not with_menu:
        return []
    rates: list[list[Any]] = [
        [
            "model",
            "working point",
            "menu rate [kHz]",
            "AD rate [kHz]",
            "AD pure rate [kHz]",
            "pure events (effective)",
            "menu OR AD rate [kHz]",
        ]
    ]
    effs: list[list[Any]] = [
        [
            "model",
            "working point",
            "signal",
            "menu efficiency",
            "AD efficiency",
            "gain (AD, not menu)",
            "relative gain",
            "menu OR AD efficiency",
        ]
    ]
    for m, r in with_menu.items():
        mr = r["menu"]
        for wp in r["working_points"]:
            rates.append(
                [
                    m,
                    wp["name"],
                    _pm(mr["rate_khz"], mr["rate_khz_err"]),
                    _pm(wp["rate_khz"], wp["rate_khz_err"]),
                    _pm(wp["pure_rate_khz"], wp["pure_rate_khz_err"]),
                    f"{wp['n_pure']} ({wp['n_effective_pure']:.3g})",
                    _pm(wp["total_rate_khz"], wp["total_rate_khz_err"]),
                ]
            )
            for s, sig in r["signals"].items():
                e = sig["efficiency"][wp["name"]]
                rel = e["relative_gain"]
                effs.append(
                    [
                        m,
                        wp["name"],
                        s,
                        _interval_text(sig["menu"]),
                        _interval_text(e["ad"]),
                        _interval_text(e["gain"]),
                        "n/a (menu selects none)" if rel is None else f"{rel:.3g}",
                        _interval_text(e["total"]),
                    ]
                )
    return [
        Table(
            rates,
            caption=(
                "The anomaly-detection (AD) trigger beside the L1-like single-lepton menu on the "
                "weighted background stream: the pure rate is that of events the AD trigger "
                "selects and the menu does not (uncertainties from the sum of squared weights)"
            ),
        ),
        Table(
            effs,
            caption=(
                "Signal efficiencies with their 68% CL intervals: the gain is the fraction of "
                "signal events the AD trigger selects and the menu does not; relative gain = "
                "gain / menu efficiency"
            ),
        ),
    ]


def adc2021_table(weighted: Mapping[str, Mapping[str, Any]]) -> Table | None:
    """Each ADC2021 benchmark signal's weighted AUC beside the published dense-autoencoder
    baseline (:data:`poetml.evaluation.anomaly.ADC2021_DENSE_AE_AUC`); ``None`` when no
    benchmark signal was evaluated."""
    from ..evaluation.anomaly import (
        ADC2021_BASELINE_MISSING,
        ADC2021_DENSE_AE_AUC,
        ADC2021_SIGNALS,
    )

    rows: list[list[Any]] = [
        ["model", "signal", "ADC2021 name", "AUC (weighted stream)", "ADC2021 dense AE AUC"]
    ]
    for m, r in weighted.items():
        for s, sig in r["signals"].items():
            if s in ADC2021_SIGNALS:
                ref = ADC2021_DENSE_AE_AUC.get(s)
                rows.append(
                    [
                        m,
                        s,
                        ADC2021_SIGNALS[s],
                        sig["auc"],
                        ADC2021_BASELINE_MISSING if ref is None else ref,
                    ]
                )
    if len(rows) == 1:
        return None
    return Table(
        rows,
        caption=(
            "ADC2021 benchmark signals: AUC against the weighted background stream beside the "
            "published baseline dense autoencoder (Govorkova et al., Sci. Data 9 (2022) 118, "
            "arXiv:2107.02157); the ADC2021 background is the single-lepton stream"
        ),
    )


def auc_below_half_notes(
    results_by_model: Mapping[str, Mapping[str, Any]],
) -> list[tuple[str, str]]:
    """``(model, line)`` for every signal whose AUC is below 0.5 (against the background
    events counted once each and, when the model's metrics carry it, against the weighted
    stream), saying what that means rather than leaving it silent."""
    out: list[tuple[str, str]] = []
    for m, r in results_by_model.items():
        sources = [("the background events counted once each", r["signals"])]
        if r.get("weighted"):
            sources.append(("the weighted background stream", r["weighted"]["signals"]))
        for stream, s, a in (
            (stream, s, sig.get("auc")) for stream, sigs in sources for s, sig in sigs.items()
        ):
            if a is None or a >= 0.5:
                continue
            text = (
                f"{s}: AUC {a:.3f} < 0.5 on {stream}: the autoencoder reconstructs these "
                "signal events better than a typical background event, i.e. it ranks the "
                "signal as more typical than the background, so a high-score trigger selects "
                "it less often than a random trigger of the same rate would. This happens when "
                "the signal is softer or emptier (fewer, lower-pT objects, less MET) than the "
                "events that dominate the background (a reconstruction error grows with the "
                "activity of the event), which depends on how the background is composed; the "
                f"reversed score would have AUC {1 - a:.3f}, which is no basis for an "
                "unsupervised trigger"
            )
            out.append((m, text))
    return out

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
